//! Safe Rust bindings to moert: run DeepSeek-V3-architecture Mixture-of-Experts models in-process.
//!
//! ```no_run
//! let model = moert::Model::load("samples/models/moert-tiny-coder")?;
//! let opts = moert::GenerateOptions::new().max_tokens(32);
//! for token in model.generate("def fibonacci(n):\n", &opts)? {
//!     print!("{}", token?.text);
//! }
//! # Ok::<(), moert::Error>(())
//! ```
//!
//! Threading follows moert.h: a [`Model`] and a [`Tokenizer`] are immutable and `Send + Sync`; a
//! [`Session`] and a [`Stream`] are used by one thread at a time (`Send`, not `Sync`); a [`Canceller`]
//! cancels a stream from any thread. Handles are freed on `Drop`; streams and sessions borrow their model.

use moert_sys as sys;
use std::ffi::{CStr, CString};
use std::fmt;
use std::marker::PhantomData;
use std::os::raw::{c_char, c_void};
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::ptr::{self, NonNull};
use std::sync::Arc;
use std::time::Duration;

// ---- errors ----------------------------------------------------------------------------------------

/// The kind of a failure: one per `moert_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    InvalidArgument,
    Io,
    Format,
    Unsupported,
    OutOfMemory,
    Device,
    Cancelled,
    Internal,
    Timeout,
    /// A stream that finished with `MOERT_FINISH_ERROR` (it failed alone, e.g. the KV-cache budget).
    Generation,
    /// A status this crate does not know (a newer library).
    Other(i32),
}

impl Status {
    fn from_raw(s: sys::moert_status) -> Status {
        match s as u32 {
            sys::MOERT_ERR_INVALID_ARGUMENT => Status::InvalidArgument,
            sys::MOERT_ERR_IO => Status::Io,
            sys::MOERT_ERR_FORMAT => Status::Format,
            sys::MOERT_ERR_UNSUPPORTED => Status::Unsupported,
            sys::MOERT_ERR_OUT_OF_MEMORY => Status::OutOfMemory,
            sys::MOERT_ERR_DEVICE => Status::Device,
            sys::MOERT_ERR_CANCELLED => Status::Cancelled,
            sys::MOERT_ERR_INTERNAL => Status::Internal,
            sys::MOERT_ERR_TIMEOUT => Status::Timeout,
            _ => Status::Other(s),
        }
    }
}

/// A failed moert call: its status and moert's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    status: Status,
    message: String,
}

impl Error {
    fn new(status: Status, message: impl Into<String>) -> Error {
        Error { status, message: message.into() }
    }
    /// The kind of failure.
    pub fn status(&self) -> Status {
        self.status
    }
    /// moert's message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.status, self.message)
    }
}

impl std::error::Error for Error {}

/// `Result<T, moert::Error>`.
pub type Result<T> = std::result::Result<T, Error>;

/// Turns a status into a Result, reading this thread's last error right away.
fn check(s: sys::moert_status) -> Result<()> {
    if s == sys::MOERT_OK as sys::moert_status {
        return Ok(());
    }
    let msg = unsafe { CStr::from_ptr(sys::moert_last_error()) }.to_string_lossy().into_owned();
    Err(Error::new(Status::from_raw(s), msg))
}

fn cstring(s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::new(Status::InvalidArgument, "a string contains a NUL byte"))
}

