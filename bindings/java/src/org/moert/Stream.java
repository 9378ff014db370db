package org.moert;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.NoSuchElementException;
import java.util.Spliterator;
import java.util.Spliterators;
import java.util.stream.StreamSupport;
import org.moert.internal.StreamEvent;
import org.moert.internal.StreamUsage;
import org.moert.internal.moert_native;

/**
 * A running generation: an Iterable/Iterator of {@link Token}s, read by one thread at a time;
 * {@link #cancel()} may come from any thread. Closing it cancels a running generation.
 */
public final class Stream extends Handle implements Iterable<Token>, Iterator<Token> {
    private final org.moert.internal.Stream raw;
    @SuppressWarnings("unused")
    private final Model model; // the native stream holds its own reference; this keeps the Java one
    private volatile FinishReason finish = FinishReason.NONE;
    private Token pending;
    private final Object lock = new Object();
    private final boolean logprobs;

    Stream(org.moert.internal.Stream raw, Model model, boolean logprobs) {
        super(() -> moert_native.stream_free(raw));
        this.raw = raw;
        this.model = model;
        this.logprobs = logprobs;
    }

    /** The next event, waiting up to timeoutMs (-1: no limit); a TIMEOUT MoertException if nothing came. */
    public Token nextEvent(int timeoutMs) {
        ensureOpen();
        StreamEvent e = moert_native.stream_next(raw, timeoutMs);
        try {
            TokenLogprobs lp = null;
            if (logprobs && e.getToken() >= 0) {
                float[] v = moert_native.stream_logprob_values(raw);
                lp = new TokenLogprobs(v[0], moert_native.stream_logprob_ids(raw), java.util.Arrays.copyOfRange(v, 1, v.length));
            }
            Token t = new Token(e.getToken(), new String(e.text_utf8(), java.nio.charset.StandardCharsets.UTF_8),
                FinishReason.of(e.getFinish_reason()), lp);
            if (t.finish() != FinishReason.NONE) finish = t.finish();
            return t;
        } finally {
            e.delete();
        }
    }

    @Override
    public boolean hasNext() {
        while (pending == null && finish == FinishReason.NONE) {
            Token t = nextEvent(-1);
            if (t.finish() == FinishReason.ERROR)
                throw new MoertException(MoertException.Status.GENERATION, error());
            if (t.id() >= 0 || !t.text().isEmpty()) pending = t;
        }
        return pending != null;
    }

    @Override
    public Token next() {
        if (!hasNext()) throw new NoSuchElementException();
        Token t = pending;
        pending = null;
        return t;
    }

    @Override
    public Iterator<Token> iterator() {
        return this;
    }

    /** The tokens as a java.util.stream.Stream (sequential). */
    public java.util.stream.Stream<Token> tokens() {
        return StreamSupport.stream(Spliterators.spliteratorUnknownSize(this, Spliterator.ORDERED | Spliterator.NONNULL), false);
    }

    /** Reads to the end; returns the generated token ids. */
    public int[] readIds() {
        List<Integer> ids = new ArrayList<>();
        forEachRemaining(t -> { if (t.id() >= 0) ids.add(t.id()); });
        return ids.stream().mapToInt(Integer::intValue).toArray();
    }

    /** Reads to the end; returns the text. */
    public String readText() {
        StringBuilder b = new StringBuilder();
        forEachRemaining(t -> b.append(t.text()));
        return b.toString();
    }

    public FinishReason finishReason() {
        return finish;
    }

    /** Asks the stream to stop (any thread); it ends with FinishReason.CANCELLED. */
    public void cancel() {
        synchronized (lock) {
            if (!isClosed()) moert_native.stream_cancel(raw);
        }
    }

    public Usage usage() {
        ensureOpen();
        StreamUsage u = moert_native.stream_usage(raw);
        try {
            return new Usage(u.getPrompt_tokens(), u.getGenerated_tokens(), u.getTime_to_first_token_s(), u.getTokens_per_second(),
                u.getCached_prompt_tokens(), u.getDecode_forwards(), u.getDraft_tokens(), u.getAccepted_drafts());
        } finally {
            u.delete();
        }
    }

    /**
     * A counter of the request so far: "cached_prompt_tokens", "decode_forwards", "draft_tokens",
     * "accepted_drafts" (also in {@link #usage()}).
     */
    public long counter(String key) {
        ensureOpen();
        return moert_native.stream_counter(raw, key);
    }

    /**
     * The sampling seed in effect: the one given, or the fresh one a sampled request without a seed drew
     * (pass it to GenerateOptions.seed to repeat the run); 0 for greedy.
     */
    public long seed() {
        ensureOpen();
        return moert_native.stream_info_int(raw, "seed");
    }

    /** Whether the request samples (temperature > 0 after generation_config.json's defaults). */
    public boolean sampled() {
        ensureOpen();
        return moert_native.stream_info_int(raw, "sampled") != 0;
    }

    /** The message of a stream that finished with FinishReason.ERROR ("" otherwise). */
    public String error() {
        ensureOpen();
        return new String(moert_native.stream_error(raw), StandardCharsets.UTF_8);
    }

    @Override
    public void close() {
        synchronized (lock) {
            super.close();
        }
    }
}
