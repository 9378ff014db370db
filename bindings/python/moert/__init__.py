"""moert: run DeepSeek-V3-architecture Mixture-of-Experts models in-process.

    import moert
    with moert.load("samples/models/moert-tiny-coder", progress=True) as model:
        for tok in model.generate("def fibonacci(n):\\n", max_tokens=32):
            print(tok.text, end="", flush=True)

Every handle (Model, Tokenizer, Session, Stream) is a context manager and has close(); the garbage
collector frees what is not closed. Errors are moert.Error subclasses, one per moert_status.
"""
import enum
import json
import sys
from collections import namedtuple
from collections.abc import Mapping

from . import moert_native as _n
from ._errors import (Error, InvalidArgumentError, IoError, FormatError, UnsupportedError, OutOfMemoryError,
                      DeviceError, CancelledError, InternalError, TimeoutError, GenerationError)

__all__ = ["load", "Model", "Tokenizer", "Session", "Stream", "Token", "TokenLogprobs", "Usage", "FinishReason",
           "Error", "InvalidArgumentError", "IoError", "FormatError", "UnsupportedError", "OutOfMemoryError",
           "DeviceError", "CancelledError", "InternalError", "TimeoutError", "GenerationError",
           "api_version", "__version__"]

__version__ = _n.version_string()
API_VERSION = 5  # the MOERT_API_VERSION this package is written for (stream counters, KV hand-off, logprobs)


def api_version():
    """MOERT_API_VERSION of the library actually loaded."""
    return _n.api_version()


class FinishReason(enum.IntEnum):
    """Why a stream ended (MOERT_FINISH_*)."""
    NONE = 0
    LENGTH = 1
    STOP = 2
    EOS = 3
    CANCELLED = 4
    ERROR = 5


Token = namedtuple("Token", "id text finish_reason logprobs", defaults=(None,))
Token.__doc__ = """One streamed event: the token id (-1 for a final event without a token), its UTF-8 text piece,
the FinishReason (NONE while running), and its TokenLogprobs when the stream was started with logprobs=N
(None otherwise, and for a final event without a token)."""
TokenLogprobs = namedtuple("TokenLogprobs", "logprob top")
TokenLogprobs.__doc__ = """A generated token's log probability under the model (the log-softmax of the step's raw
logits: the sampling options change which token is drawn, not these) and `top`, the step's N most likely
tokens as (id, logprob) pairs, most likely first."""
Usage = namedtuple("Usage", "prompt_tokens generated_tokens time_to_first_token_s tokens_per_second "
                   "cached_prompt_tokens decode_forwards draft_tokens accepted_drafts")
Usage.__doc__ = """A stream's usage so far: prompt and generated token counts, time to first token, decode tokens/s,
and the request's counters: cached_prompt_tokens (prompt tokens taken from the prefix cache instead of
computed), decode_forwards (main-model forwards after the prompt), draft_tokens (tokens the MTP module
drafted) and accepted_drafts (drafts the main model confirmed; each saves a forward)."""


class _Handle:
    """A native handle with deterministic close() and the garbage collector as a fallback."""
    _free = None

    def __init__(self, h):
        self._h = h

    @property
    def _handle(self):
        if self._h is None:
            raise InvalidArgumentError("%s is closed" % type(self).__name__)
        return self._h

    def close(self):
        """Frees the native handle now (idempotent)."""
        h, self._h = self._h, None
        if h is not None:
            type(self)._free(h)

    @property
    def closed(self):
        return self._h is None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def _options(pairs, lists=()):
    o = _n.options_create()
    try:
        for key, value in pairs:
            if value is None:
                continue
            if isinstance(value, bool):
                _n.options_set_int(o, key, int(value))
            elif isinstance(value, int):
                _n.options_set_int(o, key, value)
            elif isinstance(value, float):
                _n.options_set_float(o, key, value)
            else:
                _n.options_set_string(o, key, str(value))
        for key, values in lists:
            for v in values or ():
                if isinstance(v, str):
                    _n.options_add_string(o, key, v)
                else:
                    _n.options_add_int(o, key, int(v))
    except BaseException:
        _n.options_free(o)
        raise
    return o