/// Reads a NUL-terminated string with the two-call size protocol.
fn read_string(mut f: impl FnMut(*mut c_char, usize, *mut usize) -> sys::moert_status) -> Result<String> {
    let mut need = 0usize;
    check(f(ptr::null_mut(), 0, &mut need))?;
    let mut buf = vec![0u8; need.max(1)];
    check(f(buf.as_mut_ptr() as *mut c_char, buf.len(), &mut need))?;
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    buf.truncate(end);
    Ok(String::from_utf8(buf).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

/// The API level of the library loaded (`MOERT_API_VERSION`).
pub fn api_version() -> i32 {
    unsafe { sys::moert_api_version() }
}

/// The library version, e.g. "0.1.0".
pub fn version() -> &'static str {
    unsafe { CStr::from_ptr(sys::moert_version_string()) }.to_str().unwrap_or("")
}

// ---- options ---------------------------------------------------------------------------------------

/// An owned moert_options, filled from the typed option structs below.
struct RawOptions(NonNull<sys::moert_options>);

impl RawOptions {
    fn new() -> Result<RawOptions> {
        let mut p = ptr::null_mut();
        check(unsafe { sys::moert_options_create(&mut p) })?;
        Ok(RawOptions(NonNull::new(p).expect("moert_options_create gave NULL")))
    }
    fn int(&mut self, key: &str, v: Option<i64>) -> Result<&mut Self> {
        if let Some(v) = v {
            let k = cstring(key)?;
            check(unsafe { sys::moert_options_set_int(self.0.as_ptr(), k.as_ptr(), v) })?;
        }
        Ok(self)
    }
    fn float(&mut self, key: &str, v: Option<f64>) -> Result<&mut Self> {
        if let Some(v) = v {
            let k = cstring(key)?;
            check(unsafe { sys::moert_options_set_float(self.0.as_ptr(), k.as_ptr(), v) })?;
        }
        Ok(self)
    }
    fn string(&mut self, key: &str, v: Option<&str>) -> Result<&mut Self> {
        if let Some(v) = v {
            let (k, v) = (cstring(key)?, cstring(v)?);
            check(unsafe { sys::moert_options_set_string(self.0.as_ptr(), k.as_ptr(), v.as_ptr()) })?;
        }
        Ok(self)
    }
    fn add_strings(&mut self, key: &str, vs: &[String]) -> Result<&mut Self> {
        let k = cstring(key)?;
        for v in vs {
            let v = cstring(v)?;
            check(unsafe { sys::moert_options_add_string(self.0.as_ptr(), k.as_ptr(), v.as_ptr()) })?;
        }
        Ok(self)
    }
    fn add_ints(&mut self, key: &str, vs: &[i64]) -> Result<&mut Self> {
        let k = cstring(key)?;
        for &v in vs {
            check(unsafe { sys::moert_options_add_int(self.0.as_ptr(), k.as_ptr(), v) })?;
        }
        Ok(self)
    }
    fn as_ptr(&self) -> *const sys::moert_options {
        self.0.as_ptr()
    }
}

impl Drop for RawOptions {
    fn drop(&mut self) {
        unsafe { sys::moert_options_free(self.0.as_ptr()) }
    }
}

/// Settings for [`Model::load_with`]; unset fields keep moert's defaults.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    pub threads: Option<i64>,
    pub device: Option<String>,
    pub activations: Option<String>,
    pub kv_cache_bytes: Option<i64>,
    pub max_batch: Option<i64>,
    pub attention: Option<String>,
    pub mtp: Option<bool>,
    /// See [`LoadOptions::batch_invariant`].
    pub batch_invariant: Option<bool>,
    /// See [`LoadOptions::ep_size`].
    pub ep_size: Option<i64>,
    /// See [`LoadOptions::ep_transport`].
    pub ep_transport: Option<String>,
    /// See [`LoadOptions::ep_redundant`].
    pub ep_redundant: Option<i64>,
    /// See [`LoadOptions::eplb_interval`].
    pub eplb_interval: Option<i64>,
    /// See [`LoadOptions::ep_overlap`]; `None` is moert's auto (`-1`).
    pub ep_overlap: Option<bool>,
    /// See [`LoadOptions::ep_max_ranks_per_token`].
    pub ep_max_ranks_per_token: Option<i64>,
    /// See [`LoadOptions::ep_timeout_ms`].
    pub ep_timeout_ms: Option<i64>,
    /// See [`LoadOptions::prefix_cache`].
    pub prefix_cache: Option<bool>,
    /// See [`LoadOptions::speculative`].
    pub speculative: Option<String>,
    /// See [`LoadOptions::draft_tokens`].
    pub draft_tokens: Option<i64>,
    /// See [`LoadOptions::check_weights`].
    pub check_weights: Option<bool>,
    /// See [`LoadOptions::cuda_graphs`].
    pub cuda_graphs: Option<bool>,
    /// See [`LoadOptions::kv_cache_dtype`].
    pub kv_cache_dtype: Option<String>,
    /// See [`LoadOptions::activation_dtype`].
    pub activation_dtype: Option<String>,
}

