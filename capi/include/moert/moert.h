/* moert: run DeepSeek-V3-architecture Mixture-of-Experts models in-process.
 *
 * The only public header. C99; no C++ types, no CUDA types. Conventions (see DESIGN.md):
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
#define MOERT_API_VERSION 1

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
 * MOERT_ERR_INVALID_ARGUMENT with a message naming it.
 *
 * Model load keys:
 *   "threads"        int   CPU threads (0 = all cores; default 0)
 *   "device"         str   "cpu" (default) or "cuda"
 *   "activations"    str   "fp32" (the reference; default) or "fp8" (DeepSeek's 1x128 FP8 activations)
 *   "kv_cache_bytes" int   KV-cache budget in bytes shared by all sequences (default 256 MiB)
 *   "max_batch"      int   most sequences decoded together (default 16)
 *   "attention"      str   "auto" (default), "expanded" or "absorbed" (MLA form; for testing)
 *   "mtp"            int   1 to load the MTP module when the checkpoint has one (default 1)
 * Free with moert_options_free. */
typedef struct moert_options moert_options;

/* *out receives a new empty options object. Errors: INVALID_ARGUMENT (out NULL), OUT_OF_MEMORY. */
MOERT_API moert_status moert_options_create(moert_options** out);
MOERT_API void moert_options_free(moert_options* options);
/* Set a key. `key` and string values are copied. Errors: INVALID_ARGUMENT (NULL, unknown key, wrong type
 * for the key, value out of range). */
MOERT_API moert_status moert_options_set_int(moert_options* options, const char* key, int64_t value);
MOERT_API moert_status moert_options_set_float(moert_options* options, const char* key, double value);
MOERT_API moert_status moert_options_set_string(moert_options* options, const char* key, const char* value);

/* ---- model -------------------------------------------------------------------------------------- */

typedef struct moert_model moert_model;

/* Load progress: called on the loading thread only, with fraction in [0, 1] and a stage name (borrowed
 * for the call). Return nonzero to cancel the load (moert_model_load then returns MOERT_ERR_CANCELLED). */
typedef int32_t (*moert_progress_fn)(void* user_data, double fraction, const char* stage);

/* Loads a Hugging Face DeepSeek checkpoint directory (config.json, safetensors shards; tokenizer.json
 * when present). `options` may be NULL (defaults) and is only read during the call; `progress` may be
 * NULL. On success *out owns a reference: release it with moert_model_free. Sessions keep the model alive,
 * so freeing it while sessions exist is safe.
 * Errors: INVALID_ARGUMENT, IO, FORMAT (naming the file and tensor), UNSUPPORTED (naming the config field),
 * OUT_OF_MEMORY, CANCELLED. */
MOERT_API moert_status moert_model_load(const char* model_dir, const moert_options* options,
                                        moert_progress_fn progress, void* user_data, moert_model** out);
/* Releases the caller's reference. NULL is ignored. */
MOERT_API void moert_model_free(moert_model* model);

/* An integer fact about the model: "vocab_size", "context_length", "num_layers", "hidden_size",
 * "num_experts", "num_mtp_layers", "parameters" (elements of all weights bound), "kv_bytes_per_token"
 * (latent cache bytes per token, all layers, as stored), "kv_capacity_tokens", "bos_token_id",
 * "eos_token_id". Errors: INVALID_ARGUMENT (NULL or unknown key). Any thread. */
MOERT_API moert_status moert_model_info_int(const moert_model* model, const char* key, int64_t* out);
/* The model config as moert understood it, as JSON, NUL-terminated, into buf[cap]. *needed (may be NULL)
 * receives the size including the NUL. With buf NULL and cap 0 only *needed is set. Errors:
 * INVALID_ARGUMENT (NULL model, or cap too small: nothing is written then). Any thread. */
MOERT_API moert_status moert_model_config_json(const moert_model* model, char* buf, size_t cap, size_t* needed);

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
 * and other sessions are unaffected). On error nothing is appended. */
MOERT_API moert_status moert_session_eval(moert_session* session, const int32_t* tokens, size_t n, int32_t all_logits,
                                          float* logits, size_t logits_cap);
/* Tokens in the session's sequence. Errors: INVALID_ARGUMENT. */
MOERT_API moert_status moert_session_length(const moert_session* session, int64_t* out);
/* Drops tokens after the first `length` (to re-evaluate from there). Errors: INVALID_ARGUMENT. */
MOERT_API moert_status moert_session_truncate(moert_session* session, int64_t length);

#ifdef __cplusplus
}
#endif

#endif /* MOERT_MOERT_H */
