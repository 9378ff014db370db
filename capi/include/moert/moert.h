/* moert: run DeepSeek-V3-architecture Mixture-of-Experts models in-process.
 *
 * The only public header. C99; no C++ types, no CUDA types. Conventions (see docs/DESIGN.md):
 * - Every fallible function returns moert_status (MOERT_OK = 0). On failure, moert_last_error() gives a
 *   message for this thread, valid until this thread's next moert_ call, and out-parameters are untouched.
 * - Handles are opaque. *_free functions accept NULL, return nothing, may run on any thread and never
 *   call back into the host.
 * - Variable-size results are written into caller buffers: pass NULL/0 to learn the size needed.
 * - Threading: a model is immutable after load and may be shared by any number of threads; a session
 *   is used by one thread at a time. Options objects are not thread-safe while being modified.
 */
#ifndef MOERT_MOERT_H
#define MOERT_MOERT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define MOERT_API __declspec(dllexport)
#else
#define MOERT_API __attribute__((visibility("default")))
#endif

/* The API level: incremented when functions are added; existing signatures never change (a changed
 * function gets a new _v2 name). */
/* API history: 2 added moert_stream_info_int and moert_checkpoint_write_random_v2; 3 added
 * moert_stream_counter and the KV hand-off (moert_session_export, moert_session_import,
 * moert_generate_resume); 4 added moert_checkpoint_quantize; 5 added moert_stream_logprobs (and the
 * "logprobs" generation option). */
#define MOERT_API_VERSION 5

typedef int32_t moert_status;
#define MOERT_OK 0
#define MOERT_ERR_INVALID_ARGUMENT 1 /* a bad argument: NULL handle, bad token id, unknown option key */
#define MOERT_ERR_IO 2               /* a file could not be opened, read or mapped */
#define MOERT_ERR_FORMAT 3           /* a malformed file: safetensors, config.json, tokenizer.json */
#define MOERT_ERR_UNSUPPORTED 4      /* a valid but unsupported value (config field, device) */
#define MOERT_ERR_OUT_OF_MEMORY 5    /* memory or the KV-cache budget is exhausted */
#define MOERT_ERR_DEVICE 6           /* a GPU error */
#define MOERT_ERR_CANCELLED 7        /* cancelled by the caller */
#define MOERT_ERR_INTERNAL 8         /* a bug in moert: please report */
#define MOERT_ERR_TIMEOUT 9          /* nothing happened within the time given; try again */

/* ---- version and errors ------------------------------------------------------------------------- */

/* MOERT_API_VERSION of the library actually loaded. Never fails; any thread. */
MOERT_API int32_t moert_api_version(void);
/* The library version, e.g. "0.1.0". Static storage; never fails; any thread. */
MOERT_API const char* moert_version_string(void);
/* This thread's last error message ("" if none). Owned by moert, valid until this thread's next moert_
 * call. Never fails. */
MOERT_API const char* moert_last_error(void);
/* A short constant name for a status ("MOERT_ERR_IO"). Static storage. */
MOERT_API const char* moert_status_name(moert_status status);

/* ---- options ------------------------------------------------------------------------------------ */