impl LoadOptions {
    pub fn new() -> Self {
        Self::default()
    }
    /// CPU threads (0 = all cores).
    pub fn threads(mut self, n: i64) -> Self {
        self.threads = Some(n);
        self
    }
    /// "cpu" or "cuda".
    pub fn device(mut self, d: &str) -> Self {
        self.device = Some(d.to_owned());
        self
    }
    /// "fp32" or "fp8".
    pub fn activations(mut self, a: &str) -> Self {
        self.activations = Some(a.to_owned());
        self
    }
    pub fn kv_cache_bytes(mut self, n: i64) -> Self {
        self.kv_cache_bytes = Some(n);
        self
    }
    pub fn max_batch(mut self, n: i64) -> Self {
        self.max_batch = Some(n);
        self
    }
    /// The MLA form: "auto" (the default), "expanded" or "absorbed" (for testing).
    pub fn attention(mut self, form: &str) -> Self {
        self.attention = Some(form.to_owned());
        self
    }
    /// Load the MTP module when the checkpoint has one (default true).
    pub fn mtp(mut self, on: bool) -> Self {
        self.mtp = Some(on);
        self
    }
    /// true: a request's logits (so its sampled tokens for a seed) are the same bits whatever is batched
    /// with it, however its prompt is chunked, and with expert parallelism or not; decode is slower
    /// (default false). CPU only: `Status::Unsupported` with device "cuda".
    pub fn batch_invariant(mut self, on: bool) -> Self {
        self.batch_invariant = Some(on);
        self
    }
    /// Expert parallelism: ranks the routed experts are spread over (default 1 = off). One rank per
    /// process under MPI (`mpirun -np N` with ep_size N); every rank loads the model and the engines of
    /// all ranks step together. [`Model::logits`] and sessions are unsupported with ep_size > 1.
    pub fn ep_size(mut self, n: i64) -> Self {
        self.ep_size = Some(n);
        self
    }
    /// The expert-parallel transport: "none" (the default with ep_size 1), "inproc" (a one-rank
    /// in-process group: the EP code path in one process), "mpi" (the default with ep_size > 1) or
    /// "nccl" (GPU ranks). `Status::Unsupported` when the build or machine lacks what it needs.
    pub fn ep_transport(mut self, t: &str) -> Self {
        self.ep_transport = Some(t.to_owned());
        self
    }
    /// Redundant expert slots per rank (default 0).
    pub fn ep_redundant(mut self, n: i64) -> Self {
        self.ep_redundant = Some(n);
        self
    }
    /// Engine steps between EPLB re-placements from the served load (default 0 = never).
    pub fn eplb_interval(mut self, steps: i64) -> Self {
        self.eplb_interval = Some(steps);
        self
    }
    /// Forces the two-microbatch overlap on (each step's batch split in two halves whose expert
    /// exchanges run while the other half computes) or off. Unset, moert decides: on unless every rank
    /// is on one host. Must be the same on every rank; `model.info("ep_overlap")` says what is in effect.
    pub fn ep_overlap(mut self, on: bool) -> Self {
        self.ep_overlap = Some(on);
        self
    }
    /// Spread a token's experts over at most this many ranks where replicas allow (default 0 = no
    /// preference).
    pub fn ep_max_ranks_per_token(mut self, n: i64) -> Self {
        self.ep_max_ranks_per_token = Some(n);
        self
    }
    /// Longest wait for the other ranks in one exchange, in milliseconds (default 60000).
    pub fn ep_timeout_ms(mut self, ms: i64) -> Self {
        self.ep_timeout_ms = Some(ms);
        self
    }
    /// The prefix cache (default on): requests whose prompts share a prefix reuse the KV pages (whole
    /// 64-token pages) an earlier request computed; the logits are the same as without it.
    /// [`Usage::cached_prompt_tokens`] says how many prompt tokens a request took from it.
    pub fn prefix_cache(mut self, on: bool) -> Self {
        self.prefix_cache = Some(on);
        self
    }
    /// MTP speculative decoding: "on" (drafts with the checkpoint's MTP module when it has one; greedy
    /// output is unchanged, sampled output keeps the model's distribution), "auto" (the default: on with
    /// device "cuda", off on the CPU, where it decodes slower) or "off".
    /// [`Usage::draft_tokens`] and [`Usage::accepted_drafts`] count the drafts.
    pub fn speculative(mut self, mode: &str) -> Self {
        self.speculative = Some(mode.to_owned());
        self
    }
    /// Drafts per decode step, 1 (the default, DeepSeek's setting) to 3.
    pub fn draft_tokens(mut self, n: i64) -> Self {
        self.draft_tokens = Some(n);
        self
    }
    /// The load-time scan of every weight for NaN/Inf (and FP8 NaN bytes, bad block scales; default on):
    /// `Status::Format` naming the file and tensor. false skips it (it reads the whole checkpoint once).
    pub fn check_weights(mut self, on: bool) -> Self {
        self.check_weights = Some(on);
        self
    }
    /// With device "cuda", decode steps replayed as CUDA graphs (default on); no effect on the CPU.
    pub fn cuda_graphs(mut self, on: bool) -> Self {
        self.cuda_graphs = Some(on);
        self
    }
    /// The latent cache's storage: "auto" (the default: bf16 with device "cuda", fp32 on the CPU),
    /// "fp32" or "bf16" (`Status::Unsupported` on the CPU).
    pub fn kv_cache_dtype(mut self, dtype: &str) -> Self {
        self.kv_cache_dtype = Some(dtype.to_owned());
        self
    }
    /// The storage of activations between ops: "auto" (the default: bf16 with device "cuda", fp32 on the
    /// CPU), "fp32" or "bf16" (`Status::Unsupported` on the CPU); the math is fp32 either way.
    pub fn activation_dtype(mut self, dtype: &str) -> Self {
        self.activation_dtype = Some(dtype.to_owned());
        self
    }
    fn raw(&self) -> Result<RawOptions> {
        let mut o = RawOptions::new()?;
        o.int("threads", self.threads)?
            .string("device", self.device.as_deref())?
            .string("activations", self.activations.as_deref())?
            .int("kv_cache_bytes", self.kv_cache_bytes)?
            .int("max_batch", self.max_batch)?
            .string("attention", self.attention.as_deref())?
            .int("mtp", self.mtp.map(i64::from))?
            .int("batch_invariant", self.batch_invariant.map(i64::from))?
            .int("ep_size", self.ep_size)?
            .string("ep_transport", self.ep_transport.as_deref())?
            .int("ep_redundant", self.ep_redundant)?
            .int("eplb_interval", self.eplb_interval)?
            .int("ep_overlap", self.ep_overlap.map(i64::from))?
            .int("ep_max_ranks_per_token", self.ep_max_ranks_per_token)?
            .int("ep_timeout_ms", self.ep_timeout_ms)?
            .int("prefix_cache", self.prefix_cache.map(i64::from))?
            .string("speculative", self.speculative.as_deref())?
            .int("draft_tokens", self.draft_tokens)?
            .int("check_weights", self.check_weights.map(i64::from))?
            .int("cuda_graphs", self.cuda_graphs.map(i64::from))?
            .string("kv_cache_dtype", self.kv_cache_dtype.as_deref())?
            .string("activation_dtype", self.activation_dtype.as_deref())?;
        Ok(o)
    }
}

/// Generation settings; unset fields keep moert's defaults (greedy, 256 tokens).
#[derive(Debug, Clone, Default)]
pub struct GenerateOptions {
    pub max_tokens: Option<i64>,
    pub temperature: Option<f64>,
    pub top_k: Option<i64>,
    pub top_p: Option<f64>,
    pub min_p: Option<f64>,
    pub repetition_penalty: Option<f64>,
    pub presence_penalty: Option<f64>,
    pub frequency_penalty: Option<f64>,
    pub seed: Option<i64>,
    pub stop: Vec<String>,
    pub stop_token_ids: Vec<i64>,
    pub ignore_eos: Option<bool>,
    /// For chat: end the prompt with the assistant prompt (default true).
    pub add_generation_prompt: Option<bool>,
    /// Each `Token` carries its `TokenLogprobs`: 0 the token's own log probability, n (at most 20) also
    /// the n most likely tokens at each step.
    pub logprobs: Option<i64>,
    /// (token id, bias -100 to 100) added to the logits before sampling (OpenAI's logit_bias).
    pub logit_bias: Vec<(i32, f32)>,
}

