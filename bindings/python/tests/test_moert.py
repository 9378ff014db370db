"""The Python binding on the shipped moert-tiny-coder: transformers' greedy references, errors, cancel,
concurrent streams, tokenizer, logits, sessions and resource handling."""
import gc
import io
import os
import threading

import numpy as np
import pytest

import moert
from conftest import LONG_PROMPT, MODEL_DIR, MTP_MODEL_DIR, PROMPTS


def test_version():
    assert moert.api_version() >= moert.API_VERSION == 5
    assert moert.__version__.count(".") == 2


def test_model_info(model):
    assert model.vocab_size == 8320
    assert 0 < model.tokenizer.info("vocab_size") <= model.vocab_size
    assert model.info("num_layers") > 0
    assert model.info("cpu_isa") in (0, 1, 2) and model.info("cpu_amx_bf16") in (0, 1)
    assert model.context_length > 0
    assert isinstance(model.config, dict)


@pytest.mark.parametrize("k", range(4))
def test_greedy_reference_from_ids_and_text(model, reference, k):
    ids, want = reference[k]
    assert model.tokenizer.encode(PROMPTS[k]) == ids
    with model.generate(ids, max_tokens=48, ignore_eos=True, temperature=0) as s:
        events = list(s)
        assert [t.id for t in events] == want
        assert s.finish_reason == moert.FinishReason.LENGTH
        assert "".join(t.text for t in events) == model.tokenizer.decode(want)
        u = s.usage
        assert (u.prompt_tokens, u.generated_tokens) == (len(ids), 48)
        assert u.time_to_first_token_s > 0 and u.tokens_per_second > 0
        # After the end the final event comes again.
        assert s.next(0) == moert.Token(-1, "", moert.FinishReason.LENGTH)
    with model.generate(PROMPTS[k], max_tokens=48, ignore_eos=True, temperature=0) as s:
        assert s.token_ids() == want


def test_tokenizer(model):
    tok = model.tokenizer
    ids = tok.encode("héllo wörld ✓", add_bos=False)
    assert tok.decode(ids) == "héllo wörld ✓"
    assert tok.encode("x", add_bos=True)[0] == model.bos_token_id
    chat = tok.apply_chat_template([{"role": "user", "content": "Write a function."}])
    assert "Write a function." in chat and "Assistant" in chat
    with moert.Tokenizer.load(MODEL_DIR + "/tokenizer.json") as t2:
        assert t2.encode(PROMPTS[0]) == tok.encode(PROMPTS[0])


def test_tiktoken_tokenizer():
    # Moonlight/Kimi-K2's format; the ids are tiktoken's (tests/data/tokenizer-tiktoken/encode_cases.jsonl).
    d = os.path.join(os.path.dirname(__file__), "..", "..", "..", "tests", "data", "tokenizer-tiktoken")
    with moert.Tokenizer.load(os.path.join(d, "tiktoken.model")) as t:
        assert t.encode("Hello世界，你好World！<|im_end|>") == [9906, 3574, 244, 163, 243, 234, 3922, 8687, 254, 161, 98, 121, 10343, 6447, 24002]
        assert t.decode(t.encode("Hello世界，你好World！")) == "Hello世界，你好World！"


def test_chat(model):
    msgs = [{"role": "user", "content": "Write a function."}]
    with model.chat(msgs, max_tokens=8, ignore_eos=True) as s:
        assert len(s.token_ids()) == 8
        rendered = model.tokenizer.apply_chat_template(msgs)
        assert s.usage.prompt_tokens == len(model.tokenizer.encode(rendered, add_bos=False))


def test_chat_template_variables(tmp_path):
    # A template without a native renderer (moert's jinja engine): tools and other keywords are variables,
    # as in transformers; raise_exception surfaces as InvalidArgumentError, an unsupported tag as Unsupported.
    import json
    import shutil
    shutil.copy(os.path.join(MODEL_DIR, "tokenizer.json"), tmp_path / "tokenizer.json")
    with open(os.path.join(MODEL_DIR, "tokenizer_config.json")) as f:
        cfg = json.load(f)

    def load(template):
        cfg["chat_template"] = template
        (tmp_path / "tokenizer_config.json").write_text(json.dumps(cfg))
        return moert.Tokenizer.load(str(tmp_path / "tokenizer.json"))

    with load("{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}"
              "{% if tools %}{{ tools | tojson }}{% endif %}{% if think is defined %}[think={{ think }}]{% endif %}") as t:
        msgs = [{"role": "user", "content": "hi"}]
        assert t.apply_chat_template(msgs) == "<user>hi"
        assert t.apply_chat_template(msgs, tools=[{"name": "f"}], think=False) == '<user>hi[{"name": "f"}][think=False]'
        assert t.apply_chat_template({"messages": msgs, "tools": []}) == "<user>hi"
    with load("{{ raise_exception('no ' ~ 'way') }}") as t:
        with pytest.raises(moert.InvalidArgumentError, match="line 1: no way"):
            t.apply_chat_template([])
    with load("{% include 'x' %}") as t:
        with pytest.raises(moert.UnsupportedError, match="include"):
            t.apply_chat_template([])


