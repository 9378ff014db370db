package org.moert;

/**
 * A generated token's log probability under the model (the log-softmax of the step's raw logits: the
 * sampling options change which token is drawn, not these), and the step's most likely tokens with theirs,
 * most likely first.
 */
public record TokenLogprobs(float logprob, int[] topIds, float[] topLogprobs) {}