macro_rules! setter {
    ($name:ident, $t:ty) => {
        pub fn $name(mut self, v: $t) -> Self {
            self.$name = Some(v);
            self
        }
    };
}

impl GenerateOptions {
    pub fn new() -> Self {
        Self::default()
    }
    setter!(max_tokens, i64);
    setter!(temperature, f64);
    setter!(top_k, i64);
    setter!(top_p, f64);
    setter!(min_p, f64);
    setter!(repetition_penalty, f64);
    setter!(presence_penalty, f64);
    setter!(frequency_penalty, f64);
    setter!(seed, i64);
    setter!(ignore_eos, bool);
    setter!(add_generation_prompt, bool);
    setter!(logprobs, i64);
    /// Adds a stop string (generation ends before it; it is not returned).
    pub fn stop(mut self, s: &str) -> Self {
        self.stop.push(s.to_owned());
        self
    }
    /// Adds a stop token id (generation ends with it).
    pub fn stop_token_id(mut self, id: i32) -> Self {
        self.stop_token_ids.push(i64::from(id));
        self
    }
    /// Adds a bias (-100 to 100) to a token's logit before sampling.
    pub fn logit_bias(mut self, id: i32, bias: f32) -> Self {
        self.logit_bias.push((id, bias));
        self
    }
    fn raw(&self) -> Result<RawOptions> {
        // "TOKEN_ID:BIAS" entries
        let bias: Vec<String> = self.logit_bias.iter().map(|(t, b)| format!("{t}:{b}")).collect();
        let mut o = RawOptions::new()?;
        o.int("max_tokens", self.max_tokens)?
            .float("temperature", self.temperature)?
            .int("top_k", self.top_k)?
            .float("top_p", self.top_p)?
            .float("min_p", self.min_p)?
            .float("repetition_penalty", self.repetition_penalty)?
            .float("presence_penalty", self.presence_penalty)?
            .float("frequency_penalty", self.frequency_penalty)?
            .int("seed", self.seed)?
            .int("ignore_eos", self.ignore_eos.map(i64::from))?
            .int("add_generation_prompt", self.add_generation_prompt.map(i64::from))?
            .int("logprobs", self.logprobs)?
            .add_strings("stop", &self.stop)?
            .add_ints("stop_token_ids", &self.stop_token_ids)?
            .add_strings("logit_bias", &bias)?;
        Ok(o)
    }
}

// ---- chat messages ---------------------------------------------------------------------------------

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: &str, content: &str) -> Message {
        Message { role: role.to_owned(), content: content.to_owned() }
    }
    pub fn system(content: &str) -> Message {
        Message::new("system", content)
    }
    pub fn user(content: &str) -> Message {
        Message::new("user", content)
    }
    pub fn assistant(content: &str) -> Message {
        Message::new("assistant", content)
    }
}

fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The messages as the JSON array moert takes.
pub fn messages_json(messages: &[Message]) -> String {
    let mut s = String::from("[");
    for (i, m) in messages.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str("{\"role\":");
        json_string(&mut s, &m.role);
        s.push_str(",\"content\":");
        json_string(&mut s, &m.content);
        s.push('}');
    }
    s.push(']');
    s
}

// ---- model -----------------------------------------------------------------------------------------

/// A loaded model. Immutable after load: share it between threads (`&Model`, `Arc<Model>`).
pub struct Model {
    raw: NonNull<sys::moert_model>,
}

// SAFETY: moert.h: "a model is immutable after load and may be shared by any number of threads";
// moert_model_free may run on any thread.
unsafe impl Send for Model {}
unsafe impl Sync for Model {}

struct ProgressState<'a> {
    f: &'a mut dyn FnMut(f64, &str) -> bool,
    panic: Option<Box<dyn std::any::Any + Send>>,
}

extern "C" fn progress_trampoline(user: *mut c_void, fraction: f64, stage: *const c_char) -> i32 {
    // SAFETY: user is the ProgressState that load_with passed for this call, on this thread.
    let st = unsafe { &mut *(user as *mut ProgressState) };
    let stage = if stage.is_null() { "".into() } else { unsafe { CStr::from_ptr(stage) }.to_string_lossy() };
    match panic::catch_unwind(AssertUnwindSafe(|| (st.f)(fraction, &stage))) {
        Ok(cancel) => i32::from(cancel),
        Err(p) => {
            // A panic cannot unwind through moert: cancel the load and resume it afterwards.
            st.panic = Some(p);
            1
        }
    }
}

impl Model {
    /// Loads a Hugging Face DeepSeek checkpoint directory with default options.
    pub fn load(dir: impl AsRef<Path>) -> Result<Model> {
        Model::load_with(dir, &LoadOptions::default(), None)
    }

    /// Loads with options and an optional progress callback `(fraction, stage) -> cancel`, called on
    /// this thread. Returning true cancels the load (`Status::Cancelled`).
    pub fn load_with(
        dir: impl AsRef<Path>,
        options: &LoadOptions,
        progress: Option<&mut dyn FnMut(f64, &str) -> bool>,
    ) -> Result<Model> {
        let dir = cstring(&dir.as_ref().to_string_lossy())?;
        let opts = options.raw()?;
        let mut out = ptr::null_mut();
        let status = match progress {
            Some(f) => {
                let mut st = ProgressState { f, panic: None };
                let s = unsafe {
                    sys::moert_model_load(
                        dir.as_ptr(),
                        opts.as_ptr(),
                        Some(progress_trampoline),
                        &mut st as *mut ProgressState as *mut c_void,
                        &mut out,
                    )
                };
                if let Some(p) = st.panic {
                    if let Some(m) = NonNull::new(out) {
                        unsafe { sys::moert_model_free(m.as_ptr()) };
                    }
                    panic::resume_unwind(p);
                }
                s
            }
            None => unsafe { sys::moert_model_load(dir.as_ptr(), opts.as_ptr(), None, ptr::null_mut(), &mut out) },
        };
        check(status)?;
        Ok(Model { raw: NonNull::new(out).expect("moert_model_load gave NULL") })
    }