/* A set of key/value settings. Keys are checked when set: an unknown key or an out-of-range value is
 * MOERT_ERR_INVALID_ARGUMENT with a message naming it. Each key belongs to one call (model load,
 * generation, checkpoint shape): passing an options object holding a key of another call's scope (e.g.
 * "threads" to moert_generate_text) is MOERT_ERR_INVALID_ARGUMENT naming the key and its scope.
 *
 * Generation's temperature, top_p, top_k and repetition_penalty default to the checkpoint's
 * generation_config.json when it has them, as in transformers and vLLM ("do_sample": false there means
 * temperature 0). Every key, its type, range and default:
 * BEGIN option keys: generated from capi/src/option_table.inc by `scripts/option_table.py docs --write`
 * Model load keys (moert_model_load):
 *   "threads" int, 0 to 4096, default 0: CPU threads (0 = all cores)
 *   "device" string, "cpu" or "cuda", default "cpu": the backend
 *   "activations" string, "fp32" or "fp8", default "fp32": "fp32" is the reference; "fp8": DeepSeek's 1x128
 *       FP8 activations
 *   "kv_cache_bytes" int, 65536 to 9e+18, default 268435456: KV-cache budget in bytes shared by all sequences
 *       (256 MiB by default)
 *   "max_batch" int, 1 to 4096, default 16: most sequences decoded together
 *   "attention" string, "auto", "expanded" or "absorbed", default "auto": the MLA form ("expanded" and
 *       "absorbed" for testing)
 *   "mtp" int, 0 or 1, default 1: load the MTP module when the checkpoint has one
 *   "batch_invariant" int, 0 or 1, default 0: when on, a request's logits (so its sampled tokens for a seed)
 *       are the same bits whatever is batched with it, however its prompt is chunked, and with expert
 *       parallelism or not; slower decode GEMMs. CPU only (MOERT_ERR_UNSUPPORTED with device "cuda")
 *   "cuda_graphs" int, 0 or 1, default 1: when on and with device "cuda", decode steps (every sequence one
 *       token) are captured as CUDA graphs per batch-size bucket and replayed; 0: every step is launched op
 *       by op. No effect on the CPU
 *   "kv_cache_dtype" string, "auto", "fp32" or "bf16", default "auto": the latent cache's storage: "auto" is
 *       bf16 with device "cuda", fp32 on the CPU; the attention reads it in fp32; bf16 is UNSUPPORTED on the
 *       CPU
 *   "activation_dtype" string, "auto", "fp32" or "bf16", default "auto": the storage of activations between
 *       ops: "auto" is bf16 with device "cuda", fp32 on the CPU; every op computes and accumulates in fp32,
 *       and the residual stream, router, logits and whatever reaches the host stay fp32; "fp32" on cuda keeps
 *       the reference numerics; bf16 is UNSUPPORTED on the CPU. Independent of "activations": with "fp8" the
 *       GEMM inputs are quantised from these
 *   "ep_size" int, 1 to 65536, default 1: expert parallelism: ranks the routed experts are spread over (1 =
 *       off). One rank per process under MPI: run the host under `mpirun -np N` with ep_size N; moert
 *       initialises MPI when the host has not (and then finalises it at exit). Every process loads the model;
 *       the engines of all ranks step together from load on (a rank with no request runs empty steps while
 *       another has work); each rank serves its own requests (a rank may also serve none). Direct logits
 *       (sessions, moert_model_logits) are UNSUPPORTED with ep_size > 1. moert_model_free blocks until every
 *       rank has freed the model (the engines end together). A rank that fails or stops answering fails the
 *       requests of every rank (MOERT_FINISH_ERROR with the reason)
 *   "ep_transport" string, "none", "inproc", "mpi" or "nccl": unset: "mpi" when ep_size > 1, else "none".
 *       "nccl": GPU ranks, device "cuda": one GPU per rank, rank modulo the node's GPUs; under mpirun with
 *       ep_size > 1, NCCL's id sent over MPI; ep_size 1 runs alone. "inproc": a one-rank in-process group
 *       (the EP code path in one process; ep_size 1). MOERT_ERR_UNSUPPORTED when the build or machine lacks
 *       what the transport needs
 *   "ep_redundant" int, 0 to 16384, default 0: redundant expert slots per rank
 *   "eplb_interval" int, 0 to 1000000000000, default 0: engine steps between EPLB re-placements from the
 *       served load (0 = never)
 *   "ep_overlap" int, -1 to 1, default -1: 1 forces the two-microbatch overlap, each step's batch split in
 *       two halves whose expert dispatch/combine runs while the other half computes; 0: one batch, the
 *       exchanges in line; -1: on unless every rank is on one host (in-process ranks, MPI within one node),
 *       where exchanges run at memory speed and the split costs more than it hides. Must be the same on every
 *       rank
 *   "ep_max_ranks_per_token" int, 0 to 65536, default 0: DeepSeek's node limit for replicas: a token's pairs
 *       go to a replica on a rank the token already uses when there is one, so its experts span at most this
 *       many ranks where the placement allows (0 = no preference)
 *   "ep_timeout_ms" int, 1 to 1000000000, default 60000: longest wait for the other ranks in one exchange, in
 *       milliseconds
 *   "check_weights" int, 0 or 1, default 1: when on, every weight is scanned at load: a NaN/Inf in a
 *       BF16/F16/F32 tensor, an e4m3 NaN byte in an FP8 weight or a block scale that is not finite and
 *       positive is MOERT_ERR_FORMAT naming the file, the tensor and the first bad index. The scan reads the
 *       whole checkpoint once (bench/RESULTS.md: its cost); 0 skips it
 *   "prefix_cache" int, 0 or 1, default 1: when on, requests whose prompts share a prefix reuse the KV pages
 *       computed for an earlier request (whole pages of tokens, kept after a request ends and reclaimed least
 *       recently used first when the budget is needed: a running request never loses pages to it); the logits
 *       are the same as without it (bit for bit with batch_invariant). moert_stream_counter(stream,
 *       "cached_prompt_tokens") says how many prompt tokens a request took from it. 0: off
 *   "speculative" string, "auto", "on" or "off", default "auto": "on": when the checkpoint has the MTP module
 *       (and "mtp" is 1), each decode step drafts the next token with it and the main model checks draft and
 *       current token in one forward; greedy output is the same as without it, sampled output keeps the
 *       model's distribution (speculative rejection sampling). Requests with repetition, presence or
 *       frequency penalties, and expert parallelism, decode without drafts. moert_stream_counter gives
 *       "draft_tokens" and "accepted_drafts". "auto": "on" on device "cuda", off on the cpu, where a step
 *       with a draft costs about twice a plain one (the second token reads other experts, and the MTP layer
 *       adds half a step) for about 1.6 tokens, so it decodes slower (bench/RESULTS.md). "off": never
 *   "draft_tokens" int, 1 to 3, default 1: drafts per step (1 is DeepSeek's setting; more are chained through
 *       the module)
 * Generation keys (moert_generate_*):
 *   "max_tokens" int, 0 to 1000000000, default 256: tokens to generate at most
 *   "temperature" number, 0 to 100, default 0: 0 = greedy. Unset: the checkpoint's generation_config.json
 *       when it has it
 *   "top_k" int, 0 to 1000000000, default 0: 0 = off. Unset: the checkpoint's generation_config.json when it
 *       has it
 *   "top_p" number, 1e-09 to 1, default 1: 1 = off. Unset: the checkpoint's generation_config.json when it
 *       has it
 *   "min_p" number, 0 to 1, default 0: keeps tokens with p >= min_p * p_max (0 = off)
 *   "repetition_penalty" number, 0.001 to 100, default 1: Hugging Face's, over prompt and output (1 = off).
 *       Unset: the checkpoint's generation_config.json when it has it
 *   "presence_penalty" number, -100 to 100, default 0: OpenAI's: minus p for tokens present in the output (0
 *       = off)
 *   "frequency_penalty" number, -100 to 100, default 0: OpenAI's: minus f times the token's count in the
 *       output (0 = off)
 *   "seed" int, 0 to 9.2e+18: sampling seed: the same seed gives the same tokens whatever else runs. Unset: a
 *       sampled request (temperature > 0) draws a fresh seed, which moert_stream_info_int(stream, "seed")
 *       reports so the run can be repeated
 *   "stop" list of strings (moert_options_add_string): generation ends before the first occurrence, matched
 *       across token boundaries; the stop string is not returned
 *   "stop_token_ids" list of ints 0 to 2147483647 (moert_options_add_int): generation ends with that token
 *   "ignore_eos" int, 0 or 1, default 0: when on, keep going past the end-of-sequence token
 *   "logit_bias" list of strings (moert_options_add_string): OpenAI's logit_bias, one "TOKEN_ID:BIAS" entry
 *       per token (BIAS -100 to 100): added to that token's logit before sampling, after the penalties (-100
 *       all but bans it, 100 all but forces it); the logprobs stay the model's. A token id outside the
 *       vocabulary is INVALID_ARGUMENT when generation starts
 *   "logprobs" int, -1 to 20, default -1: -1: off; 0: each generated token's log probability under the model
 *       (moert_stream_logprobs); N: also the N most likely tokens at each step with theirs
 *   "add_generation_prompt" int, 0 or 1, default 1: moert_generate_chat: end with the assistant prompt
 * Checkpoint shape keys (moert_checkpoint_write_random):
 *   "model.vocab" int, 2 to 16777216, default 8192: vocabulary size
 *   "model.hidden" int, 16 to 65536, default 2048: hidden size
 *   "model.intermediate" int, 1 to 1048576, default 10944: the dense layers' MLP width
 *   "model.moe_intermediate" int, 1 to 1048576, default 1408: each expert's MLP width
 *   "model.layers" int, 1 to 1024, default 3: decoder layers
 *   "model.dense_layers" int, 0 to 1024, default 1: leading layers with a dense MLP (at most model.layers)
 *   "model.heads" int, 1 to 1024, default 16: attention heads
 *   "model.q_lora" int, 0 to 65536, default 1536: query LoRA rank (0 = q_proj)
 *   "model.kv_lora" int, 1 to 65536, default 512: the latent (KV LoRA) rank
 *   "model.experts" int, 0 to 16384, default 64: routed experts (0 = dense MLPs only)
 *   "model.top_k" int, 1 to 16384, default 6: experts per token
 *   "model.groups" int, 1 to 16384, default 8: expert groups (must divide model.experts)
 *   "model.topk_groups" int, 1 to 16384, default 4: groups a token's experts are chosen from
 *   "model.shared" int, 0 to 64, default 2: shared experts
 *   "model.mtp" int, 0 to 8, default 0: MTP modules
 *   "model.fp8" int, 0 or 1, default 1: FP8 e4m3 weights with 128x128 block scales (0: BF16)
 *   "model.seed" int, 0 to 9.2e+18, default 1: the weights' random seed
 * Checkpoint quantisation keys (moert_checkpoint_quantize):
 *   "quantize.group_size" int, 32, 64 or 128, default 32: columns per scale group of the moert_q4 expert
 *       weights (every expert weight's columns must split into groups: UNSUPPORTED naming the tensor
 *       otherwise)
 *   "quantize.threads" int, 0 to 4096, default 0: quantiser threads (0 = all cores)
 * END option keys
 * Free with moert_options_free. */