def _gen_options(max_tokens=None, temperature=None, top_k=None, top_p=None, min_p=None, repetition_penalty=None,
                 presence_penalty=None, seed=None, stop=None, stop_token_ids=None, ignore_eos=None,
                 add_generation_prompt=None, frequency_penalty=None, logprobs=None, logit_bias=None):
    if isinstance(stop, str):
        stop = [stop]
    # {token_id: bias} -> "TOKEN_ID:BIAS" entries
    bias = None if logit_bias is None else ["%d:%r" % (int(t), float(b)) for t, b in dict(logit_bias).items()]
    f = lambda v: None if v is None else float(v)
    return _options([("max_tokens", max_tokens), ("temperature", f(temperature)), ("top_k", top_k),
                     ("top_p", f(top_p)), ("min_p", f(min_p)), ("repetition_penalty", f(repetition_penalty)),
                     ("presence_penalty", f(presence_penalty)), ("frequency_penalty", f(frequency_penalty)),
                     ("seed", seed), ("ignore_eos", ignore_eos),
                     ("add_generation_prompt", add_generation_prompt), ("logprobs", logprobs)],
                    [("stop", stop), ("stop_token_ids", stop_token_ids), ("logit_bias", bias)])


def _load_options(threads=None, device=None, activations=None, kv_cache_bytes=None, max_batch=None, attention=None,
                  mtp=None, batch_invariant=None, ep_size=None, ep_transport=None, ep_redundant=None,
                  eplb_interval=None, ep_overlap=None, ep_max_ranks_per_token=None, ep_timeout_ms=None,
                  check_weights=None, prefix_cache=None, speculative=None, draft_tokens=None, cuda_graphs=None,
                  kv_cache_dtype=None, activation_dtype=None):
    return _options([("threads", threads), ("device", device), ("activations", activations),
                     ("kv_cache_bytes", kv_cache_bytes), ("max_batch", max_batch), ("attention", attention),
                     ("mtp", mtp), ("batch_invariant", batch_invariant), ("ep_size", ep_size),
                     ("ep_transport", ep_transport), ("ep_redundant", ep_redundant),
                     ("eplb_interval", eplb_interval), ("ep_overlap", ep_overlap),
                     ("ep_max_ranks_per_token", ep_max_ranks_per_token), ("ep_timeout_ms", ep_timeout_ms),
                     ("check_weights", check_weights), ("prefix_cache", prefix_cache),
                     ("speculative", speculative), ("draft_tokens", draft_tokens), ("cuda_graphs", cuda_graphs),
                     ("kv_cache_dtype", kv_cache_dtype), ("activation_dtype", activation_dtype)])


class _ProgressBar:
    """A one-line text progress bar on stderr."""

    def __init__(self, out=None, width=30):
        self.out = out or sys.stderr
        self.width = width
        self.last = -1

    def __call__(self, fraction, stage):
        pct = int(fraction * 100)
        if pct != self.last or fraction >= 1.0:
            self.last = pct
            done = int(fraction * self.width)
            self.out.write("\rloading [%s%s] %3d%% %-24s" % ("#" * done, "." * (self.width - done), pct, stage[:24]))
            if fraction >= 1.0:
                self.out.write("\n")
            self.out.flush()