    /// An integer fact: "vocab_size", "context_length", "num_layers", "hidden_size", "num_experts",
    /// "num_mtp_layers", "parameters", "kv_bytes_per_token", "kv_capacity_tokens", "bos_token_id",
    /// "eos_token_id", "ep_rank" (0 without expert parallelism), "ep_size" (1 without), "ep_overlap" (1
    /// when the two-microbatch overlap is in effect), and the CPU kernels' paths: "cpu_isa" (0 portable,
    /// 1 AVX2, 2 AVX-512), "cpu_amx_bf16" / "cpu_amx_int8" (1 when prefill runs on AMX tiles), "cpu_q4_int8".
    pub fn info(&self, key: &str) -> Result<i64> {
        let k = cstring(key)?;
        let mut v = 0i64;
        check(unsafe { sys::moert_model_info_int(self.raw.as_ptr(), k.as_ptr(), &mut v) })?;
        Ok(v)
    }

    pub fn vocab_size(&self) -> usize {
        self.info("vocab_size").unwrap_or(0) as usize
    }

    /// The model config as moert understood it (JSON).
    pub fn config_json(&self) -> Result<String> {
        read_string(|b, c, n| unsafe { sys::moert_model_config_json(self.raw.as_ptr(), b, c, n) })
    }

    /// The model's tokenizer (a new handle).
    pub fn tokenizer(&self) -> Result<Tokenizer> {
        let mut out = ptr::null_mut();
        check(unsafe { sys::moert_model_tokenizer(self.raw.as_ptr(), &mut out) })?;
        Ok(Tokenizer { raw: NonNull::new(out).expect("moert_model_tokenizer gave NULL") })
    }

    /// Logits for a token sequence in one forward pass: `tokens.len()` rows of `vocab_size` floats.
    pub fn logits(&self, tokens: &[i32]) -> Result<Vec<f32>> {
        let mut out = vec![0f32; tokens.len() * self.vocab_size()];
        check(unsafe {
            sys::moert_model_logits(self.raw.as_ptr(), tokens.as_ptr(), tokens.len(), out.as_mut_ptr(), out.len())
        })?;
        Ok(out)
    }

    /// A new evaluation session (its own KV cache).
    pub fn session(&self) -> Result<Session<'_>> {
        let mut out = ptr::null_mut();
        check(unsafe { sys::moert_session_create(self.raw.as_ptr(), &mut out) })?;
        Ok(Session {
            raw: NonNull::new(out).expect("moert_session_create gave NULL"),
            vocab: self.vocab_size(),
            _model: PhantomData,
        })
    }

    /// A new session holding an exported sequence ([`Session::export`]'s image, from this or another
    /// process that loaded the same checkpoint); evaluate on from it. A truncated, corrupt or mismatched
    /// image is `Status::Format` with a message naming the check that failed.
    pub fn import_session(&self, image: &[u8]) -> Result<Session<'_>> {
        let mut out = ptr::null_mut();
        check(unsafe {
            sys::moert_session_import(self.raw.as_ptr(), image.as_ptr() as *const c_void, image.len(), &mut out)
        })?;
        Ok(Session {
            raw: NonNull::new(out).expect("moert_session_import gave NULL"),
            vocab: self.vocab_size(),
            _model: PhantomData,
        })
    }

    /// Continues an exported sequence ([`Session::export`]'s image) as a stream: the first token is
    /// sampled from the image's last logits, as a stream of the same prompt would have; only the
    /// continuation is streamed. Errors as [`Model::import_session`]'s.
    pub fn generate_resume(&self, image: &[u8], options: &GenerateOptions) -> Result<Stream<'_>> {
        let o = options.raw()?;
        let mut out = ptr::null_mut();
        check(unsafe {
            sys::moert_generate_resume(
                self.raw.as_ptr(),
                image.as_ptr() as *const c_void,
                image.len(),
                o.as_ptr(),
                &mut out,
            )
        })?;
        Ok(Stream::new(out, options))
    }

    /// Starts generating after a text prompt (BOS as tokenizer_config.json says).
    pub fn generate(&self, prompt: &str, options: &GenerateOptions) -> Result<Stream<'_>> {
        let p = cstring(prompt)?;
        let o = options.raw()?;
        let mut out = ptr::null_mut();
        check(unsafe { sys::moert_generate_text(self.raw.as_ptr(), p.as_ptr(), o.as_ptr(), &mut out) })?;
        Ok(Stream::new(out, options))
    }

    /// Starts generating after a prompt of token ids.
    pub fn generate_tokens(&self, prompt: &[i32], options: &GenerateOptions) -> Result<Stream<'_>> {
        let o = options.raw()?;
        let mut out = ptr::null_mut();
        check(unsafe {
            sys::moert_generate_tokens(self.raw.as_ptr(), prompt.as_ptr(), prompt.len(), o.as_ptr(), &mut out)
        })?;
        Ok(Stream::new(out, options))
    }

    /// Starts generating after chat messages rendered with the chat template.
    pub fn generate_chat(&self, messages: &[Message], options: &GenerateOptions) -> Result<Stream<'_>> {
        self.generate_chat_json(&messages_json(messages), options)
    }

    /// The same with the messages already as JSON.
    pub fn generate_chat_json(&self, messages_json: &str, options: &GenerateOptions) -> Result<Stream<'_>> {
        let m = cstring(messages_json)?;
        let o = options.raw()?;
        let mut out = ptr::null_mut();
        check(unsafe { sys::moert_generate_chat(self.raw.as_ptr(), m.as_ptr(), o.as_ptr(), &mut out) })?;
        Ok(Stream::new(out, options))
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        unsafe { sys::moert_model_free(self.raw.as_ptr()) }
    }
}