typedef struct moert_options moert_options;

/* *out receives a new empty options object. Errors: INVALID_ARGUMENT (out NULL), OUT_OF_MEMORY. */
MOERT_API moert_status moert_options_create(moert_options** out);
MOERT_API void moert_options_free(moert_options* options);
/* Set a key. `key` and string values are copied. Errors: INVALID_ARGUMENT (NULL, unknown key, wrong type
 * for the key, value out of range). An integer may be given for a number key. */
MOERT_API moert_status moert_options_set_int(moert_options* options, const char* key, int64_t value);
MOERT_API moert_status moert_options_set_float(moert_options* options, const char* key, double value);
MOERT_API moert_status moert_options_set_string(moert_options* options, const char* key, const char* value);
/* Append to a list key ("stop" takes strings, "stop_token_ids" integers). Same errors. */
MOERT_API moert_status moert_options_add_string(moert_options* options, const char* key, const char* value);
MOERT_API moert_status moert_options_add_int(moert_options* options, const char* key, int64_t value);

/* ---- model -------------------------------------------------------------------------------------- */

typedef struct moert_model moert_model;

/* Load progress: called on the loading thread only, with fraction in [0, 1] and a stage name (borrowed
 * for the call). Return nonzero to cancel the load (moert_model_load then returns MOERT_ERR_CANCELLED). */