class _Listener(_n.ProgressListener):
    """Calls a Python callable on load progress; an exception it raises cancels the load and is re-raised."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn
        self.error = None

    def on_progress(self, fraction, stage):
        try:
            return bool(self.fn(fraction, stage))
        except BaseException as e:  # re-raised by Model.load
            self.error = e
            return True


def load(path, **kwargs):
    """Loads a model directory; see Model.load."""
    return Model.load(path, **kwargs)


class Model(_Handle):
    """A loaded model: immutable, shared by any number of threads."""
    _free = staticmethod(_n.model_free)

    @classmethod
    def load(cls, path, *, threads=None, device=None, activations=None, kv_cache_bytes=None, max_batch=None,
             attention=None, mtp=None, batch_invariant=None, ep_size=None, ep_transport=None, ep_redundant=None,
             eplb_interval=None, ep_overlap=None, ep_max_ranks_per_token=None, ep_timeout_ms=None, check_weights=None,
             prefix_cache=None, speculative=None, draft_tokens=None, cuda_graphs=None, kv_cache_dtype=None,
             activation_dtype=None, progress=None):
        """Loads a Hugging Face DeepSeek checkpoint directory. Options left None keep moert's defaults.

        threads: CPU threads (0 = all cores). device: "cpu" or "cuda". activations: "fp32" or "fp8".
        kv_cache_bytes, max_batch. attention: "auto", "expanded" or "absorbed". mtp: load the MTP module.
        batch_invariant: True for logits (so sampled tokens) that do not depend on what is batched with a
        request or how its prompt is chunked, at the cost of slower decode (CPU only).
        Expert parallelism: ep_size (ranks the routed experts are spread over; 1 = off; one rank per process
        under MPI), ep_transport ("none", "inproc", "mpi" or "nccl"), ep_redundant (redundant expert slots
        per rank), eplb_interval (engine steps between EPLB re-placements; 0 = never), ep_overlap (the
        two-microbatch overlap: True/1 on, False/0 off, None or -1 auto; model.info("ep_overlap") says what
        is in effect), ep_max_ranks_per_token (0 = no preference), ep_timeout_ms (longest wait for the other
        ranks in one exchange). check_weights: False skips the load-time scan for NaN/Inf weights.
        prefix_cache: False/0 turns off the prefix cache (requests sharing a prompt prefix reuse its KV pages;
        Stream.usage.cached_prompt_tokens says how many). speculative: "on" (MTP speculative decoding when
        the checkpoint has the MTP module; greedy output unchanged), "auto" (on with device "cuda", off on
        the CPU, where it decodes slower) or "off"; draft_tokens: drafts per step,
        1 to 3 (Stream.usage.draft_tokens / accepted_drafts count them). cuda_graphs: False launches every
        CUDA decode step op by op instead of replaying graphs. kv_cache_dtype: "auto", "fp32" or "bf16" (the
        latent cache's storage; bf16 needs device "cuda"). activation_dtype: "auto", "fp32" or "bf16" (the
        storage of activations between ops, fp32 math either way; bf16 needs device "cuda"). See "Model load
        keys" in moert.h.

        progress: True for a progress bar on stderr, or a callable(fraction, stage) that may return True to
        cancel the load (then CancelledError is raised; an exception it raises is re-raised)."""
        opts = _load_options(threads=threads, device=device, activations=activations, kv_cache_bytes=kv_cache_bytes,
                             max_batch=max_batch, attention=attention, mtp=mtp, batch_invariant=batch_invariant,
                             ep_size=ep_size, ep_transport=ep_transport, ep_redundant=ep_redundant,
                             eplb_interval=eplb_interval, ep_overlap=ep_overlap,
                             ep_max_ranks_per_token=ep_max_ranks_per_token, ep_timeout_ms=ep_timeout_ms,
                             check_weights=check_weights, prefix_cache=prefix_cache, speculative=speculative,
                             draft_tokens=draft_tokens, cuda_graphs=cuda_graphs, kv_cache_dtype=kv_cache_dtype,
                             activation_dtype=activation_dtype)
        listener = None
        if progress is True:
            listener = _Listener(_ProgressBar())
        elif callable(progress):
            listener = _Listener(progress)
        try:
            h = _n.model_load(str(path), opts, listener)
        except Error:
            if listener is not None and listener.error is not None:
                raise listener.error
            raise
        finally:
            _n.options_free(opts)
        return cls(h)

    def __init__(self, h):
        super().__init__(h)
        self._tokenizer = None

    def close(self):
        if self._tokenizer is not None:
            self._tokenizer.close()
        super().close()

    def info(self, key):
        """An integer fact: "vocab_size", "context_length", "num_layers", "hidden_size", "num_experts",
        "num_mtp_layers", "parameters", "kv_bytes_per_token", "kv_capacity_tokens", "bos_token_id",
        "eos_token_id", "ep_rank" (0 without expert parallelism), "ep_size" (1 without), "ep_overlap" (1 when
        the two-microbatch overlap is in effect), and the CPU kernels' paths: "cpu_isa" (0 portable, 1 AVX2,
        2 AVX-512), "cpu_amx_bf16" / "cpu_amx_int8" (1 when prefill runs on AMX tiles), "cpu_q4_int8"."""
        return _n.model_info_int(self._handle, key)

    vocab_size = property(lambda self: self.info("vocab_size"))
    context_length = property(lambda self: self.info("context_length"))
    bos_token_id = property(lambda self: self.info("bos_token_id"))
    eos_token_id = property(lambda self: self.info("eos_token_id"))

    @property
    def config(self):
        """The model config as moert understood it (a dict)."""
        return json.loads(_n.model_config_json(self._handle))

    @property
    def tokenizer(self):
        """The model's tokenizer (owned by the model, closed with it)."""
        if self._tokenizer is None:
            self._tokenizer = Tokenizer(_n.model_tokenizer(self._handle))
        return self._tokenizer

    def logits(self, tokens):
        """Logits for a token sequence in one forward pass: a float32 array of shape (len(tokens), vocab)."""
        import numpy as np
        tokens = [int(t) for t in tokens]
        out = np.empty((len(tokens), self.vocab_size), dtype=np.float32)
        _n.model_logits(self._handle, tokens, out)
        return out

    def session(self):
        """A new Session (a sequence with its own KV cache)."""
        s = Session(_n.session_create(self._handle))
        s._vocab_size = self.vocab_size
        return s

    def import_session(self, data):
        """A new Session holding an exported sequence (Session.export's bytes, from this or another process
        that loaded the same checkpoint); evaluate on from it. A truncated, corrupt or mismatched image is a
        FormatError naming the check that failed."""
        s = Session(_n.session_import(self._handle, data))
        s._vocab_size = self.vocab_size
        return s

    def generate_resume(self, data, **options):
        """Continues an exported sequence (Session.export's bytes) as a Stream: the first token is sampled
        from the image's last logits, as a stream of the same prompt would have; only the continuation is
        streamed. options as for generate; errors as import_session's."""
        opts = _gen_options(**options)
        try:
            return Stream(_n.generate_resume(self._handle, data, opts), self, options.get("logprobs"))
        finally:
            _n.options_free(opts)

    def generate(self, prompt, **options):
        """Starts generating after a prompt (str, or a sequence of token ids) and returns a Stream.

        options: max_tokens, temperature, top_k, top_p, min_p, repetition_penalty, presence_penalty, seed,
        stop (str or list of str), stop_token_ids, ignore_eos, logprobs (0: each Token carries its
        TokenLogprobs; N: with the N most likely tokens at each step, at most 20), logit_bias ({token_id:
        bias}, bias -100 to 100, added to the logits before sampling)."""
        opts = _gen_options(**options)
        try:
            if isinstance(prompt, str):
                return Stream(_n.generate_text(self._handle, prompt, opts), self, options.get("logprobs"))
            return Stream(_n.generate_tokens(self._handle, [int(t) for t in prompt], opts), self,
                          options.get("logprobs"))
        finally:
            _n.options_free(opts)

    def chat(self, messages, add_generation_prompt=True, **options):
        """Starts generating after chat messages ([{"role": ..., "content": ...}, ...], or a dict
        {"messages": [...], "tools": [...], ...} whose other members are template variables), rendered with
        the chat template; returns a Stream."""
        messages = _chat_json(messages)
        opts = _gen_options(add_generation_prompt=int(bool(add_generation_prompt)), **options)
        try:
            return Stream(_n.generate_chat(self._handle, messages, opts), self, options.get("logprobs"))
        finally:
            _n.options_free(opts)

    def complete(self, prompt, **options):
        """Generates and returns the whole text."""
        with self.generate(prompt, **options) as s:
            return s.text()


