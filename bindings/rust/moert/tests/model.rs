//! The Rust binding on the shipped moert-tiny-coder: transformers' greedy references, errors, cancel,
//! concurrent streams, tokenizer, logits and sessions, the prefix cache, KV hand-off and speculative decoding.
use moert::{FinishReason, GenerateOptions, LoadOptions, Message, Model, Status, Tokenizer};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

const PROMPTS: [&str; 4] = [
    "def fibonacci(n):\n",
    "import numpy as np\n\n\ndef normalize(x):\n",
    "class Stack:\n    def __init__(self):\n",
    "# Read a CSV file and print the sum of each column\n",
];

fn model_dir() -> PathBuf {
    match std::env::var("MOERT_MODEL_DIR") {
        Ok(d) => PathBuf::from(d),
        Err(_) => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../samples/models/moert-tiny-coder"),
    }
}

/// A tiny safetensors reader: the int32 tensor `name` of reference.safetensors.
fn tensor(data: &[u8], name: &str) -> Vec<i32> {
    let n = u64::from_le_bytes(data[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&data[8..8 + n]).unwrap();
    let at = header.find(&format!("\"{}\"", name)).unwrap_or_else(|| panic!("{} missing", name));
    let key = "\"data_offsets\":[";
    let rest = &header[at..];
    let rest = &rest[rest.find(key).unwrap() + key.len()..];
    let nums: Vec<usize> = rest[..rest.find(']').unwrap()].split(',').map(|s| s.trim().parse().unwrap()).collect();
    data[8 + n + nums[0]..8 + n + nums[1]]
        .chunks(4)
        .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn reference() -> Vec<(Vec<i32>, Vec<i32>)> {
    let data = std::fs::read(model_dir().join("reference.safetensors")).unwrap();
    (0..4)
        .map(|k| (tensor(&data, &format!("prompt{}.ids", k)), tensor(&data, &format!("prompt{}.greedy", k))))
        .collect()
}

fn load() -> Model {
    Model::load_with(model_dir(), &LoadOptions::new().threads(2), None).expect("load")
}

fn greedy(n: i64) -> GenerateOptions {
    GenerateOptions::new().max_tokens(n).ignore_eos(true).temperature(0.0)
}

#[test]
fn greedy_matches_reference_from_ids_and_text() {
    let model = load();
    let tok = model.tokenizer().unwrap();
    for (k, (ids, want)) in reference().iter().enumerate() {
        assert_eq!(&tok.encode(PROMPTS[k], None).unwrap(), ids, "prompt {}", k);
        let mut s = model.generate_tokens(ids, &greedy(48)).unwrap();
        let mut got = Vec::new();
        let mut text = String::new();
        for t in &mut s {
            let t = t.unwrap();
            got.extend(t.id);
            text.push_str(&t.text);
        }
        assert_eq!(&got, want, "prompt {}", k);
        assert_eq!(s.finish_reason(), Some(FinishReason::Length));
        assert_eq!(text, tok.decode(want).unwrap());
        let u = s.usage().unwrap();
        assert_eq!((u.prompt_tokens, u.generated_tokens), (ids.len() as i64, 48));
        assert!(u.time_to_first_token > Duration::ZERO && u.tokens_per_second > 0.0);
        let last = s.next_event(Some(Duration::ZERO)).unwrap();
        assert_eq!((last.id, last.finish), (None, Some(FinishReason::Length)));
        assert_eq!(&model.generate(PROMPTS[k], &greedy(48)).unwrap().collect_tokens().unwrap(), want);
    }
}

#[test]
fn concurrent_streams_from_threads() {
    let model = Arc::new(load());
    let refs = Arc::new(reference());
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let (model, refs) = (Arc::clone(&model), Arc::clone(&refs));
            std::thread::spawn(move || {
                let got = model.generate_tokens(&refs[i % 4].0, &greedy(48)).unwrap().collect_tokens().unwrap();
                assert_eq!(got, refs[i % 4].1, "thread {}", i);
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    // Streams borrowing one model, read by scoped threads.
    let refs = reference();
    std::thread::scope(|sc| {
        for (ids, want) in &refs {
            let s = model.generate_tokens(ids, &greedy(48)).unwrap();
            sc.spawn(move || {
                let mut s = s;
                assert_eq!(&s.collect_tokens().unwrap(), want)
            });
        }
    });
}

#[test]
fn cancel_from_another_thread() {
    let model = load();
    let ids = &reference()[0].0;
    let mut s = model.generate_tokens(ids, &greedy(1_000_000)).unwrap();
    assert!(s.next().unwrap().is_ok());
    let c = s.canceller();
    std::thread::spawn(move || c.cancel().unwrap()).join().unwrap();
    for t in &mut s {
        t.unwrap();
    }
    assert_eq!(s.finish_reason(), Some(FinishReason::Cancelled));
    // Dropping a running stream cancels it.
    let s = model.generate_tokens(ids, &greedy(1_000_000)).unwrap();
    drop(s);
}

#[test]
fn stop_strings_and_tokens_and_sampling() {
    let model = load();
    let tok = model.tokenizer().unwrap();
    let (ids, want) = &reference()[0];
    let full = tok.decode(want).unwrap();
    let stop = &full[6..11];
    let mut s = model.generate_tokens(ids, &greedy(48).stop(stop)).unwrap();
    assert_eq!(s.collect_text().unwrap(), full[..full.find(stop).unwrap()]);
    assert_eq!(s.finish_reason(), Some(FinishReason::Stop));
    let mut s = model.generate_tokens(ids, &greedy(48).stop_token_id(want[3])).unwrap();
    let got = s.collect_tokens().unwrap();
    assert_eq!(s.finish_reason(), Some(FinishReason::Stop));
    assert_eq!(got[..], want[..=want.iter().position(|&t| t == want[3]).unwrap()]);
    let run = |seed| {
        let o = GenerateOptions::new()
            .max_tokens(24)
            .temperature(0.8)
            .top_k(40)
            .top_p(0.9)
            .min_p(0.02)
            .repetition_penalty(1.1)
            .presence_penalty(0.2)
            .seed(seed)
            .ignore_eos(true);
        model.generate_tokens(&reference()[1].0, &o).unwrap().collect_tokens().unwrap()
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8));
}

#[test]
fn tokenizer_chat_logits_session() {
    let model = load();
    assert_eq!(model.info("vocab_size").unwrap(), 8320);
    assert!(model.config_json().unwrap().starts_with('{'));
    let tok = model.tokenizer().unwrap();
    let ids = tok.encode("héllo wörld ✓", Some(false)).unwrap();
    assert_eq!(tok.decode(&ids).unwrap(), "héllo wörld ✓");
    let msgs = [Message::user("Write a function.")];
    let rendered = tok.apply_chat_template(&msgs, true).unwrap();
    assert!(rendered.contains("Write a function.") && rendered.contains("Assistant"));
    let mut s = model.generate_chat(&msgs, &greedy(8)).unwrap();
    assert_eq!(s.collect_tokens().unwrap().len(), 8);
    assert_eq!(s.usage().unwrap().prompt_tokens as usize, tok.encode(&rendered, Some(false)).unwrap().len());
    let t2 = Tokenizer::load(model_dir().join("tokenizer.json")).unwrap();
    assert_eq!(t2.encode(PROMPTS[0], None).unwrap(), tok.encode(PROMPTS[0], None).unwrap());
    // Moonlight/Kimi-K2's tiktoken.model; the ids are tiktoken's (tests/data/tokenizer-tiktoken).
    let tk = Tokenizer::load(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../tests/data/tokenizer-tiktoken/tiktoken.model"),
    )
    .unwrap();
    assert_eq!(tk.encode("Hello世界，你好World！<|im_end|>", Some(false)).unwrap(), vec![9906, 3574, 244, 163, 243, 234, 3922, 8687, 254, 161, 98, 121, 10343, 6447, 24002]);

    let (ids, want) = &reference()[0];
    let v = model.vocab_size();
    let logits = model.logits(ids).unwrap();
    assert_eq!(logits.len(), ids.len() * v);
    let argmax = |row: &[f32]| row.iter().enumerate().fold(0, |b, (i, &x)| if x > row[b] { i } else { b }) as i32;
    assert_eq!(argmax(&logits[(ids.len() - 1) * v..]), want[0]);
    let mut sess = model.session().unwrap();
    let last = sess.eval(ids, false).unwrap();
    assert_eq!(argmax(&last), want[0]);
    assert_eq!(sess.len().unwrap(), ids.len());
    let rows = sess.eval(&want[..2], true).unwrap();
    assert_eq!(argmax(&rows[..v]), want[1]);
    sess.truncate(ids.len()).unwrap();
    assert_eq!(sess.len().unwrap(), ids.len());
}

#[test]
fn logprobs_are_the_models_log_softmax() {
    let model = load();
    let (ids, want) = &reference()[0];
    let toks: Vec<_> = model.generate_tokens(ids, &greedy(4).logprobs(2)).unwrap().map(|t| t.unwrap()).collect();
    assert_eq!(toks.len(), 4);
    let v = model.vocab_size();
    let mut seq = ids.clone();
    for (i, t) in toks.iter().enumerate() {
        assert_eq!(t.id, Some(want[i]));
        let logits = model.logits(&seq).unwrap();
        let row = &logits[(seq.len() - 1) * v..];
        let mx = row.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(f64::from(x)));
        let lse = mx + row.iter().map(|&x| (f64::from(x) - mx).exp()).sum::<f64>().ln();
        let lp = t.logprobs.as_ref().expect("asked for logprobs");
        assert!((f64::from(lp.logprob) - (f64::from(row[want[i] as usize]) - lse)).abs() < 1e-3);
        assert_eq!(lp.top.len(), 2);
        assert_eq!(lp.top[0], (want[i], lp.logprob));
        assert!(lp.top[1].1 <= lp.top[0].1);
        seq.push(want[i]);
    }
    let mut plain = model.generate_tokens(ids, &greedy(1)).unwrap();
    assert_eq!(plain.next().unwrap().unwrap().logprobs, None);
    let too_many = model.generate_tokens(ids, &greedy(1).logprobs(21));
    assert_eq!(too_many.err().unwrap().status(), Status::InvalidArgument);
}

#[test]
fn logit_bias_forces_and_bans() {
    let model = load();
    let (ids, want) = &reference()[0];
    let forced: Vec<_> =
        model.generate_tokens(ids, &greedy(3).logit_bias(65, 100.0)).unwrap().map(|t| t.unwrap().id).collect();
    assert_eq!(forced, vec![Some(65); 3]);
    let mut banned = model.generate_tokens(ids, &greedy(1).logit_bias(want[0], -100.0)).unwrap();
    assert_ne!(banned.next().unwrap().unwrap().id, Some(want[0]));
    let bad = model.generate_tokens(ids, &greedy(1).logit_bias(1, 500.0));
    assert_eq!(bad.err().unwrap().status(), Status::InvalidArgument);
}

#[test]
fn errors_are_results() {
    let model = load();
    let e = model.generate_tokens(&[1, 99999], &GenerateOptions::new()).unwrap_err();
    assert_eq!(e.status(), Status::InvalidArgument);
    assert!(e.message().contains("99999"), "{}", e);
    assert_eq!(model.generate_tokens(&[], &GenerateOptions::new()).unwrap_err().status(), Status::InvalidArgument);
    assert_eq!(model.logits(&[5, 8320]).unwrap_err().status(), Status::InvalidArgument);
    assert_eq!(model.generate_chat_json("not json", &GenerateOptions::new()).unwrap_err().status(), Status::InvalidArgument);
    let e = model.generate("x", &GenerateOptions::new().temperature(-1.0)).unwrap_err();
    assert!(e.message().contains("temperature"));
    assert_eq!(model.info("nope").unwrap_err().status(), Status::InvalidArgument);
    assert_eq!(Model::load("/nonexistent/model").unwrap_err().status(), Status::Io);
    assert_eq!(Tokenizer::load("/nonexistent/tokenizer.json").unwrap_err().status(), Status::Io);
    assert_eq!(model.generate("a\0b", &GenerateOptions::new()).unwrap_err().status(), Status::InvalidArgument);
    let mut s = model.generate_tokens(&[5], &greedy(1)).unwrap();
    loop {
        match s.next_event(Some(Duration::ZERO)) {
            Ok(_) => break,
            Err(e) => assert_eq!(e.status(), Status::Timeout),
        }
    }
}

#[test]
fn batch_invariant_and_expert_parallel_load_options() {
    let opts =
        LoadOptions::new().threads(2).batch_invariant(true).ep_transport("inproc").ep_overlap(true).ep_redundant(1);
    let model = Model::load_with(model_dir(), &opts, None).expect("load with EP options");
    assert_eq!(model.info("ep_overlap").unwrap(), 1);
    assert_eq!(model.info("ep_size").unwrap(), 1);
    assert_eq!(model.info("ep_rank").unwrap(), 0);
    for (k, (ids, want)) in reference().iter().enumerate() {
        assert_eq!(&model.generate_tokens(ids, &greedy(48)).unwrap().collect_tokens().unwrap(), want, "prompt {}", k);
    }
    let e = Model::load_with(model_dir(), &LoadOptions::new().ep_transport("tcp"), None).unwrap_err();
    assert_eq!(e.status(), Status::InvalidArgument);
    assert!(e.message().contains("'ep_transport' value \"tcp\" is not one of"), "{}", e);
    let e = Model::load_with(model_dir(), &LoadOptions { ep_size: Some(0), ..LoadOptions::new() }, None).unwrap_err();
    assert_eq!(e.status(), Status::InvalidArgument);
    assert!(e.message().contains("'ep_size' value 0 is out of range"), "{}", e);
}

#[test]
fn load_progress_and_cancel() {
    let mut seen = Vec::new();
    let m = Model::load_with(model_dir(), &LoadOptions::new().threads(1), Some(&mut |f, stage: &str| {
        seen.push((f, stage.to_owned()));
        false
    }))
    .unwrap();
    drop(m);
    assert!(!seen.is_empty() && seen.last().unwrap().0 == 1.0);
    let e = Model::load_with(model_dir(), &LoadOptions::new(), Some(&mut |f, _: &str| f > 0.0)).unwrap_err();
    assert_eq!(e.status(), Status::Cancelled);
    let r = std::panic::catch_unwind(|| {
        Model::load_with(model_dir(), &LoadOptions::new(), Some(&mut |_, _: &str| panic!("boom")))
    });
    assert!(r.is_err(), "a panic in the callback comes back");
}

// The shipped generation_config.json (temperature 0.7, top_p 0.95) applies when nothing is set; an
// unseeded sampled run reports the seed it drew, and that seed repeats it.
#[test]
fn generation_config_defaults_and_reported_seed() {
    let model = load();
    let (ids, want) = &reference()[0];
    let run = |o: GenerateOptions| {
        let mut s = model.generate_tokens(ids, &o.max_tokens(32).ignore_eos(true)).unwrap();
        let seed = s.seed().unwrap();
        (s.collect_tokens().unwrap(), seed)
    };
    let (by_default, seed) = run(GenerateOptions::new().seed(3));
    assert_eq!(seed, 3);
    assert_eq!(run(GenerateOptions::new().seed(3).temperature(0.7).top_p(0.95)).0, by_default);
    assert_eq!(run(GenerateOptions::new().seed(3).temperature(0.0)).0, want[..32]);
    let (a, seed_a) = run(GenerateOptions::new());
    let (b, seed_b) = run(GenerateOptions::new());
    assert_ne!(seed_a, seed_b);
    assert_eq!(run(GenerateOptions::new().seed(seed_a)).0, a);
    assert_eq!(run(GenerateOptions::new().seed(seed_b)).0, b);
    let s = model.generate_tokens(ids, &greedy(2)).unwrap();
    assert!(!s.sampled().unwrap());
    assert_eq!(s.seed().unwrap(), 0);
}

#[test]
fn decode_unknown_id_is_an_error() {
    let model = load();
    let tok = model.tokenizer().unwrap();
    let e = tok.decode(&[5, 99999, 7]).unwrap_err();
    assert_eq!(e.status(), moert::Status::InvalidArgument);
    assert!(e.message().contains("token id 99999 at position 1"), "{}", e.message());
}

fn mtp_model_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../tests/data/moert-tiny-coder-mtp")
}

/// More than two 64-token KV pages (the prefix cache shares whole pages).
fn long_prompt(model: &Model) -> Vec<i32> {
    let ids = model.tokenizer().unwrap().encode(&"def add(a, b):\n    return a + b\n\n\n".repeat(12), None).unwrap();
    assert!(ids.len() > 128);
    ids
}

#[test]
fn prefix_cache_and_speculation_load_options() {
    let model = load();
    let ids = long_prompt(&model);
    let mut s = model.generate_tokens(&ids, &greedy(4)).unwrap();
    let first = s.collect_tokens().unwrap();
    let u = s.usage().unwrap();
    assert_eq!((u.draft_tokens, u.accepted_drafts), (0, 0)); // no MTP module in the default model
    assert!(u.decode_forwards > 0);
    let mut s = model.generate_tokens(&ids, &greedy(4)).unwrap();
    assert_eq!(s.collect_tokens().unwrap(), first);
    let u = s.usage().unwrap();
    assert!(u.cached_prompt_tokens > 0, "{:?}", u);
    assert_eq!(s.counter("cached_prompt_tokens").unwrap(), u.cached_prompt_tokens);
    assert_eq!(s.counter("nope").unwrap_err().status(), Status::InvalidArgument);

    let opts = LoadOptions::new().threads(2).prefix_cache(false).speculative("off").draft_tokens(2);
    let off = Model::load_with(model_dir(), &opts, None).expect("load without the prefix cache");
    for _ in 0..2 {
        let mut s = off.generate_tokens(&ids, &greedy(4)).unwrap();
        assert_eq!(s.collect_tokens().unwrap(), first);
        assert_eq!(s.usage().unwrap().cached_prompt_tokens, 0);
    }
    let e = Model::load_with(model_dir(), &LoadOptions::new().speculative("sometimes"), None).unwrap_err();
    assert_eq!(e.status(), Status::InvalidArgument);
    assert!(e.message().contains("speculative"), "{}", e);
    let e = Model::load_with(model_dir(), &LoadOptions::new().draft_tokens(4), None).unwrap_err();
    assert_eq!(e.status(), Status::InvalidArgument);
    assert!(e.message().contains("draft_tokens"), "{}", e);
}

#[test]
fn kv_handoff() {
    let model = load();
    let (ids, want) = &reference()[1];
    let image = {
        let mut sess = model.session().unwrap();
        assert_eq!(sess.export().unwrap_err().status(), Status::InvalidArgument); // empty
        sess.eval(ids, false).unwrap();
        sess.export().unwrap()
    };
    assert!(!image.is_empty());
    let other = load(); // a second instance continues the sequence
    let got = other.generate_resume(&image, &greedy(24)).unwrap().collect_tokens().unwrap();
    assert_eq!(&got[..], &want[..24]);
    let mut imported = other.import_session(&image).unwrap();
    assert_eq!(imported.len().unwrap(), ids.len());
    let row = imported.eval(&want[..1], false).unwrap();
    let mut full = ids.clone();
    full.push(want[0]);
    let direct = model.logits(&full).unwrap();
    let last = &direct[direct.len() - row.len()..];
    for (a, b) in row.iter().zip(last) {
        assert!((a - b).abs() <= 1e-4 + 1e-4 * b.abs(), "{} vs {}", a, b);
    }
    let mut bad = image.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x40;
    let e = other.generate_resume(&bad, &greedy(4)).unwrap_err();
    assert_eq!(e.status(), Status::Format);
    assert!(e.message().contains("checksum"), "{}", e);
    assert_eq!(other.import_session(&bad).unwrap_err().status(), Status::Format);
    assert_eq!(other.import_session(&image[..100]).unwrap_err().status(), Status::Format);
}

#[test]
fn speculative_decoding_with_mtp_module() {
    let (ids, want) = &reference()[0];
    // "auto" (the default) drafts on cuda only: on the CPU a step with a draft costs about twice a plain one.
    let auto = Model::load_with(mtp_model_dir(), &LoadOptions::new().threads(2), None).expect("load the MTP model");
    let mut s = auto.generate_tokens(ids, &greedy(8)).unwrap();
    s.collect_tokens().unwrap();
    assert_eq!(s.usage().unwrap().draft_tokens, 0);
    let on = Model::load_with(mtp_model_dir(), &LoadOptions::new().threads(2).speculative("on"), None).unwrap();
    let mut s = on.generate_tokens(ids, &greedy(48)).unwrap();
    assert_eq!(&s.collect_tokens().unwrap(), want);
    let u = s.usage().unwrap();
    assert!(u.draft_tokens > 0 && u.accepted_drafts <= u.draft_tokens, "{:?}", u);
    let off = Model::load_with(mtp_model_dir(), &LoadOptions::new().threads(2).speculative("off"), None).unwrap();
    let mut s = off.generate_tokens(ids, &greedy(48)).unwrap();
    assert_eq!(&s.collect_tokens().unwrap(), want);
    assert_eq!(s.usage().unwrap().draft_tokens, 0);
}

// The load keys added to the builder reach the C API under their own names (a bad value is the C API's
// error naming the key).
#[test]
fn cache_and_weight_check_options_reach_the_library() {
    let opts = LoadOptions::new()
        .threads(1)
        .attention("absorbed")
        .mtp(false)
        .check_weights(false)
        .cuda_graphs(false)
        .kv_cache_dtype("fp32")
        .activation_dtype("fp32");
    let model = Model::load_with(mtp_model_dir(), &opts, None).expect("load with the cache and weight-check options");
    assert_eq!(model.info("num_mtp_layers").unwrap(), 0); // mtp(false): the module is not loaded
    let model = Model::load_with(mtp_model_dir(), &LoadOptions::new().threads(1), None).expect("load the MTP model");
    assert_eq!(model.info("num_mtp_layers").unwrap(), 1);
    let e = Model::load_with(model_dir(), &LoadOptions::new().kv_cache_dtype("bf16"), None).unwrap_err();
    assert_eq!(e.status(), Status::Unsupported);
    assert!(e.message().contains("kv_cache_dtype bf16 needs device cuda"), "{}", e);
    let e = Model::load_with(model_dir(), &LoadOptions::new().activation_dtype("bf16"), None).unwrap_err();
    assert_eq!(e.status(), Status::Unsupported);
    assert!(e.message().contains("activation_dtype bf16 needs device cuda"), "{}", e);
    let e = Model::load_with(model_dir(), &LoadOptions::new().attention("sideways"), None).unwrap_err();
    assert_eq!(e.status(), Status::InvalidArgument);
    assert!(e.message().contains("'attention' value \"sideways\""), "{}", e);
}