typedef int32_t (*moert_progress_fn)(void* user_data, double fraction, const char* stage);

/* Loads a Hugging Face DeepSeek checkpoint directory (config.json, safetensors shards; tokenizer.json or
 * tiktoken.model when present). `options` may be NULL (defaults) and is only read during the call;
 * `progress` may be NULL. On success *out owns a reference: release it with moert_model_free. Sessions keep
 * the model alive, so freeing it while sessions exist is safe.
 * Errors: INVALID_ARGUMENT, IO, FORMAT (naming the file and tensor), UNSUPPORTED (naming the config field),
 * OUT_OF_MEMORY, CANCELLED. */
MOERT_API moert_status moert_model_load(const char* model_dir, const moert_options* options,
                                        moert_progress_fn progress, void* user_data, moert_model** out);
/* Releases the caller's reference. NULL is ignored. */
MOERT_API void moert_model_free(moert_model* model);

/* An integer fact about the model: "vocab_size", "context_length", "num_layers", "hidden_size",
 * "num_experts", "num_mtp_layers", "parameters" (elements of all weights bound), "kv_bytes_per_token"
 * (latent cache bytes per token, all layers, as stored), "kv_capacity_tokens", "bos_token_id",
 * "eos_token_id", "ep_rank" (this process's expert-parallel rank; 0 without EP), "ep_size" (1 without EP),
 * "ep_overlap" (1 when the two-microbatch overlap is in effect, as "ep_overlap" -1 resolved); and the CPU
 * kernels' paths this process and the model's options give, as llama.cpp's system info reports them
 * (whether or not the model has such weights): "cpu_isa" (0 portable, 1 AVX2, 2 AVX-512; -1 on device
 * cuda), "cpu_amx_bf16" (1 when the prefill GEMMs of FP8 weights run on AMX-BF16 tiles), "cpu_amx_int8"
 * (1 when the prefill of q4 experts runs on AMX-INT8 tiles), "cpu_q4_int8" (1 when q4 experts take int8
 * activations: AVX-512 VNNI); 0 on device cuda and in batch-invariant mode. The AMX keys run the tiles'
 * one-time check (Linux's tile permission and a self-check) if no prefill has yet.
 * Errors: INVALID_ARGUMENT (NULL or unknown key). Any thread. */