impl fmt::Debug for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Model").field("vocab_size", &self.vocab_size()).finish()
    }
}

// ---- tokenizer -------------------------------------------------------------------------------------

/// A byte-level BPE tokenizer with its chat template. Immutable: share it between threads.
pub struct Tokenizer {
    raw: NonNull<sys::moert_tokenizer>,
}

// SAFETY: moert.h: a tokenizer is immutable, any thread may use it; free may run on any thread.
unsafe impl Send for Tokenizer {}
unsafe impl Sync for Tokenizer {}

impl Tokenizer {
    /// Loads tokenizer.json or tiktoken.model (and tokenizer_config.json beside it, which tiktoken.model
    /// needs).
    pub fn load(tokenizer_json: impl AsRef<Path>) -> Result<Tokenizer> {
        let p = cstring(&tokenizer_json.as_ref().to_string_lossy())?;
        let mut out = ptr::null_mut();
        check(unsafe { sys::moert_tokenizer_load(p.as_ptr(), ptr::null(), &mut out) })?;
        Ok(Tokenizer { raw: NonNull::new(out).expect("moert_tokenizer_load gave NULL") })
    }

    /// "vocab_size", "bos_token_id", "eos_token_id" (-1 when absent), "add_bos_default".
    pub fn info(&self, key: &str) -> Result<i64> {
        let k = cstring(key)?;
        let mut v = 0i64;
        check(unsafe { sys::moert_tokenizer_info_int(self.raw.as_ptr(), k.as_ptr(), &mut v) })?;
        Ok(v)
    }

    /// Text to token ids; `add_bos: None` follows tokenizer_config.json; special tokens in the text are
    /// matched.
    pub fn encode(&self, text: &str, add_bos: Option<bool>) -> Result<Vec<i32>> {
        self.encode_with(text, add_bos, true)
    }

    pub fn encode_with(&self, text: &str, add_bos: Option<bool>, parse_special: bool) -> Result<Vec<i32>> {
        let bos = add_bos.map_or(-1, i32::from);
        let ps = i32::from(parse_special);
        let t = text.as_ptr() as *const c_char;
        let mut n = 0usize;
        check(unsafe { sys::moert_tokenize(self.raw.as_ptr(), t, text.len(), bos, ps, ptr::null_mut(), 0, &mut n) })?;
        let mut ids = vec![0i32; n];
        check(unsafe { sys::moert_tokenize(self.raw.as_ptr(), t, text.len(), bos, ps, ids.as_mut_ptr(), n, &mut n) })?;
        ids.truncate(n);
        Ok(ids)
    }

    /// Token ids to text, special tokens dropped.
    pub fn decode(&self, ids: &[i32]) -> Result<String> {
        self.decode_with(ids, true)
    }

    pub fn decode_with(&self, ids: &[i32], skip_special: bool) -> Result<String> {
        let sk = i32::from(skip_special);
        read_string(|b, c, n| unsafe { sys::moert_detokenize(self.raw.as_ptr(), ids.as_ptr(), ids.len(), sk, b, c, n) })
    }

    /// Renders chat messages with the chat template.
    pub fn apply_chat_template(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        let m = cstring(&messages_json(messages))?;
        let g = i32::from(add_generation_prompt);
        read_string(|b, c, n| unsafe { sys::moert_apply_chat_template(self.raw.as_ptr(), m.as_ptr(), g, b, c, n) })
    }
}

impl Drop for Tokenizer {
    fn drop(&mut self) {
        unsafe { sys::moert_tokenizer_free(self.raw.as_ptr()) }
    }
}

impl fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokenizer").field("vocab_size", &self.info("vocab_size").ok()).finish()
    }
}

// ---- session ---------------------------------------------------------------------------------------

/// One sequence with its own KV cache, evaluated token by token. `Send` (one thread at a time), not `Sync`.
pub struct Session<'m> {
    raw: NonNull<sys::moert_session>,
    vocab: usize,
    _model: PhantomData<&'m Model>,
}

// SAFETY: moert.h: "a session is used by one thread at a time": it may move between threads.
unsafe impl Send for Session<'_> {}

impl Session<'_> {
    /// Appends tokens; returns the logits after the last one (`vocab_size` floats), or after each one
    /// (`tokens.len()` rows) with `all_logits`.
    pub fn eval(&mut self, tokens: &[i32], all_logits: bool) -> Result<Vec<f32>> {
        let rows = if all_logits { tokens.len() } else { 1 };
        let mut out = vec![0f32; rows * self.vocab];
        check(unsafe {
            sys::moert_session_eval(
                self.raw.as_ptr(),
                tokens.as_ptr(),
                tokens.len(),
                i32::from(all_logits),
                out.as_mut_ptr(),
                out.len(),
            )
        })?;
        Ok(out)
    }

    /// Tokens in the sequence.
    pub fn len(&self) -> Result<usize> {
        let mut n = 0i64;
        check(unsafe { sys::moert_session_length(self.raw.as_ptr(), &mut n) })?;
        Ok(n as usize)
    }

    /// Drops the tokens after the first `length`.
    pub fn truncate(&mut self, length: usize) -> Result<()> {
        check(unsafe { sys::moert_session_truncate(self.raw.as_ptr(), length as i64) })
    }

    /// The sequence as a KV image (KV hand-off): its tokens, latent cache and last logits behind a
    /// header with the checkpoint's fingerprint and a checksum, for [`Model::import_session`] or
    /// [`Model::generate_resume`] in a process that loaded the same checkpoint. `Status::InvalidArgument`
    /// for an empty session or one truncated since its last evaluation.
    pub fn export(&self) -> Result<Vec<u8>> {
        let mut need = 0usize;
        check(unsafe { sys::moert_session_export(self.raw.as_ptr(), ptr::null_mut(), 0, &mut need) })?;
        let mut buf = vec![0u8; need];
        check(unsafe {
            sys::moert_session_export(self.raw.as_ptr(), buf.as_mut_ptr() as *mut c_void, buf.len(), &mut need)
        })?;
        buf.truncate(need);
        Ok(buf)
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        unsafe { sys::moert_session_free(self.raw.as_ptr()) }
    }
}

