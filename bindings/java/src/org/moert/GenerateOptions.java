package org.moert;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.moert.internal.moert_native;

/**
 * Generation settings (a builder); unset ones keep the defaults: the checkpoint's generation_config.json
 * for temperature, topP, topK and repetitionPenalty (as transformers and vLLM do), else greedy; 256 tokens.
 */
public final class GenerateOptions {
    private Long maxTokens, topK, seed, logprobs;
    private Double temperature, topP, minP, repetitionPenalty, presencePenalty, frequencyPenalty;
    private Boolean ignoreEos, addGenerationPrompt;
    private final List<String> stop = new ArrayList<>();
    private final List<Integer> stopTokenIds = new ArrayList<>();
    private final java.util.Map<Integer, Double> logitBias = new java.util.LinkedHashMap<>();

    public GenerateOptions maxTokens(int n) { maxTokens = (long) n; return this; }
    public GenerateOptions temperature(double t) { temperature = t; return this; }
    public GenerateOptions topK(int k) { topK = (long) k; return this; }
    public GenerateOptions topP(double p) { topP = p; return this; }
    public GenerateOptions minP(double p) { minP = p; return this; }
    public GenerateOptions repetitionPenalty(double p) { repetitionPenalty = p; return this; }
    public GenerateOptions presencePenalty(double p) { presencePenalty = p; return this; }
    public GenerateOptions frequencyPenalty(double f) { frequencyPenalty = f; return this; }
    public GenerateOptions seed(long s) { seed = s; return this; }
    public GenerateOptions ignoreEos(boolean b) { ignoreEos = b; return this; }
    /** For {@link Model#chat}: end the prompt with the assistant prompt (default true). */
    public GenerateOptions addGenerationPrompt(boolean b) { addGenerationPrompt = b; return this; }
    /** Adds a stop string: generation ends before it (it is not returned). */
    public GenerateOptions stop(String s) { stop.add(s); return this; }
    /** Adds a stop token id: generation ends with it. */
    public GenerateOptions stopTokenId(int id) { stopTokenIds.add(id); return this; }
    /**
     * Each {@link Token} carries its {@link TokenLogprobs}: 0 the token's own log probability, n (at most 20)
     * also the n most likely tokens at each step.
     */
    public GenerateOptions logprobs(int n) { logprobs = (long) n; return this; }

    boolean wantsLogprobs() { return logprobs != null && logprobs >= 0; }
    /** Adds bias (-100 to 100) to a token's logit before sampling (OpenAI's logit_bias). */
    public GenerateOptions logitBias(int tokenId, double bias) { logitBias.put(tokenId, bias); return this; }

    org.moert.internal.Options build() {
        org.moert.internal.Options o = moert_native.options_create();
        try {
            if (maxTokens != null) moert_native.options_set_int(o, "max_tokens", maxTokens);
            if (temperature != null) moert_native.options_set_float(o, "temperature", temperature);
            if (topK != null) moert_native.options_set_int(o, "top_k", topK);
            if (topP != null) moert_native.options_set_float(o, "top_p", topP);
            if (minP != null) moert_native.options_set_float(o, "min_p", minP);
            if (repetitionPenalty != null) moert_native.options_set_float(o, "repetition_penalty", repetitionPenalty);
            if (presencePenalty != null) moert_native.options_set_float(o, "presence_penalty", presencePenalty);
            if (frequencyPenalty != null) moert_native.options_set_float(o, "frequency_penalty", frequencyPenalty);
            if (seed != null) moert_native.options_set_int(o, "seed", seed);
            if (ignoreEos != null) moert_native.options_set_int(o, "ignore_eos", ignoreEos ? 1 : 0);
            if (logprobs != null) moert_native.options_set_int(o, "logprobs", logprobs);
            if (addGenerationPrompt != null)
                moert_native.options_set_int(o, "add_generation_prompt", addGenerationPrompt ? 1 : 0);
            for (String s : stop) moert_native.options_add_string_utf8(o, "stop", s.getBytes(StandardCharsets.UTF_8));
            for (int t : stopTokenIds) moert_native.options_add_int(o, "stop_token_ids", t);
            for (java.util.Map.Entry<Integer, Double> e : logitBias.entrySet())
                moert_native.options_add_string_utf8(o, "logit_bias",
                    (e.getKey() + ":" + e.getValue()).getBytes(StandardCharsets.UTF_8));
            return o;
        } catch (RuntimeException e) {
            moert_native.options_free(o);
            throw e;
        }
    }
}