MOERT_API moert_status moert_model_info_int(const moert_model* model, const char* key, int64_t* out);
/* The model config as moert understood it, as JSON, NUL-terminated, into buf[cap]. *needed (may be NULL)
 * receives the size including the NUL. With buf NULL and cap 0 only *needed is set. Errors:
 * INVALID_ARGUMENT (NULL model, or cap too small: nothing is written then). Any thread. */
MOERT_API moert_status moert_model_config_json(const moert_model* model, char* buf, size_t cap,
                                               size_t* needed);

/* Writes a random-weight checkpoint of any DeepSeek-V3 shape in the released layout (config.json, sharded
 * safetensors with an index, FP8 e4m3 weights with 128x128 scales unless "model.fp8" is 0) into dir
 * (created if needed), for benchmarks and for shapes that have no released weights. shape (may be NULL):
 * the checkpoint shape keys ("model.*", above; unset ones take their defaults).
 * Errors: INVALID_ARGUMENT (NULL dir, inconsistent shape, a key of another scope), IO. */
MOERT_API moert_status moert_checkpoint_write_random(const char* dir, const moert_options* shape);
/* The same, calling progress (may be NULL) on the calling thread after the embeddings, each shard, each
 * layer and at the end, with the fraction written and a stage ("layer 2 of 3 (4 shards written)"; borrowed
 * for the call); a nonzero return cancels (MOERT_ERR_CANCELLED; the directory is left incomplete).
 * user_data is passed through untouched. shape is only read during the call. Errors: as
 * moert_checkpoint_write_random, CANCELLED. Since API 2. */
MOERT_API moert_status moert_checkpoint_write_random_v2(const char* dir, const moert_options* shape,
                                                        moert_progress_fn progress, void* user_data);

/* Writes a copy of the checkpoint in model_dir (FP8 as released, or BF16/F16/F32) into out_dir (created if
 * needed; not model_dir) with its routed and shared expert weights in moert_q4, 4-bit codes with an fp16
 * scale and offset per group of columns chosen for the least squared error (README, "4-bit experts"); the
 * other tensors are copied byte for byte in the same shards, config.json gets moert_q4's
 * quantization_config (the original kept as its "base"), and generation_config.json and the tokenizer
 * files are copied. moert_model_load loads the result on device "cpu" (other devices: UNSUPPORTED).
 * options (may be NULL; read only during the call): the quantisation keys listed with the option keys above.
 * progress (may be NULL) is called on the calling thread after each expert weight and at the end, with the
 * fraction done and a stage (borrowed for the call); nonzero cancels (CANCELLED; out_dir is left
 * incomplete). user_data is passed through untouched. Errors: INVALID_ARGUMENT (NULL dir, out_dir the
 * same as model_dir, a checkpoint already moert_q4, a bad option or one of another scope), IO, FORMAT and
 * UNSUPPORTED (as loading the source would give), CANCELLED. Since API 4. */
MOERT_API moert_status moert_checkpoint_quantize(const char* model_dir, const char* out_dir,
                                                 const moert_options* options, moert_progress_fn progress,
                                                 void* user_data);

/* ---- evaluation -------------------------------------------------------------------------------- */

/* One sequence with its own KV cache, for evaluating logits token by token. Holds a model reference.
 * Use from one thread at a time. Free with moert_session_free. */
typedef struct moert_session moert_session;