class Tokenizer(_Handle):
    """A byte-level BPE tokenizer with its chat template. Immutable: any thread may use it."""
    _free = staticmethod(_n.tokenizer_free)

    @classmethod
    def load(cls, tokenizer_json, config=None):
        """Loads tokenizer.json or tiktoken.model (and tokenizer_config.json beside it unless config names
        another; tiktoken.model needs it)."""
        return cls(_n.tokenizer_load(str(tokenizer_json), None if config is None else str(config)))

    def info(self, key):
        """"vocab_size", "bos_token_id", "eos_token_id" (-1 when absent), "add_bos_default"."""
        return _n.tokenizer_info_int(self._handle, key)

    def encode(self, text, add_bos=None, parse_special=True):
        """Text to a list of token ids. add_bos: None follows tokenizer_config.json."""
        return _n.tokenize(self._handle, text, -1 if add_bos is None else int(bool(add_bos)), int(bool(parse_special)))

    def decode(self, ids, skip_special=True):
        """Token ids to text."""
        return _n.detokenize(self._handle, [int(t) for t in ids], int(bool(skip_special)))

    def apply_chat_template(self, messages, add_generation_prompt=True, tools=None, documents=None, **variables):
        """Renders chat messages with the chat template, as transformers' apply_chat_template does: tools,
        documents and any further keyword (a template's own switch, e.g. enable_thinking=False) are template
        variables. Raises InvalidArgumentError where the template raises, UnsupportedError where moert
        cannot render it."""
        messages = _chat_json(messages, tools=tools, documents=documents, **variables)
        return _n.apply_chat_template(self._handle, messages, int(bool(add_generation_prompt)))

    tokenize = encode
    detokenize = decode