def test_stop_string_and_stop_token(model, reference):
    ids, want = reference[0]
    full = model.tokenizer.decode(want)
    stop = full[6:11]
    with model.generate(ids, max_tokens=48, ignore_eos=True, temperature=0, stop=[stop]) as s:
        assert s.text() == full[:full.index(stop)]
        assert s.finish_reason == moert.FinishReason.STOP
    with model.generate(ids, max_tokens=48, ignore_eos=True, temperature=0, stop_token_ids=[want[3]]) as s:
        got = s.token_ids()
        assert s.finish_reason == moert.FinishReason.STOP
        assert got == want[:got.index(want[3]) + 1]


def test_seeded_sampling(model, reference):
    ids = reference[1][0]
    run = lambda seed: model.generate(ids, max_tokens=24, temperature=0.8, top_p=0.9, top_k=40, min_p=0.02,
                                      repetition_penalty=1.1, presence_penalty=0.2, seed=seed,
                                      ignore_eos=True).token_ids()
    assert run(7) == run(7)
    assert run(7) != run(8)


def test_generation_config_defaults_and_reported_seed(model, reference):
    ids, want = reference[0]
    # The shipped generation_config.json (temperature 0.7, top_p 0.95) applies when nothing is set.
    run = lambda **o: model.generate(ids, max_tokens=32, ignore_eos=True, **o)
    with run(seed=3) as s:
        assert s.sampled and s.seed == 3
        by_default = s.token_ids()
    assert run(seed=3, temperature=0.7, top_p=0.95).token_ids() == by_default
    assert run(seed=3, temperature=0).token_ids() == want[:32]
    # Without a seed a sampled run draws a fresh one, reported so that it can be repeated.
    a, b = run(), run()
    ta, tb = a.token_ids(), b.token_ids()
    assert a.seed != b.seed
    assert run(seed=a.seed).token_ids() == ta and run(seed=b.seed).token_ids() == tb
    with run(temperature=0) as g:
        assert (g.sampled, g.seed) == (False, 0)


def test_detokenize_unknown_id_is_an_error(model):
    with pytest.raises(moert.InvalidArgumentError) as e:
        model.tokenizer.decode([5, 99999, 7])
    assert "token id 99999 at position 1" in str(e.value)
    with pytest.raises(moert.InvalidArgumentError):
        model.tokenizer.decode([-1])


def test_check_weights_load_option():
    with moert.load(MODEL_DIR, threads=1, check_weights=False) as m:
        assert m.vocab_size == 8320


def test_logits_match_greedy(model, reference):
    ids, want = reference[0]
    logits = model.logits(ids)
    assert logits.shape == (len(ids), model.vocab_size) and logits.dtype == np.float32
    assert int(np.argmax(logits[-1])) == want[0]
    with model.session() as sess:
        last = sess.eval(ids)
        assert last.shape == (model.vocab_size,)
        np.testing.assert_allclose(last, logits[-1], rtol=1e-4, atol=1e-4)
        assert len(sess) == len(ids)
        rows = sess.eval(want[:2], all_logits=True)
        assert rows.shape == (2, model.vocab_size)
        assert int(np.argmax(rows[0])) == want[1]
        sess.truncate(len(ids))
        assert len(sess) == len(ids)


def test_logprobs(model, reference):
    ids, want = reference[0]
    toks = list(model.generate(ids, max_tokens=6, temperature=0, ignore_eos=True, logprobs=3))
    assert [t.id for t in toks] == want[:6]
    seq = list(ids)
    for t in toks:
        row = model.logits(seq)[-1].astype(np.float64)
        lsm = row - row.max() - np.log(np.exp(row - row.max()).sum())
        assert t.logprobs is not None and len(t.logprobs.top) == 3
        assert t.logprobs.top[0][0] == t.id and t.logprobs.top[0][1] == t.logprobs.logprob
        assert abs(t.logprobs.logprob - lsm[t.id]) < 1e-3
        assert [i for i, _ in t.logprobs.top] == [int(i) for i in np.argsort(-lsm, kind="stable")[:3]]
        seq.append(t.id)
    # Without the option no token carries them; 0 gives the token's own only.
    assert all(t.logprobs is None for t in model.generate(ids, max_tokens=2, temperature=0))
    one = next(iter(model.generate(ids, max_tokens=1, temperature=0, logprobs=0)))
    assert one.logprobs.top == [] and one.logprobs.logprob < 0
    with pytest.raises(moert.InvalidArgumentError):
        model.generate(ids, logprobs=21)