/* Errors: INVALID_ARGUMENT (NULL), OUT_OF_MEMORY. */
MOERT_API moert_status moert_session_create(moert_model* model, moert_session** out);
MOERT_API void moert_session_free(moert_session* session);
/* Appends n tokens to the session's sequence and computes logits. With all_logits nonzero, logits
 * receives n rows of vocab_size floats (row i: the distribution after token i); otherwise one row (after
 * the last token). logits_cap is the capacity in floats. tokens is borrowed for the call.
 * Errors: INVALID_ARGUMENT (NULL, n == 0, a token id outside the vocabulary, logits_cap too small, context
 * length exceeded), OUT_OF_MEMORY (the KV-cache budget cannot hold the sequence: the session is unchanged
 * and other sessions are unaffected). On error nothing is appended. The tokens run in the generation
 * engine's next step, batched with the running streams and other sessions; the call blocks until done. */
MOERT_API moert_status moert_session_eval(moert_session* session, const int32_t* tokens, size_t n,
                                          int32_t all_logits, float* logits, size_t logits_cap);
/* Tokens in the session's sequence. Errors: INVALID_ARGUMENT. */
MOERT_API moert_status moert_session_length(const moert_session* session, int64_t* out);
/* Drops tokens after the first `length` (to re-evaluate from there). Errors: INVALID_ARGUMENT (NULL,
 * length < 0 or beyond the sequence's length: nothing is changed). */
MOERT_API moert_status moert_session_truncate(moert_session* session, int64_t length);
/* KV hand-off (prefill/decode separation): the session's sequence as bytes another process that loaded the
 * same checkpoint continues from (moert_session_import, moert_generate_resume). The image holds the tokens,
 * the main layers' latent cache (fp32) and the logits after the last token, behind a versioned header (a
 * fingerprint of the checkpoint's config and weights, layer count, dimensions, token count) and a checksum.
 * Required-size protocol: *needed gets the image's size; buf NULL with cap 0 only asks. Not while another
 * thread uses the session. Errors: INVALID_ARGUMENT (NULL, cap too small, an empty session, or one truncated
 * since its last evaluation: the image needs the logits of its last token). Since API 3. */
MOERT_API moert_status moert_session_export(const moert_session* session, void* buf, size_t cap,
                                            size_t* needed);
/* A new session holding an exported sequence (data borrowed for the call); evaluate on from it. Free with
 * moert_session_free. Errors: INVALID_ARGUMENT (NULL), FORMAT (a truncated, corrupt or mismatched image: the
 * message names the check that failed: magic, version, truncated, checksum, fingerprint, layers, width,
 * vocab, token count, token id, values), OUT_OF_MEMORY (the KV budget), UNSUPPORTED (ep_size > 1). Since
 * API 3. */
MOERT_API moert_status moert_session_import(moert_model* model, const void* data, size_t size,
                                            moert_session** out);

/* Logits for a token sequence in one forward pass (no state kept): n rows of vocab_size floats into
 * logits[logits_cap]. Errors: INVALID_ARGUMENT (NULL, n == 0, bad token id, logits_cap too small),
 * OUT_OF_MEMORY (the KV-cache budget cannot hold n tokens). Any thread: the tokens run in the generation
 * engine's next step, batched with the running streams; the call blocks until done. */
MOERT_API moert_status moert_model_logits(moert_model* model, const int32_t* tokens, size_t n, float* logits,
                                          size_t logits_cap);

/* ---- tokenizer ---------------------------------------------------------------------------------- */

/* A byte-level BPE tokenizer (tokenizer.json, or tiktoken.model as Moonlight and Kimi-K2 ship it) with its
 * special tokens and chat template (tokenizer_config.json). Immutable: any thread may use it. Free with
 * moert_tokenizer_free. */
typedef struct moert_tokenizer moert_tokenizer;

/* Loads tokenizer.json, or tiktoken.model (any file not starting with '{'); config_path may be NULL (then
 * tokenizer_config.json beside it is used when it exists; tiktoken.model requires it: its auto_map names
 * the tokenizer class). Errors: INVALID_ARGUMENT, IO, FORMAT, UNSUPPORTED (a component type or tokenizer
 * class moert does not implement). */
MOERT_API moert_status moert_tokenizer_load(const char* tokenizer_json_path, const char* config_path,
                                            moert_tokenizer** out);
/* The tokenizer of a loaded model (a new handle). Errors: INVALID_ARGUMENT (the checkpoint has none),
 * UNSUPPORTED (its tiktoken.model comes with a tokenizer class moert does not know; the model itself runs on
 * token ids). */
