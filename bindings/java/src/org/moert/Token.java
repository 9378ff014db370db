package org.moert;

/**
 * One streamed event: the token id (-1 for a final event without one), its text, the finish reason, and
 * its log probabilities when the stream was started with {@link GenerateOptions#logprobs} (null otherwise,
 * and for a final event without a token).
 */
public record Token(int id, String text, FinishReason finish, TokenLogprobs logprobs) {
    public Token(int id, String text, FinishReason finish) {
        this(id, text, finish, null);
    }
}
