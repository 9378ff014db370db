package org.moert;

/** One streamed event: the token id (-1 for a final event without one), its text, the finish reason. */
public record Token(int id, String text, FinishReason finish) {}
