package org.moert;

/**
 * Usage of a stream so far, with the request's counters: prompt tokens taken from the prefix cache instead of
 * computed, main-model forwards after the prompt, tokens the MTP module drafted and drafts the main model
 * confirmed (each saves a forward).
 */
public record Usage(long promptTokens, long generatedTokens, double timeToFirstTokenSeconds, double tokensPerSecond,
                    long cachedPromptTokens, long decodeForwards, long draftTokens, long acceptedDrafts) {}
