package org.moert;

import org.moert.internal.moert_native;

/** One sequence with its own KV cache, evaluated token by token; one thread at a time. */
public final class Session extends Handle {
    private final org.moert.internal.Session raw;
    private final int vocab;

    Session(org.moert.internal.Session raw, int vocab) {
        super(() -> moert_native.session_free(raw));
        this.raw = raw;
        this.vocab = vocab;
    }

    /** Appends tokens; returns the logits after the last one (one row) or after each (allLogits). */
    public float[][] eval(int[] tokens, boolean allLogits) {
        ensureOpen();
        int rows = allLogits ? tokens.length : 1;
        float[] flat = new float[rows * vocab];
        moert_native.session_eval(raw, tokens, allLogits ? 1 : 0, flat);
        float[][] out = new float[rows][];
        for (int i = 0; i < rows; i++) out[i] = java.util.Arrays.copyOfRange(flat, i * vocab, (i + 1) * vocab);
        return out;
    }

    public long length() {
        ensureOpen();
        return moert_native.session_length(raw);
    }

    public void truncate(long length) {
        ensureOpen();
        moert_native.session_truncate(raw, length);
    }

    /**
     * The sequence as a KV image (KV hand-off): its tokens, latent cache and last logits behind a header with
     * the checkpoint's fingerprint and a checksum, for {@link Model#importSession} or {@link Model#generateResume}
     * in a process that loaded the same checkpoint. INVALID_ARGUMENT for an empty session or one truncated
     * since its last evaluation.
     */
    public byte[] export() {
        ensureOpen();
        return moert_native.session_export(raw);
    }
}