def _chat_json(messages, **variables):
    """Messages as the C API takes them: a JSON array, or an object with "messages" and template variables."""
    if isinstance(messages, str):
        if any(v is not None for v in variables.values()):
            raise InvalidArgumentError("template variables need the messages as a list or dict, not JSON text")
        return messages
    if isinstance(messages, Mapping):
        doc = dict(messages)
    else:
        doc = {"messages": list(messages)}
    doc.update({k: v for k, v in variables.items() if v is not None})
    return json.dumps(doc if len(doc) > 1 or isinstance(messages, Mapping) else doc["messages"])


class Session(_Handle):
    """One sequence with its own KV cache, evaluated token by token. One thread at a time."""
    _free = staticmethod(_n.session_free)

    def eval(self, tokens, all_logits=False):
        """Appends tokens and returns logits: shape (vocab,) after the last token, or (n, vocab) with
        all_logits."""
        import numpy as np
        tokens = [int(t) for t in tokens]
        vocab = self._vocab()
        out = np.empty((len(tokens) if all_logits else 1, vocab), dtype=np.float32)
        _n.session_eval(self._handle, tokens, int(bool(all_logits)), out)
        return out if all_logits else out[0]

    def _vocab(self):
        return self._vocab_size  # set by Model.session

    def __len__(self):
        return _n.session_length(self._handle)

    def truncate(self, length):
        """Drops tokens after the first `length`."""
        _n.session_truncate(self._handle, int(length))

    def export(self):
        """The sequence's KV image as bytes (KV hand-off): tokens, latent cache and last logits, with the
        checkpoint's fingerprint and a checksum, for Model.import_session or Model.generate_resume in a
        process that loaded the same checkpoint. InvalidArgumentError for an empty session or one truncated
        since its last eval (the image needs its last token's logits)."""
        return _n.session_export(self._handle)