impl fmt::Debug for Session<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session").field("len", &self.len().ok()).finish()
    }
}

// ---- streams ---------------------------------------------------------------------------------------

/// Why a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FinishReason {
    /// max_tokens reached (or the context is full).
    Length,
    /// A stop string or stop token id.
    Stop,
    /// The model's end-of-sequence token.
    Eos,
    /// Cancelled.
    Cancelled,
    /// Failed alone (see the stream's error).
    Error,
}

impl FinishReason {
    fn from_raw(f: i32) -> Option<FinishReason> {
        match f as u32 {
            sys::MOERT_FINISH_LENGTH => Some(FinishReason::Length),
            sys::MOERT_FINISH_STOP => Some(FinishReason::Stop),
            sys::MOERT_FINISH_EOS => Some(FinishReason::Eos),
            sys::MOERT_FINISH_CANCELLED => Some(FinishReason::Cancelled),
            sys::MOERT_FINISH_ERROR => Some(FinishReason::Error),
            _ => None,
        }
    }
}

/// One streamed event: a token (None for a final event without one), its text piece, the finish reason on
/// the last event, and the token's log probabilities when the stream was started with
/// `GenerateOptions::logprobs` (None otherwise).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Token {
    pub id: Option<i32>,
    pub text: String,
    pub finish: Option<FinishReason>,
    pub logprobs: Option<TokenLogprobs>,
}

/// A generated token's log probability under the model (the log-softmax of the step's raw logits: the
/// sampling options change which token is drawn, not these), and the step's most likely tokens as
/// (id, log probability), most likely first.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TokenLogprobs {
    pub logprob: f32,
    pub top: Vec<(i32, f32)>,
}

/// Usage of a stream so far.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    pub prompt_tokens: i64,
    pub generated_tokens: i64,
    pub time_to_first_token: Duration,
    pub tokens_per_second: f64,
    /// Prompt tokens taken from the prefix cache instead of computed.
    pub cached_prompt_tokens: i64,
    /// Main-model forwards after the prompt.
    pub decode_forwards: i64,
    /// Tokens the MTP module drafted for the request.
    pub draft_tokens: i64,
    /// Drafts the main model confirmed (each saves a forward).
    pub accepted_drafts: i64,
}

/// The moert_stream handle, shared by a Stream and its Cancellers.
struct StreamHandle(NonNull<sys::moert_stream>);

// SAFETY: only moert_stream_cancel (any thread, per moert.h) is called through a shared StreamHandle
// from a Canceller; every other call goes through the one Stream (Send, not Sync), so the stream is read
// by one thread at a time. moert_stream_free may run on any thread.
unsafe impl Send for StreamHandle {}
unsafe impl Sync for StreamHandle {}

impl Drop for StreamHandle {
    fn drop(&mut self) {
        unsafe { sys::moert_stream_free(self.0.as_ptr()) }
    }
}

/// A running generation, borrowing its model. An `Iterator` of `Result<Token>`; dropping it cancels
/// the generation.
pub struct Stream<'m> {
    handle: Arc<StreamHandle>,
    finish: Option<FinishReason>,
    logprobs: bool,
    _model: PhantomData<&'m Model>,
}