MOERT_API moert_status moert_model_tokenizer(const moert_model* model, moert_tokenizer** out);
MOERT_API void moert_tokenizer_free(moert_tokenizer* tokenizer);
/* "vocab_size", "bos_token_id", "eos_token_id" (-1 when absent), "add_bos_default".
 * Errors: INVALID_ARGUMENT (NULL, unknown key). */
MOERT_API moert_status moert_tokenizer_info_int(const moert_tokenizer* tokenizer, const char* key,
                                                int64_t* out);

/* UTF-8 text (text_len bytes; invalid UTF-8 is replaced by U+FFFD, as Hugging Face does) to token ids in
 * ids[cap]; *n_ids receives the count. add_bos: 1 yes, 0 no, -1 as tokenizer_config.json says.
 * parse_special: 1 to match special tokens written in the text. With ids NULL and cap 0 only *n_ids is
 * set. Errors: INVALID_ARGUMENT (NULL, cap too small: nothing written). */
MOERT_API moert_status moert_tokenize(const moert_tokenizer* tokenizer, const char* text, size_t text_len,
                                      int32_t add_bos, int32_t parse_special, int32_t* ids, size_t cap,
                                      size_t* n_ids);
/* Token ids to UTF-8 text, NUL-terminated, into buf[cap]; *needed receives the size with the NUL.
 * skip_special: 1 to drop special tokens. Errors: INVALID_ARGUMENT (NULL, cap too small, an id that is not
 * in the tokenizer's vocabulary: the message names it). */
MOERT_API moert_status moert_detokenize(const moert_tokenizer* tokenizer, const int32_t* ids, size_t n,
                                        int32_t skip_special, char* buf, size_t cap, size_t* needed);
/* Renders a chat (messages_json: a JSON array of {"role", "content", ...}, or an object with such a
 * "messages" array whose other members are further template variables, e.g. "tools") with the chat
 * template, NUL-terminated, into buf[cap], as transformers' apply_chat_template renders it: DeepSeek's and
 * Moonlight's templates natively, any other with moert's jinja engine. Errors: INVALID_ARGUMENT (bad
 * messages, cap too small, or the template raised: the message gives its line and text), UNSUPPORTED (no
 * template, or one using what the engine lacks, such as {% include %}: the message says what and where). */
MOERT_API moert_status moert_apply_chat_template(const moert_tokenizer* tokenizer, const char* messages_json,
                                                 int32_t add_generation_prompt, char* buf, size_t cap,
                                                 size_t* needed);

/* ---- generation --------------------------------------------------------------------------------- */

/* Why a stream ended. */
#define MOERT_FINISH_NONE 0      /* still running */
#define MOERT_FINISH_LENGTH 1    /* max_tokens reached (or the context is full) */
#define MOERT_FINISH_STOP 2      /* a stop string or stop token id */
#define MOERT_FINISH_EOS 3       /* the model's end-of-sequence token */
#define MOERT_FINISH_CANCELLED 4 /* moert_stream_cancel */
#define MOERT_FINISH_ERROR 5     /* failed alone (KV budget, NaN logits): moert_stream_error */

/* One generation request. Requests from any number of threads run at once and are batched together.
 * A stream is read by one thread at a time; moert_stream_cancel may come from any thread. Holds a model
 * reference. Free with moert_stream_free (which cancels it if running). */
typedef struct moert_stream moert_stream;

/* Start generating after a prompt of token ids (borrowed for the call). gen may be NULL (defaults).
 * Errors: INVALID_ARGUMENT (NULL, empty prompt, bad token id, unknown option). */
MOERT_API moert_status moert_generate_tokens(moert_model* model, const int32_t* prompt, size_t n,
                                             const moert_options* gen, moert_stream** out);
/* The same from UTF-8 text, tokenized with the model's tokenizer (BOS as tokenizer_config.json says). */
MOERT_API moert_status moert_generate_text(moert_model* model, const char* prompt, const moert_options* gen,
                                           moert_stream** out);
/* The same from chat messages (JSON), rendered with the chat template. */
MOERT_API moert_status moert_generate_chat(moert_model* model, const char* messages_json,
                                           const moert_options* gen, moert_stream** out);
/* Continues an exported sequence (moert_session_export's image, data borrowed for the call) as a stream:
 * the first token is sampled from the image's last logits with gen's sampling, as a stream of the same
 * prompt in one process would have, then decoding goes on; only the continuation is streamed. With
 * ep_size > 1 every rank's engine takes part as in any generation. Errors: as moert_session_import's (but
 * not UNSUPPORTED for ep_size > 1), and INVALID_ARGUMENT for a bad option. Since API 3. */