def test_logit_bias(model, reference):
    ids, want = reference[0]
    forced = [t.id for t in model.generate(ids, max_tokens=4, temperature=0, logit_bias={65: 100})]
    assert forced == [65] * 4
    banned = next(iter(model.generate(ids, max_tokens=1, temperature=0, logit_bias={want[0]: -100.0})))
    assert banned.id != want[0]
    with pytest.raises(moert.InvalidArgumentError):
        model.generate(ids, logit_bias={1: 500})
    with pytest.raises(moert.InvalidArgumentError):
        model.generate(ids, logit_bias={10 ** 6: 1})


def test_errors(model):
    with pytest.raises(moert.InvalidArgumentError) as e:
        model.generate([1, 99999])
    assert "99999" in str(e.value) and e.value.status == 1
    assert isinstance(e.value, ValueError) and isinstance(e.value, moert.Error)
    with pytest.raises(moert.InvalidArgumentError):
        model.generate([])
    with pytest.raises(moert.InvalidArgumentError):
        model.logits([5, 8320])
    with pytest.raises(moert.InvalidArgumentError):
        model.chat("not json")
    with pytest.raises(moert.InvalidArgumentError) as e:
        model.generate("x", temperature=-1)
    assert "temperature" in str(e.value)
    with pytest.raises(moert.InvalidArgumentError):
        model.generate("x", stop_token_ids=[-4])
    with pytest.raises(moert.IoError) as e:
        moert.load("/nonexistent/model")
    assert isinstance(e.value, OSError) and e.value.status_name == "MOERT_ERR_IO"
    with pytest.raises(moert.IoError):
        moert.Tokenizer.load("/nonexistent/tokenizer.json")
    with pytest.raises(moert.InvalidArgumentError):
        moert.load(MODEL_DIR, max_batch=-3)
    s = model.generate([5], max_tokens=1)
    s.close()
    s.close()  # idempotent
    with pytest.raises(moert.InvalidArgumentError):
        s.next()


def test_timeout_is_an_error(model):
    with model.generate([5], max_tokens=1) as s:
        got = None
        while got is None:
            try:
                got = s.next(0)
            except moert.TimeoutError as e:
                assert isinstance(e, TimeoutError)


def test_cancel_from_another_thread(model, reference):
    ids = reference[0][0]
    with model.generate(ids, max_tokens=1000000, ignore_eos=True) as s:
        it = iter(s)
        next(it)
        t = threading.Thread(target=s.cancel)
        t.start()
        t.join()
        for _ in it:
            pass
        assert s.finish_reason == moert.FinishReason.CANCELLED
        assert s.usage.generated_tokens < 1000000


def test_concurrent_streams_from_threads(model, reference):
    got = [None] * 8
    errors = []

    def work(i):
        try:
            ids = reference[i % 4][0]
            with model.generate(ids, max_tokens=48, ignore_eos=True, temperature=0) as s:
                got[i] = s.token_ids()
        except Exception as e:  # pragma: no cover
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i in range(8):
        assert got[i] == reference[i % 4][1], i


def test_batch_invariant_and_expert_parallel_load_options(reference):
    with moert.load(MODEL_DIR, threads=2, batch_invariant=True, ep_transport="inproc", ep_overlap=1,
                    ep_redundant=1) as m:
        assert (m.info("ep_overlap"), m.info("ep_size"), m.info("ep_rank")) == (1, 1, 0)
        for ids, want in reference:
            with m.generate(ids, max_tokens=48, ignore_eos=True, temperature=0) as s:
                assert s.token_ids() == want
    with pytest.raises(moert.InvalidArgumentError) as e:
        moert.load(MODEL_DIR, ep_overlap=2)
    assert "'ep_overlap' value 2 is out of range" in str(e.value)
    with pytest.raises(moert.InvalidArgumentError) as e:
        moert.load(MODEL_DIR, ep_transport="tcp")
    assert "'ep_transport' value \"tcp\" is not one of" in str(e.value)


def test_load_progress_and_cancel():
    seen = []
    with moert.load(MODEL_DIR, threads=1, progress=lambda f, stage: seen.append((f, stage))) as m:
        assert m.vocab_size == 8320
    assert seen and seen[-1][0] == 1.0
    assert all(0.0 <= f <= 1.0 for f, _ in seen)
    with pytest.raises(moert.CancelledError):
        moert.load(MODEL_DIR, progress=lambda f, stage: f > 0)
    with pytest.raises(KeyError):  # an exception in the callback cancels the load and comes back
        moert.load(MODEL_DIR, progress=lambda f, stage: {}["boom"])
    bar = io.StringIO()
    with moert.load(MODEL_DIR, threads=1, progress=moert._ProgressBar(bar)):
        pass
    assert "100%" in bar.getvalue()