class Stream(_Handle):
    """A running generation. Iterate it for Token events (a generator over moert_stream_next); cancel()
    may be called from any thread. One thread reads it at a time."""
    _free = staticmethod(_n.stream_free)

    _POLL_MS = 250  # the GIL is released while waiting; polling lets Ctrl-C through

    def __init__(self, h, model=None, logprobs=None):
        super().__init__(h)
        self._model = model  # the C stream holds its own model reference; this keeps the Python one too
        self._logprobs = logprobs is not None and int(logprobs) >= 0
        self.finish_reason = FinishReason.NONE
        self.tokens = []

    def next(self, timeout=None):
        """The next event (a Token). timeout in seconds (None: wait); raises TimeoutError when nothing came.
        After the end, returns the final event again."""
        ms = -1 if timeout is None else max(0, int(timeout * 1000))
        e = _n.stream_next(self._handle, ms)
        lp = None
        if self._logprobs and e.token >= 0:
            values = _n.stream_logprob_values(self._handle)
            lp = TokenLogprobs(values[0], list(zip(_n.stream_logprob_ids(self._handle), values[1:])))
        tok = Token(e.token, e.text, FinishReason(e.finish_reason), lp)
        if tok.finish_reason != FinishReason.NONE:
            self.finish_reason = tok.finish_reason
        return tok

    def __iter__(self):
        while self.finish_reason == FinishReason.NONE:
            try:
                tok = self.next(self._POLL_MS / 1000.0)
            except TimeoutError:
                continue
            if tok.id >= 0:
                self.tokens.append(tok.id)
            if tok.finish_reason == FinishReason.ERROR:
                raise GenerationError(self.error or "generation failed")
            if tok.id >= 0 or tok.text:
                yield tok

    def text_chunks(self):
        """A generator of the text pieces only."""
        for tok in self:
            if tok.text:
                yield tok.text

    def text(self):
        """Reads the stream to its end and returns the text."""
        return "".join(t.text for t in self)

    def token_ids(self):
        """Reads the stream to its end and returns all generated token ids."""
        for _ in self:
            pass
        return list(self.tokens)

    def cancel(self):
        """Asks the stream to stop (any thread); it ends with FinishReason.CANCELLED."""
        _n.stream_cancel(self._handle)

    @property
    def usage(self):
        """Usage so far: prompt_tokens, generated_tokens, time_to_first_token_s, tokens_per_second,
        cached_prompt_tokens, decode_forwards, draft_tokens, accepted_drafts."""
        u = _n.stream_usage(self._handle)
        return Usage(u.prompt_tokens, u.generated_tokens, u.time_to_first_token_s, u.tokens_per_second,
                     u.cached_prompt_tokens, u.decode_forwards, u.draft_tokens, u.accepted_drafts)

    def counter(self, key):
        """A counter of the request so far: "cached_prompt_tokens", "decode_forwards", "draft_tokens",
        "accepted_drafts" (also in usage)."""
        return _n.stream_counter(self._handle, key)

    @property
    def seed(self):
        """The sampling seed in effect: the one given, or the fresh one a sampled request without a seed
        drew (pass it as seed= to repeat the run); 0 for greedy."""
        return _n.stream_info_int(self._handle, "seed")

    @property
    def sampled(self):
        """True when the request samples (temperature > 0, after generation_config.json's defaults)."""
        return _n.stream_info_int(self._handle, "sampled") != 0

    @property
    def error(self):
        """The message of a stream that finished with FinishReason.ERROR ("" otherwise)."""
        return _n.stream_error(self._handle)