MOERT_API moert_status moert_generate_resume(moert_model* model, const void* data, size_t size,
                                             const moert_options* gen, moert_stream** out);
/* Waits up to timeout_ms (-1: no limit) for the next token. On MOERT_OK, *token is the token id (-1 for a
 * final event without a token) and *finish_reason a MOERT_FINISH_* value; the event's text piece is then
 * read with moert_stream_text. After the final event every call returns it again (token -1).
 * Errors: INVALID_ARGUMENT (NULL), TIMEOUT (nothing yet; out-parameters untouched). */
MOERT_API moert_status moert_stream_next(moert_stream* stream, int32_t timeout_ms, int32_t* token,
                                         int32_t* finish_reason);
/* The UTF-8 text piece of the event last returned by moert_stream_next, NUL-terminated, into buf[cap];
 * *needed receives the size with the NUL. Pieces never split a UTF-8 sequence; text that may belong to a
 * stop string is held back until it is known not to. Errors: INVALID_ARGUMENT (NULL, cap too small). */
MOERT_API moert_status moert_stream_text(const moert_stream* stream, char* buf, size_t cap, size_t* needed);
/* Asks the stream to stop; it ends with MOERT_FINISH_CANCELLED at the next step. Any thread. */
MOERT_API moert_status moert_stream_cancel(moert_stream* stream);
/* Usage so far: prompt and generated token counts, time to first token and decode tokens/s (any may be
 * NULL). Errors: INVALID_ARGUMENT (NULL stream). */
MOERT_API moert_status moert_stream_usage(const moert_stream* stream, int64_t* prompt_tokens,
                                          int64_t* generated_tokens, double* time_to_first_token_s,
                                          double* tokens_per_second);
/* The error message of a stream that finished with MOERT_FINISH_ERROR ("" otherwise), into buf[cap].
 * Safe while the engine finishes the request (one locked read). Errors: INVALID_ARGUMENT (NULL, cap too
 * small). */
MOERT_API moert_status moert_stream_error(const moert_stream* stream, char* buf, size_t cap, size_t* needed);
/* An integer fact about the request, fixed when it started: "seed" (the sampling seed in effect: the
 * caller's, or the one drawn for a sampled request without one; 0 for greedy), "sampled" (1 when
 * temperature > 0 after the generation_config.json defaults). Any thread. Errors: INVALID_ARGUMENT (NULL,
 * unknown key; *out untouched). Since API 2. */
MOERT_API moert_status moert_stream_info_int(const moert_stream* stream, const char* key, int64_t* out);
/* A counter of the request so far: "cached_prompt_tokens" (prompt tokens taken from the prefix cache
 * instead of computed), "decode_forwards" (main-model forwards after its prompt), "draft_tokens" (tokens the
 * MTP module drafted for it), "accepted_drafts" (drafts the main model confirmed; each saves a forward).
 * Any thread, while the request runs or after. Errors: INVALID_ARGUMENT (NULL, unknown key; *out untouched).
 * Since API 3. */
MOERT_API moert_status moert_stream_counter(const moert_stream* stream, const char* key, int64_t* out);
/* The log probabilities of the token event last returned by moert_stream_next, for a stream started with
 * the "logprobs" generation option >= 0: *logprob (may be NULL) receives the token's, and ids[cap] and
 * logprobs[cap] (either may be NULL) the most likely tokens at that step with theirs, most likely first
 * (ties: lower id first); *n (may be NULL) receives how many there are (the option's N), of which
 * min(cap, N) were written. They are the log-softmax of the model's raw logits at that step (temperature 1,
 * as OpenAI's logprobs and vLLM's): the sampling options (temperature, penalties, top_k, top_p, min_p)
 * change which token is drawn, not these. The values belong to the event; the next moert_stream_next
 * replaces them. Same thread as moert_stream_next. Errors: INVALID_ARGUMENT (NULL stream; a stream
 * started without "logprobs"; no token event: none read yet, or the final event without a token).
 * Since API 5. */
MOERT_API moert_status moert_stream_logprobs(const moert_stream* stream, float* logprob, int32_t* ids,
                                             float* logprobs, size_t cap, size_t* n);
MOERT_API void moert_stream_free(moert_stream* stream);

#ifdef __cplusplus
}
#endif

#endif /* MOERT_MOERT_H */
