package org.moert;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import org.moert.internal.moert_native;

/** A byte-level BPE tokenizer with its chat template; immutable, any thread may use it. */
public final class Tokenizer extends Handle {
    private final org.moert.internal.Tokenizer raw;

    Tokenizer(org.moert.internal.Tokenizer raw) {
        super(() -> moert_native.tokenizer_free(raw));
        this.raw = raw;
    }

    /** Loads tokenizer.json or tiktoken.model (and tokenizer_config.json beside it, which tiktoken.model needs). */
    public static Tokenizer load(Path tokenizerJson) {
        Native.init();
        return new Tokenizer(moert_native.tokenizer_load(tokenizerJson.toString(), null));
    }

    /** "vocab_size", "bos_token_id", "eos_token_id" (-1 when absent), "add_bos_default". */
    public long info(String key) {
        ensureOpen();
        return moert_native.tokenizer_info_int(raw, key);
    }

    /** Text to token ids, BOS as tokenizer_config.json says. */
    public int[] encode(String text) {
        return encode(text, null);
    }

    /** Text to token ids; addBos null follows tokenizer_config.json. */
    public int[] encode(String text, Boolean addBos) {
        ensureOpen();
        return moert_native.tokenize(raw, text.getBytes(StandardCharsets.UTF_8), addBos == null ? -1 : addBos ? 1 : 0, 1);
    }

    /** Token ids to text, special tokens dropped. */
    public String decode(int[] ids) {
        ensureOpen();
        return new String(moert_native.detokenize(raw, ids, 1), StandardCharsets.UTF_8);
    }

    /** Renders chat messages with the chat template. */
    public String applyChatTemplate(List<Message> messages, boolean addGenerationPrompt) {
        ensureOpen();
        byte[] js = Message.toJson(messages).getBytes(StandardCharsets.UTF_8);
        return new String(moert_native.apply_chat_template(raw, js, addGenerationPrompt ? 1 : 0), StandardCharsets.UTF_8);
    }
}