impl<'m> Stream<'m> {
    fn new(raw: *mut sys::moert_stream, options: &GenerateOptions) -> Stream<'m> {
        Stream {
            handle: Arc::new(StreamHandle(NonNull::new(raw).expect("moert_generate gave NULL"))),
            finish: None,
            logprobs: options.logprobs.map_or(false, |n| n >= 0),
            _model: PhantomData,
        }
    }

    // moert_stream_logprobs of the event last read.
    fn read_logprobs(&self) -> Result<TokenLogprobs> {
        let (mut own, mut n) = (0f32, 0usize);
        let (none_i, none_f) = (ptr::null_mut(), ptr::null_mut());
        check(unsafe { sys::moert_stream_logprobs(self.raw(), &mut own, none_i, none_f, 0, &mut n) })?;
        let (mut ids, mut values) = (vec![0i32; n], vec![0f32; n]);
        check(unsafe {
            sys::moert_stream_logprobs(self.raw(), ptr::null_mut(), ids.as_mut_ptr(), values.as_mut_ptr(), n, &mut n)
        })?;
        Ok(TokenLogprobs { logprob: own, top: ids.into_iter().zip(values).collect() })
    }

    fn raw(&self) -> *mut sys::moert_stream {
        self.handle.0.as_ptr()
    }

    /// The next event, waiting at most `timeout` (None: no limit). `Status::Timeout` when nothing came.
    /// After the end it returns the final event again.
    pub fn next_event(&mut self, timeout: Option<Duration>) -> Result<Token> {
        let ms = timeout.map_or(-1, |d| d.as_millis().min(i32::MAX as u128) as i32);
        let (mut tok, mut fin) = (0i32, 0i32);
        check(unsafe { sys::moert_stream_next(self.raw(), ms, &mut tok, &mut fin) })?;
        let text = read_string(|b, c, n| unsafe { sys::moert_stream_text(self.raw(), b, c, n) })?;
        let finish = FinishReason::from_raw(fin);
        if finish.is_some() {
            self.finish = finish;
        }
        let logprobs = if self.logprobs && tok >= 0 { Some(self.read_logprobs()?) } else { None };
        Ok(Token { id: if tok >= 0 { Some(tok) } else { None }, text, finish, logprobs })
    }

    /// Why the stream ended (None while running).
    pub fn finish_reason(&self) -> Option<FinishReason> {
        self.finish
    }

    /// Asks the stream to stop; it ends with `FinishReason::Cancelled`.
    pub fn cancel(&self) -> Result<()> {
        check(unsafe { sys::moert_stream_cancel(self.raw()) })
    }

    /// A handle that cancels this stream from any thread.
    pub fn canceller(&self) -> Canceller {
        Canceller(Arc::clone(&self.handle))
    }

    /// Usage so far.
    pub fn usage(&self) -> Result<Usage> {
        let (mut p, mut g, mut t, mut tps) = (0i64, 0i64, 0f64, 0f64);
        check(unsafe { sys::moert_stream_usage(self.raw(), &mut p, &mut g, &mut t, &mut tps) })?;
        Ok(Usage {
            prompt_tokens: p,
            generated_tokens: g,
            time_to_first_token: Duration::from_secs_f64(t.max(0.0)),
            tokens_per_second: tps,
            cached_prompt_tokens: self.counter("cached_prompt_tokens")?,
            decode_forwards: self.counter("decode_forwards")?,
            draft_tokens: self.counter("draft_tokens")?,
            accepted_drafts: self.counter("accepted_drafts")?,
        })
    }

    /// A counter of the request so far: "cached_prompt_tokens", "decode_forwards", "draft_tokens",
    /// "accepted_drafts" (also in [`Stream::usage`]).
    pub fn counter(&self, key: &str) -> Result<i64> {
        let k = cstring(key)?;
        let mut v = 0i64;
        check(unsafe { sys::moert_stream_counter(self.raw(), k.as_ptr(), &mut v) })?;
        Ok(v)
    }

    fn info(&self, key: &str) -> Result<i64> {
        let k = cstring(key)?;
        let mut v = 0i64;
        check(unsafe { sys::moert_stream_info_int(self.raw(), k.as_ptr(), &mut v) })?;
        Ok(v)
    }

    /// The sampling seed in effect: the one given, or the fresh one a sampled request without a seed
    /// drew (pass it to `GenerateOptions::seed` to repeat the run); 0 for greedy.
    pub fn seed(&self) -> Result<i64> {
        self.info("seed")
    }

    /// Whether the request samples (temperature > 0 after generation_config.json's defaults).
    pub fn sampled(&self) -> Result<bool> {
        Ok(self.info("sampled")? != 0)
    }

    /// The message of a stream that finished with `FinishReason::Error` ("" otherwise).
    pub fn error_message(&self) -> Result<String> {
        read_string(|b, c, n| unsafe { sys::moert_stream_error(self.raw(), b, c, n) })
    }

    /// Reads to the end; returns the generated token ids.
    pub fn collect_tokens(&mut self) -> Result<Vec<i32>> {
        let mut v = Vec::new();
        for t in self.by_ref() {
            if let Some(id) = t?.id {
                v.push(id);
            }
        }
        Ok(v)
    }

    /// Reads to the end; returns the text.
    pub fn collect_text(&mut self) -> Result<String> {
        let mut s = String::new();
        for t in self.by_ref() {
            s.push_str(&t?.text);
        }
        Ok(s)
    }
}

impl Iterator for Stream<'_> {
    type Item = Result<Token>;

    /// The next token or text piece; None after the end. A stream that failed yields its error once.
    fn next(&mut self) -> Option<Result<Token>> {
        loop {
            if self.finish.is_some() {
                return None;
            }
            let t = match self.next_event(None) {
                Ok(t) => t,
                Err(e) => {
                    self.finish = Some(FinishReason::Error);
                    return Some(Err(e));
                }
            };
            if t.finish == Some(FinishReason::Error) {
                let msg = self.error_message().unwrap_or_default();
                return Some(Err(Error::new(Status::Generation, msg)));
            }
            if t.id.is_some() || !t.text.is_empty() {
                return Some(Ok(t));
            }
        }
    }
}

impl fmt::Debug for Stream<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stream").field("finish", &self.finish).finish()
    }
}

/// Cancels a stream from any thread; keeps the native stream alive while it exists.
#[derive(Clone)]
pub struct Canceller(Arc<StreamHandle>);

impl Canceller {
    pub fn cancel(&self) -> Result<()> {
        check(unsafe { sys::moert_stream_cancel(self.0 .0.as_ptr()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_json() {
        let j = messages_json(&[Message::user("a \"b\"\n\u{1}")]);
        assert_eq!(j, r#"[{"role":"user","content":"a \"b\"\n\u0001"}]"#);
    }

    #[test]
    fn send_sync_as_the_header_says() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>() {}
        send_sync::<Model>();
        send_sync::<Tokenizer>();
        send_sync::<Canceller>();
        send::<Session<'static>>();
        send::<Stream<'static>>();
        send_sync::<Error>();
    }
}
