package org.moert;

import org.moert.internal.moert_native;

/** Model load settings; unset ones keep moert's defaults (see "Model load keys" in moert.h). */
public final class LoadOptions {
    private Long threads, kvCacheBytes, maxBatch;
    private String device, activations;
    private Boolean batchInvariant, epOverlap;
    private Long epSize, epRedundant, eplbInterval, epMaxRanksPerToken, epTimeoutMs;
    private String epTransport;
    private Boolean prefixCache;
    private String speculative;
    private Long draftTokens;
    private String attention, kvCacheDtype, activationDtype;
    private Boolean mtp, checkWeights, cudaGraphs;

    public LoadOptions threads(int n) { threads = (long) n; return this; }
    public LoadOptions kvCacheBytes(long n) { kvCacheBytes = n; return this; }
    public LoadOptions maxBatch(int n) { maxBatch = (long) n; return this; }
    /** "cpu" or "cuda". */
    public LoadOptions device(String d) { device = d; return this; }
    /** "fp32" or "fp8". */
    public LoadOptions activations(String a) { activations = a; return this; }
    /**
     * true: a request's logits (so its sampled tokens for a seed) are the same bits whatever is batched with
     * it, however its prompt is chunked, and with expert parallelism or not; decode is slower (default
     * false). CPU only (UNSUPPORTED with device "cuda").
     */
    public LoadOptions batchInvariant(boolean on) { batchInvariant = on; return this; }
    /**
     * Expert parallelism: ranks the routed experts are spread over (default 1 = off). One rank per process
     * under MPI ({@code mpirun -np N} with epSize N).
     */
    public LoadOptions epSize(int n) { epSize = (long) n; return this; }
    /**
     * "none" (the default with epSize 1), "inproc" (a one-rank in-process group: the EP code path in one
     * process), "mpi" (the default with epSize &gt; 1) or "nccl" (GPU ranks).
     */
    public LoadOptions epTransport(String t) { epTransport = t; return this; }
    /** Redundant expert slots per rank (default 0). */
    public LoadOptions epRedundant(int n) { epRedundant = (long) n; return this; }
    /** Engine steps between EPLB re-placements from the served load (default 0 = never). */
    public LoadOptions eplbInterval(long steps) { eplbInterval = steps; return this; }
    /**
     * Forces the two-microbatch overlap on or off; unset, moert decides (on unless every rank is on one
     * host). {@code model.info("ep_overlap")} says what is in effect.
     */
    public LoadOptions epOverlap(boolean on) { epOverlap = on; return this; }
    /** Spread a token's experts over at most this many ranks where replicas allow (default 0 = no preference). */
    public LoadOptions epMaxRanksPerToken(int n) { epMaxRanksPerToken = (long) n; return this; }
    /** Longest wait for the other ranks in one exchange, in milliseconds (default 60000). */
    public LoadOptions epTimeoutMs(long ms) { epTimeoutMs = ms; return this; }
    /**
     * The prefix cache (default on): requests whose prompts share a prefix reuse the KV pages (whole 64-token
     * pages) an earlier request computed; the logits are the same as without it. {@link Usage#cachedPromptTokens()}
     * says how many prompt tokens a request took from it.
     */
    public LoadOptions prefixCache(boolean on) { prefixCache = on; return this; }
    /**
     * MTP speculative decoding: "on" (drafts with the checkpoint's MTP module when it has one; greedy output
     * is unchanged, sampled output keeps the model's distribution), "auto" (the default: on with device
     * "cuda", off on the CPU, where it decodes slower) or "off".
     * {@link Usage#draftTokens()} and {@link Usage#acceptedDrafts()} count the drafts.
     */
    public LoadOptions speculative(String mode) { speculative = mode; return this; }
    /** Drafts per decode step, 1 (the default, DeepSeek's setting) to 3. */
    public LoadOptions draftTokens(int n) { draftTokens = (long) n; return this; }
    /** The MLA form: "auto" (the default), "expanded" or "absorbed" (for testing). */
    public LoadOptions attention(String form) { attention = form; return this; }
    /** Load the MTP module when the checkpoint has one (default true). */
    public LoadOptions mtp(boolean on) { mtp = on; return this; }
    /**
     * The load-time scan of every weight for NaN/Inf (and FP8 NaN bytes, bad block scales; default on): a
     * FORMAT error naming the file and tensor. false skips it (it reads the whole checkpoint once).
     */
    public LoadOptions checkWeights(boolean on) { checkWeights = on; return this; }
    /** With device "cuda", decode steps replayed as CUDA graphs (default on); no effect on the CPU. */
    public LoadOptions cudaGraphs(boolean on) { cudaGraphs = on; return this; }
    /**
     * The latent cache's storage: "auto" (the default: bf16 with device "cuda", fp32 on the CPU), "fp32" or
     * "bf16" (UNSUPPORTED on the CPU).
     */
    public LoadOptions kvCacheDtype(String dtype) { kvCacheDtype = dtype; return this; }
    /**
     * The storage of activations between ops: "auto" (the default: bf16 with device "cuda", fp32 on the CPU),
     * "fp32" or "bf16" (UNSUPPORTED on the CPU); the math is fp32 either way.
     */
    public LoadOptions activationDtype(String dtype) { activationDtype = dtype; return this; }