def test_resources_freed(reference):
    m = moert.load(MODEL_DIR, threads=1)
    s = m.generate(reference[0][0], max_tokens=4, ignore_eos=True)
    m.close()  # the stream keeps the model alive
    assert m.closed
    assert len(s.token_ids()) == 4
    s.close()
    # Forgotten handles are freed by the collector.
    m2 = moert.load(MODEL_DIR, threads=1)
    m2.generate("x", max_tokens=2)
    del m2
    gc.collect()


def test_prefix_cache_and_speculation_load_options(model):
    ids = model.tokenizer.encode(LONG_PROMPT)
    assert len(ids) > 128
    with model.generate(ids, max_tokens=4, ignore_eos=True, temperature=0) as s:
        first = s.token_ids()
        u = s.usage
        assert u.draft_tokens == 0 and u.accepted_drafts == 0  # no MTP module in the default model
        assert u.decode_forwards > 0
    with model.generate(ids, max_tokens=4, ignore_eos=True, temperature=0) as s:
        assert s.token_ids() == first
        assert s.usage.cached_prompt_tokens > 0
        assert s.counter("cached_prompt_tokens") == s.usage.cached_prompt_tokens
        with pytest.raises(moert.InvalidArgumentError):
            s.counter("nope")
    with moert.load(MODEL_DIR, threads=2, prefix_cache=False, speculative="off", draft_tokens=2) as m:
        for _ in range(2):
            with m.generate(ids, max_tokens=4, ignore_eos=True, temperature=0) as s:
                assert s.token_ids() == first
                assert s.usage.cached_prompt_tokens == 0
    with pytest.raises(moert.InvalidArgumentError) as e:
        moert.load(MODEL_DIR, speculative="sometimes")
    assert "speculative" in str(e.value)
    with pytest.raises(moert.InvalidArgumentError) as e:
        moert.load(MODEL_DIR, draft_tokens=4)
    assert "draft_tokens" in str(e.value)
    with pytest.raises(moert.InvalidArgumentError) as e:
        moert.load(MODEL_DIR, prefix_cache=2)
    assert "prefix_cache" in str(e.value)


def test_kv_handoff(model, reference):
    ids, want = reference[1]
    with model.session() as sess:
        with pytest.raises(moert.InvalidArgumentError):
            sess.export()  # empty
        sess.eval(ids)
        image = sess.export()
    assert isinstance(image, bytes) and len(image) > 0
    with moert.load(MODEL_DIR, threads=2) as other:  # a second instance continues the sequence
        with other.generate_resume(image, max_tokens=24, ignore_eos=True, temperature=0) as s:
            assert s.token_ids() == want[:24]
        with other.import_session(bytearray(image)) as imported:
            assert len(imported) == len(ids)
            np.testing.assert_allclose(imported.eval([want[0]]), model.logits(ids + [want[0]])[-1],
                                       rtol=1e-4, atol=1e-4)
        bad = bytearray(image)
        bad[len(bad) // 2] ^= 0x40
        with pytest.raises(moert.FormatError) as e:
            other.generate_resume(bytes(bad), max_tokens=4)
        assert "checksum" in str(e.value) and e.value.status == 3
        with pytest.raises(moert.FormatError):
            other.import_session(bad)
        with pytest.raises(moert.FormatError):
            other.import_session(image[:100])


def test_speculative_decoding_with_mtp_module(reference):
    ids = reference[0][0]
    with moert.load(MTP_MODEL_DIR, threads=2) as m:  # "auto": no drafts on the CPU, where they do not pay
        with m.generate(ids, max_tokens=8, ignore_eos=True, temperature=0) as s:
            s.token_ids()
            assert s.usage.draft_tokens == 0
    with moert.load(MTP_MODEL_DIR, threads=2, speculative="on") as m:
        assert m.info("num_mtp_layers") == 1
        with m.generate(ids, max_tokens=48, ignore_eos=True, temperature=0) as s:
            auto = s.token_ids()
            u = s.usage
        assert u.draft_tokens > 0 and 0 <= u.accepted_drafts <= u.draft_tokens
    with moert.load(MTP_MODEL_DIR, threads=2, speculative="off") as m:
        with m.generate(ids, max_tokens=48, ignore_eos=True, temperature=0) as s:
            assert s.token_ids() == auto
            assert s.usage.draft_tokens == 0
    assert auto == reference[0][1]  # the main model is the default one: the same greedy tokens
