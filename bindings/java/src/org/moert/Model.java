package org.moert;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import org.moert.internal.moert_native;

/**
 * A loaded model: immutable, shared by any number of threads.
 *
 * <pre>{@code
 * try (Model model = Model.load(Path.of("samples/models/moert-tiny-coder"));
 *      Stream s = model.generate("def fibonacci(n):\n", new GenerateOptions().maxTokens(32))) {
 *     for (Token t : s) System.out.print(t.text());
 * }
 * }</pre>
 */
public final class Model extends Handle {
    final org.moert.internal.Model raw;
    private final int vocab;

    private Model(org.moert.internal.Model raw) {
        super(() -> moert_native.model_free(raw));
        this.raw = raw;
        this.vocab = (int) moert_native.model_info_int(raw, "vocab_size");
    }

    /** Receives load progress on the loading thread; return true to cancel the load. */
    @FunctionalInterface
    public interface Progress {
        boolean onProgress(double fraction, String stage);
    }

    public static Model load(Path dir) {
        return load(dir, new LoadOptions(), null);
    }

    /** Loads a Hugging Face DeepSeek checkpoint directory; progress may be null. */
    public static Model load(Path dir, LoadOptions options, Progress progress) {
        Native.init();
        org.moert.internal.Options o = options.build();
        Listener l = progress == null ? null : new Listener(progress);
        try {
            return new Model(moert_native.model_load(dir.toString(), o, l));
        } catch (MoertException e) {
            if (l != null && l.error != null) {
                if (l.error instanceof RuntimeException) throw (RuntimeException) l.error;
                if (l.error instanceof Error) throw (Error) l.error;
                throw new RuntimeException(l.error);
            }
            throw e;
        } finally {
            moert_native.options_free(o);
            if (l != null) l.delete();
        }
    }

    private static final class Listener extends org.moert.internal.ProgressListener {
        final Progress fn;
        Throwable error;

        Listener(Progress fn) {
            this.fn = fn;
        }

        @Override
        public boolean on_progress(double fraction, String stage) {
            try {
                return fn.onProgress(fraction, stage);
            } catch (Throwable t) { // rethrown by load: an exception cannot cross moert
                error = t;
                return true;
            }
        }
    }

    /**
     * An integer fact: "vocab_size", "context_length", "num_layers", "hidden_size", "num_experts", ...,
     * "ep_rank" (0 without expert parallelism), "ep_size" (1 without), "ep_overlap" (1 when the
     * two-microbatch overlap is in effect), and the CPU kernels' paths: "cpu_isa" (0 portable, 1 AVX2,
     * 2 AVX-512), "cpu_amx_bf16" / "cpu_amx_int8" (1 when prefill runs on AMX tiles), "cpu_q4_int8".
     */
    public long info(String key) {
        ensureOpen();
        return moert_native.model_info_int(raw, key);
    }

    public int vocabSize() {
        return vocab;
    }

    /** The model config as moert understood it (JSON). */
    public String configJson() {
        ensureOpen();
        return new String(moert_native.model_config_json(raw), StandardCharsets.UTF_8);
    }

    /** The model's tokenizer (a new handle: close it). */
    public Tokenizer tokenizer() {
        ensureOpen();
        return new Tokenizer(moert_native.model_tokenizer(raw));
    }

    /** Logits for a token sequence in one forward pass: tokens.length rows of vocabSize() floats. */
    public float[][] logits(int[] tokens) {
        ensureOpen();
        float[] flat = new float[tokens.length * vocab];
        moert_native.model_logits(raw, tokens, flat);
        float[][] rows = new float[tokens.length][];
        for (int i = 0; i < tokens.length; i++) rows[i] = java.util.Arrays.copyOfRange(flat, i * vocab, (i + 1) * vocab);
        return rows;
    }

    /** A new evaluation session (its own KV cache). */
    public Session session() {
        ensureOpen();
        return new Session(moert_native.session_create(raw), vocab);
    }

    /**
     * A new session holding an exported sequence ({@link Session#export()}'s image, from this or another process
     * that loaded the same checkpoint); evaluate on from it. A truncated, corrupt or mismatched image is a FORMAT
     * MoertException whose message names the check that failed.
     */
    public Session importSession(byte[] image) {
        ensureOpen();
        return new Session(moert_native.session_import(raw, image), vocab);
    }

    /**
     * Continues an exported sequence ({@link Session#export()}'s image) as a stream: the first token is sampled
     * from the image's last logits, as a stream of the same prompt would have; only the continuation is
     * streamed. Errors as {@link #importSession}'s.
     */
    public Stream generateResume(byte[] image, GenerateOptions options) {
        ensureOpen();
        org.moert.internal.Options o = options.build();
        try {
            return new Stream(moert_native.generate_resume(raw, image, o), this, options.wantsLogprobs());
        } finally {
            moert_native.options_free(o);
        }
    }

    /** Starts generating after a text prompt. */
    public Stream generate(String prompt, GenerateOptions options) {
        ensureOpen();
        org.moert.internal.Options o = options.build();
        try {
            return new Stream(moert_native.generate_text(raw, prompt.getBytes(StandardCharsets.UTF_8), o), this, options.wantsLogprobs());
        } finally {
            moert_native.options_free(o);
        }
    }

    /** Starts generating after a prompt of token ids. */
    public Stream generate(int[] prompt, GenerateOptions options) {
        ensureOpen();
        org.moert.internal.Options o = options.build();
        try {
            return new Stream(moert_native.generate_tokens(raw, prompt, o), this, options.wantsLogprobs());
        } finally {
            moert_native.options_free(o);
        }
    }

    /** Starts generating after chat messages rendered with the chat template. */
    public Stream chat(java.util.List<Message> messages, GenerateOptions options) {
        ensureOpen();
        org.moert.internal.Options o = options.build();
        try {
            byte[] js = Message.toJson(messages).getBytes(StandardCharsets.UTF_8);
            return new Stream(moert_native.generate_chat(raw, js, o), this, options.wantsLogprobs());
        } finally {
            moert_native.options_free(o);
        }
    }

    /** moert's version string. */
    public static String version() {
        Native.init();
        return moert_native.version_string();
    }
}
