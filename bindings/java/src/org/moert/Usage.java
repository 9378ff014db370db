package org.moert;

/** Usage of a stream so far. */
public record Usage(long promptTokens, long generatedTokens, double timeToFirstTokenSeconds, double tokensPerSecond) {}
