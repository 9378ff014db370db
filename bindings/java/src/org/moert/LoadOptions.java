package org.moert;

import org.moert.internal.moert_native;

/** Model load settings; unset ones keep moert's defaults. */
public final class LoadOptions {
    private Long threads, kvCacheBytes, maxBatch;
    private String device, activations;

    public LoadOptions threads(int n) { threads = (long) n; return this; }
    public LoadOptions kvCacheBytes(long n) { kvCacheBytes = n; return this; }
    public LoadOptions maxBatch(int n) { maxBatch = (long) n; return this; }
    /** "cpu" or "cuda". */
    public LoadOptions device(String d) { device = d; return this; }
    /** "fp32" or "fp8". */
    public LoadOptions activations(String a) { activations = a; return this; }

    org.moert.internal.Options build() {
        org.moert.internal.Options o = moert_native.options_create();
        try {
            if (threads != null) moert_native.options_set_int(o, "threads", threads);
            if (kvCacheBytes != null) moert_native.options_set_int(o, "kv_cache_bytes", kvCacheBytes);
            if (maxBatch != null) moert_native.options_set_int(o, "max_batch", maxBatch);
            if (device != null) moert_native.options_set_string(o, "device", device);
            if (activations != null) moert_native.options_set_string(o, "activations", activations);
            return o;
        } catch (RuntimeException e) {
            moert_native.options_free(o);
            throw e;
        }
    }
}
