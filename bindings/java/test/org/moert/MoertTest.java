package org.moert;

import static org.junit.Assert.*;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.AfterClass;
import org.junit.BeforeClass;
import org.junit.Test;

/** The Java binding on the shipped moert-tiny-coder. */
public class MoertTest {
    static final String[] PROMPTS = {"def fibonacci(n):\n", "import numpy as np\n\n\ndef normalize(x):\n",
        "class Stack:\n    def __init__(self):\n", "# Read a CSV file and print the sum of each column\n"};
    static Path dir;
    static Model model;
    static int[][] ids = new int[4][], greedy = new int[4][];

    @BeforeClass
    public static void setUp() throws IOException {
        String d = System.getenv("MOERT_MODEL_DIR");
        dir = Path.of(d != null ? d : "samples/models/moert-tiny-coder");
        // A tiny safetensors reader for reference.safetensors.
        byte[] data = Files.readAllBytes(dir.resolve("reference.safetensors"));
        ByteBuffer b = ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN);
        int n = (int) b.getLong(0);
        String header = new String(data, 8, n, StandardCharsets.UTF_8);
        for (int k = 0; k < 4; k++) {
            ids[k] = tensor(b, header, n, "prompt" + k + ".ids");
            greedy[k] = tensor(b, header, n, "prompt" + k + ".greedy");
        }
        model = Model.load(dir, new LoadOptions().threads(2), null);
    }

    static int[] tensor(ByteBuffer b, String header, int n, String name) {
        Matcher m = Pattern.compile("\"" + Pattern.quote(name) + "\":\\{[^}]*\"data_offsets\":\\[(\\d+),(\\d+)\\]").matcher(header);
        assertTrue(name, m.find());
        int s = Integer.parseInt(m.group(1)), t = Integer.parseInt(m.group(2));
        int[] v = new int[(t - s) / 4];
        for (int i = 0; i < v.length; i++) v[i] = b.getInt(8 + n + s + 4 * i);
        return v;
    }

    @AfterClass
    public static void tearDown() {
        model.close();
    }

    static GenerateOptions greedy(int n) {
        return new GenerateOptions().maxTokens(n).ignoreEos(true).temperature(0);
    }

    @Test
    public void greedyMatchesReference() {
        try (Tokenizer tok = model.tokenizer()) {
            for (int k = 0; k < 4; k++) {
                assertArrayEquals(ids[k], tok.encode(PROMPTS[k]));
                try (Stream s = model.generate(ids[k], greedy(48))) {
                    List<Integer> got = new ArrayList<>();
                    StringBuilder text = new StringBuilder();
                    for (Token t : s) {
                        got.add(t.id());
                        text.append(t.text());
                    }
                    assertArrayEquals(greedy[k], got.stream().mapToInt(Integer::intValue).toArray());
                    assertEquals(FinishReason.LENGTH, s.finishReason());
                    assertEquals(tok.decode(greedy[k]), text.toString());
                    Usage u = s.usage();
                    assertEquals(ids[k].length, u.promptTokens());
                    assertEquals(48, u.generatedTokens());
                    assertTrue(u.tokensPerSecond() > 0);
                    assertEquals(-1, s.nextEvent(0).id());
                }
                try (Stream s = model.generate(PROMPTS[k], greedy(48))) {
                    assertArrayEquals(greedy[k], s.tokens().mapToInt(Token::id).toArray());
                }
            }
        }
    }

    @Test
    public void concurrentStreams() throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(8);
        List<Future<int[]>> fs = new ArrayList<>();
        for (int i = 0; i < 8; i++) {
            final int k = i % 4;
            fs.add(pool.submit(() -> {
                try (Stream s = model.generate(ids[k], greedy(48))) {
                    return s.readIds();
                }
            }));
        }
        for (int i = 0; i < 8; i++) assertArrayEquals("thread " + i, greedy[i % 4], fs.get(i).get());
        pool.shutdown();
    }

    @Test
    public void logprobsAreTheModelsLogSoftmax() {
        List<Token> toks = new ArrayList<>();
        try (Stream s = model.generate(ids[0], greedy(4).logprobs(2))) {
            s.forEachRemaining(toks::add);
        }
        assertEquals(4, toks.size());
        int[] seq = Arrays.copyOf(ids[0], ids[0].length + toks.size());
        for (int i = 0; i < toks.size(); i++) {
            Token t = toks.get(i);
            assertEquals(greedy[0][i], t.id());
            float[][] l = model.logits(Arrays.copyOf(seq, ids[0].length + i));
            float[] row = l[l.length - 1];
            double mx = Double.NEGATIVE_INFINITY, sum = 0;
            for (float v : row) mx = Math.max(mx, v);
            for (float v : row) sum += Math.exp(v - mx);
            double want = row[t.id()] - mx - Math.log(sum);
            assertNotNull(t.logprobs());
            assertEquals(want, t.logprobs().logprob(), 1e-3);
            assertEquals(2, t.logprobs().topIds().length);
            assertEquals(t.id(), t.logprobs().topIds()[0]);
            assertEquals(t.logprobs().logprob(), t.logprobs().topLogprobs()[0], 0.0);
            assertTrue(t.logprobs().topLogprobs()[1] <= t.logprobs().topLogprobs()[0]);
            seq[ids[0].length + i] = t.id();
        }
        try (Stream s = model.generate(ids[0], greedy(1))) {
            assertNull(s.next().logprobs());
        }
    }

    @Test
    public void logitBiasForcesAndBans() {
        try (Stream s = model.generate(ids[0], greedy(3).logitBias(65, 100))) {
            assertArrayEquals(new int[] {65, 65, 65}, s.readIds());
        }
        try (Stream s = model.generate(ids[0], greedy(1).logitBias(greedy[0][0], -100))) {
            assertNotEquals(greedy[0][0], s.readIds()[0]);
        }
        try {
            model.generate(ids[0], greedy(1).logitBias(1, 500)).close();
            fail("a bias of 500 was accepted");
        } catch (MoertException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("TOKEN_ID:BIAS"));
        }
    }

    @Test
    public void cancelFromAnotherThread() throws Exception {
        try (Stream s = model.generate(ids[0], greedy(1000000))) {
            assertTrue(s.hasNext());
            s.next();
            Thread t = new Thread(s::cancel);
            t.start();
            t.join();
            s.readIds();
            assertEquals(FinishReason.CANCELLED, s.finishReason());
        }
    }

    @Test
    public void stopsAndSampling() {
        try (Tokenizer tok = model.tokenizer()) {
            String full = tok.decode(greedy[0]);
            String stop = full.substring(6, 11);
            try (Stream s = model.generate(ids[0], greedy(48).stop(stop))) {
                assertEquals(full.substring(0, full.indexOf(stop)), s.readText());
                assertEquals(FinishReason.STOP, s.finishReason());
            }
            try (Stream s = model.generate(ids[0], greedy(48).stopTokenId(greedy[0][3]))) {
                int[] got = s.readIds();
                assertEquals(greedy[0][3], got[got.length - 1]);
                assertEquals(FinishReason.STOP, s.finishReason());
            }
        }
        java.util.function.LongFunction<int[]> run = seed -> {
            try (Stream s = model.generate(ids[1], new GenerateOptions().maxTokens(24).temperature(0.8).topK(40).topP(0.9)
                    .minP(0.02).repetitionPenalty(1.1).presencePenalty(0.2).seed(seed).ignoreEos(true))) {
                return s.readIds();
            }
        };
        assertArrayEquals(run.apply(7), run.apply(7));
        assertFalse(Arrays.equals(run.apply(7), run.apply(8)));
    }

    @Test
    public void tokenizerChatLogitsSession() {
        assertEquals(8320, model.vocabSize());
        assertTrue(model.info("num_layers") > 0);
        assertTrue(model.configJson().startsWith("{"));
        try (Tokenizer tok = model.tokenizer(); Tokenizer t2 = Tokenizer.load(dir.resolve("tokenizer.json"))) {
            int[] x = tok.encode("héllo wörld ✓", false);
            assertEquals("héllo wörld ✓", tok.decode(x));
            assertArrayEquals(tok.encode(PROMPTS[0]), t2.encode(PROMPTS[0]));
            // Moonlight/Kimi-K2's tiktoken.model; the ids are tiktoken's (tests/data/tokenizer-tiktoken).
            try (Tokenizer tk = Tokenizer.load(dir.resolve("../../../tests/data/tokenizer-tiktoken/tiktoken.model"))) {
                assertArrayEquals(new int[] {9906, 3574, 244, 163, 243, 234, 3922, 8687, 254, 161, 98, 121, 10343, 6447, 24002}, tk.encode("Hello世界，你好World！<|im_end|>", false));
            }
            List<Message> msgs = List.of(Message.user("Write a \"function\"."));
            String rendered = tok.applyChatTemplate(msgs, true);
            assertTrue(rendered.contains("Write a \"function\".") && rendered.contains("Assistant"));
            try (Stream s = model.chat(msgs, greedy(8))) {
                assertEquals(8, s.readIds().length);
                assertEquals(tok.encode(rendered, false).length, s.usage().promptTokens());
            }
        }
        float[][] rows = model.logits(ids[0]);
        assertEquals(ids[0].length, rows.length);
        assertEquals(greedy[0][0], argmax(rows[rows.length - 1]));
        try (Session s = model.session()) {
            assertEquals(greedy[0][0], argmax(s.eval(ids[0], false)[0]));
            assertEquals(ids[0].length, s.length());
            float[][] all = s.eval(Arrays.copyOf(greedy[0], 2), true);
            assertEquals(greedy[0][1], argmax(all[0]));
            s.truncate(ids[0].length);
            assertEquals(ids[0].length, s.length());
        }
    }

    static int argmax(float[] r) {
        int b = 0;
        for (int i = 1; i < r.length; i++) if (r[i] > r[b]) b = i;
        return b;
    }

    static MoertException.Status statusOf(Runnable r) {
        try {
            r.run();
        } catch (MoertException e) {
            return e.status();
        }
        return MoertException.Status.OK;
    }

    @Test
    public void errorsAreExceptions() {
        try {
            model.generate(new int[] {1, 99999}, new GenerateOptions());
            fail();
        } catch (MoertException e) {
            assertEquals(MoertException.Status.INVALID_ARGUMENT, e.status());
            assertTrue(e.getMessage(), e.getMessage().contains("99999"));
        }
        assertEquals(MoertException.Status.INVALID_ARGUMENT, statusOf(() -> model.generate(new int[0], new GenerateOptions())));
        assertEquals(MoertException.Status.INVALID_ARGUMENT, statusOf(() -> model.logits(new int[] {5, 8320})));
        assertEquals(MoertException.Status.INVALID_ARGUMENT, statusOf(() -> model.generate("x", new GenerateOptions().temperature(-1))));
        assertEquals(MoertException.Status.INVALID_ARGUMENT, statusOf(() -> model.info("nope")));
        assertEquals(MoertException.Status.IO, statusOf(() -> Model.load(Path.of("/nonexistent/model"))));
        assertEquals(MoertException.Status.IO, statusOf(() -> Tokenizer.load(Path.of("/nonexistent/tokenizer.json"))));
        Stream s = model.generate(new int[] {5}, greedy(1));
        while (true) {
            try {
                s.nextEvent(0);
                break;
            } catch (MoertException e) {
                assertEquals(MoertException.Status.TIMEOUT, e.status());
            }
        }
        s.close();
        s.close();
        assertEquals(MoertException.Status.INVALID_ARGUMENT, statusOf(() -> s.nextEvent(0)));
    }

    static int[] run(GenerateOptions o, long[] seedOut) {
        try (Stream s = model.generate(ids[0], o.maxTokens(32).ignoreEos(true))) {
            if (seedOut != null) seedOut[0] = s.seed();
            return s.readIds();
        }
    }

    /** The shipped generation_config.json (temperature 0.7, top_p 0.95) applies when nothing is set; an
     *  unseeded sampled run reports the seed it drew, and that seed repeats it. */
    @Test
    public void generationConfigDefaultsAndReportedSeed() {
        long[] seed = new long[1];
        int[] byDefault = run(new GenerateOptions().seed(3), seed);
        assertEquals(3, seed[0]);
        assertArrayEquals(byDefault, run(new GenerateOptions().seed(3).temperature(0.7).topP(0.95), null));
        assertArrayEquals(Arrays.copyOf(greedy[0], 32), run(new GenerateOptions().seed(3).temperature(0), null));
        long[] seedA = new long[1], seedB = new long[1];
        int[] a = run(new GenerateOptions(), seedA), b = run(new GenerateOptions(), seedB);
        assertNotEquals(seedA[0], seedB[0]);
        assertArrayEquals(a, run(new GenerateOptions().seed(seedA[0]), null));
        assertArrayEquals(b, run(new GenerateOptions().seed(seedB[0]), null));
        try (Stream s = model.generate(ids[0], greedy(2))) {
            assertFalse(s.sampled());
            assertEquals(0, s.seed());
        }
    }

    @Test
    public void decodeUnknownIdIsAnError() {
        try (Tokenizer tok = model.tokenizer()) {
            tok.decode(new int[] {5, 99999, 7});
            fail();
        } catch (MoertException e) {
            assertEquals(MoertException.Status.INVALID_ARGUMENT, e.status());
            assertTrue(e.getMessage(), e.getMessage().contains("token id 99999 at position 1"));
        }
    }

    @Test
    public void batchInvariantAndExpertParallelLoadOptions() {
        LoadOptions opts = new LoadOptions().threads(2).batchInvariant(true).epTransport("inproc").epOverlap(true)
            .epRedundant(1);
        try (Model m = Model.load(dir, opts, null)) {
            assertEquals(1, m.info("ep_overlap"));
            assertEquals(1, m.info("ep_size"));
            assertEquals(0, m.info("ep_rank"));
            for (int k = 0; k < 4; k++) {
                try (Stream s = m.generate(ids[k], greedy(48))) {
                    assertArrayEquals("prompt " + k, greedy[k], s.readIds());
                }
            }
        }
        try {
            Model.load(dir, new LoadOptions().epTransport("tcp"), null);
            fail();
        } catch (MoertException e) {
            assertEquals(MoertException.Status.INVALID_ARGUMENT, e.status());
            assertTrue(e.getMessage(), e.getMessage().contains("'ep_transport' value \"tcp\" is not one of"));
        }
        try {
            Model.load(dir, new LoadOptions().epSize(0), null);
            fail();
        } catch (MoertException e) {
            assertEquals(MoertException.Status.INVALID_ARGUMENT, e.status());
            assertTrue(e.getMessage(), e.getMessage().contains("'ep_size' value 0 is out of range"));
        }
    }

    @Test
    public void loadProgressAndCancel() {
        List<Double> seen = new ArrayList<>();
        try (Model m = Model.load(dir, new LoadOptions().threads(1), (f, stage) -> { seen.add(f); return false; })) {
            assertEquals(8320, m.vocabSize());
        }
        assertFalse(seen.isEmpty());
        assertEquals(1.0, seen.get(seen.size() - 1), 0.0);
        assertEquals(MoertException.Status.CANCELLED, statusOf(() -> Model.load(dir, new LoadOptions(), (f, s) -> f > 0)));
        try {
            Model.load(dir, new LoadOptions(), (f, s) -> { throw new IllegalStateException("boom"); });
            fail();
        } catch (IllegalStateException e) {
            assertEquals("boom", e.getMessage());
        }
    }

    /** More than two 64-token KV pages (the prefix cache shares whole pages). */
    static int[] longPrompt(Model m) {
        try (Tokenizer tok = m.tokenizer()) {
            int[] v = tok.encode("def add(a, b):\n    return a + b\n\n\n".repeat(12));
            assertTrue(v.length > 128);
            return v;
        }
    }

    static void assertInvalidLoad(LoadOptions o, String key) {
        try {
            Model.load(dir, o, null).close();
            fail(key);
        } catch (MoertException e) {
            assertEquals(MoertException.Status.INVALID_ARGUMENT, e.status());
            assertTrue(e.getMessage(), e.getMessage().contains(key));
        }
    }

    @Test
    public void prefixCacheAndSpeculationLoadOptions() {
        int[] p = longPrompt(model);
        int[] first;
        try (Stream s = model.generate(p, greedy(4))) {
            first = s.readIds();
            Usage u = s.usage();
            assertEquals(0, u.draftTokens()); // no MTP module in the default model
            assertEquals(0, u.acceptedDrafts());
            assertTrue(u.toString(), u.decodeForwards() > 0);
        }
        try (Stream s = model.generate(p, greedy(4))) {
            assertArrayEquals(first, s.readIds());
            assertTrue(s.usage().toString(), s.usage().cachedPromptTokens() > 0);
            assertEquals(s.usage().cachedPromptTokens(), s.counter("cached_prompt_tokens"));
            assertEquals(MoertException.Status.INVALID_ARGUMENT, statusOf(() -> s.counter("nope")));
        }
        LoadOptions off = new LoadOptions().threads(2).prefixCache(false).speculative("off").draftTokens(2);
        try (Model m = Model.load(dir, off, null)) {
            for (int i = 0; i < 2; i++) {
                try (Stream s = m.generate(p, greedy(4))) {
                    assertArrayEquals(first, s.readIds());
                    assertEquals(0, s.usage().cachedPromptTokens());
                }
            }
        }
        assertInvalidLoad(new LoadOptions().speculative("sometimes"), "speculative");
        assertInvalidLoad(new LoadOptions().draftTokens(4), "draft_tokens");
    }

    @Test
    public void kvHandoff() {
        byte[] image;
        try (Session sess = model.session()) {
            assertEquals(MoertException.Status.INVALID_ARGUMENT, statusOf(sess::export)); // empty
            sess.eval(ids[1], false);
            image = sess.export();
        }
        assertTrue(image.length > 0);
        try (Model other = Model.load(dir, new LoadOptions().threads(2), null)) { // a second instance
            try (Stream s = other.generateResume(image, greedy(24))) {
                assertArrayEquals(Arrays.copyOf(greedy[1], 24), s.readIds());
            }
            int[] next = Arrays.copyOf(ids[1], ids[1].length + 1);
            next[ids[1].length] = greedy[1][0];
            float[][] direct = model.logits(next);
            try (Session imported = other.importSession(image)) {
                assertEquals(ids[1].length, imported.length());
                float[] row = imported.eval(new int[] {greedy[1][0]}, false)[0];
                float[] want = direct[direct.length - 1];
                for (int i = 0; i < want.length; i++) assertEquals(want[i], row[i], 1e-4 + 1e-4 * Math.abs(want[i]));
            }
            byte[] bad = image.clone();
            bad[bad.length / 2] ^= 0x40;
            try {
                other.generateResume(bad, greedy(4)).close();
                fail();
            } catch (MoertException e) {
                assertEquals(MoertException.Status.FORMAT, e.status());
                assertTrue(e.getMessage(), e.getMessage().contains("checksum"));
            }
            assertEquals(MoertException.Status.FORMAT, statusOf(() -> other.importSession(bad).close()));
            assertEquals(MoertException.Status.FORMAT,
                statusOf(() -> other.importSession(Arrays.copyOf(image, 100)).close()));
        }
    }

    @Test
    public void speculativeDecodingWithMtpModule() {
        Path mtp = Path.of(System.getProperty("moert.mtp.dir", dir.resolve("../../../tests/data/moert-tiny-coder-mtp").toString()));
        for (String mode : new String[] {"on", "auto", "off"}) { // auto: no drafts on the CPU, where they do not pay
            try (Model m = Model.load(mtp, new LoadOptions().threads(2).speculative(mode), null);
                 Stream s = m.generate(ids[0], greedy(48))) {
                assertArrayEquals(mode, greedy[0], s.readIds()); // greedy: the same tokens with and without drafts
                Usage u = s.usage();
                assertEquals(u.toString(), mode.equals("on"), u.draftTokens() > 0);
                assertTrue(u.toString(), u.acceptedDrafts() <= u.draftTokens());
            }
        }
    }

    // The keys added to the builders reach the C API under their own names (a bad value is the C API's error
    // naming the key).
    @Test
    public void cacheWeightCheckAndChatOptionsReachTheLibrary() {
        Path mtp = Path.of(System.getProperty("moert.mtp.dir", dir.resolve("../../../tests/data/moert-tiny-coder-mtp").toString()));
        LoadOptions all = new LoadOptions().threads(1).attention("absorbed").mtp(false).checkWeights(false)
                .cudaGraphs(false).kvCacheDtype("fp32").activationDtype("fp32");
        try (Model m = Model.load(mtp, all, null)) {
            assertEquals(0, m.info("num_mtp_layers")); // mtp(false): the module is not loaded
        }
        try (Model m = Model.load(mtp, new LoadOptions().threads(1), null)) {
            assertEquals(1, m.info("num_mtp_layers"));
        }
        assertEquals(MoertException.Status.UNSUPPORTED,
            statusOf(() -> Model.load(dir, new LoadOptions().kvCacheDtype("bf16"), null).close()));
        assertEquals(MoertException.Status.UNSUPPORTED,
            statusOf(() -> Model.load(dir, new LoadOptions().activationDtype("bf16"), null).close()));
        try {
            Model.load(dir, new LoadOptions().attention("sideways"), null).close();
            fail();
        } catch (MoertException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("'attention' value \"sideways\""));
        }
        // Without the assistant prompt the chat prompt is shorter.
        java.util.List<Message> chat = java.util.List.of(Message.user("hi"));
        long with, without;
        try (Stream s = model.chat(chat, greedy(1))) {
            s.readIds();
            with = s.usage().promptTokens();
        }
        try (Stream s = model.chat(chat, greedy(1).addGenerationPrompt(false))) {
            s.readIds();
            without = s.usage().promptTokens();
        }
        assertTrue(with + " vs " + without, without < with);
    }
}