    org.moert.internal.Options build() {
        org.moert.internal.Options o = moert_native.options_create();
        try {
            if (threads != null) moert_native.options_set_int(o, "threads", threads);
            if (kvCacheBytes != null) moert_native.options_set_int(o, "kv_cache_bytes", kvCacheBytes);
            if (maxBatch != null) moert_native.options_set_int(o, "max_batch", maxBatch);
            if (device != null) moert_native.options_set_string(o, "device", device);
            if (activations != null) moert_native.options_set_string(o, "activations", activations);
            if (batchInvariant != null) moert_native.options_set_int(o, "batch_invariant", batchInvariant ? 1 : 0);
            if (epSize != null) moert_native.options_set_int(o, "ep_size", epSize);
            if (epTransport != null) moert_native.options_set_string(o, "ep_transport", epTransport);
            if (epRedundant != null) moert_native.options_set_int(o, "ep_redundant", epRedundant);
            if (eplbInterval != null) moert_native.options_set_int(o, "eplb_interval", eplbInterval);
            if (epOverlap != null) moert_native.options_set_int(o, "ep_overlap", epOverlap ? 1 : 0);
            if (epMaxRanksPerToken != null)
                moert_native.options_set_int(o, "ep_max_ranks_per_token", epMaxRanksPerToken);
            if (epTimeoutMs != null) moert_native.options_set_int(o, "ep_timeout_ms", epTimeoutMs);
            if (prefixCache != null) moert_native.options_set_int(o, "prefix_cache", prefixCache ? 1 : 0);
            if (speculative != null) moert_native.options_set_string(o, "speculative", speculative);
            if (draftTokens != null) moert_native.options_set_int(o, "draft_tokens", draftTokens);
            if (attention != null) moert_native.options_set_string(o, "attention", attention);
            if (mtp != null) moert_native.options_set_int(o, "mtp", mtp ? 1 : 0);
            if (checkWeights != null) moert_native.options_set_int(o, "check_weights", checkWeights ? 1 : 0);
            if (cudaGraphs != null) moert_native.options_set_int(o, "cuda_graphs", cudaGraphs ? 1 : 0);
            if (kvCacheDtype != null) moert_native.options_set_string(o, "kv_cache_dtype", kvCacheDtype);
            if (activationDtype != null)
                moert_native.options_set_string(o, "activation_dtype", activationDtype);
            return o;
        } catch (RuntimeException e) {
            moert_native.options_free(o);
            throw e;
        }
    }
}
