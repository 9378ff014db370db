/* The C API from C: success and error paths of options, model load, info, sessions. Linked only against
 * the shared library. Prints "N passed, N failed" and exits nonzero on any failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moert/moert.h"

static int g_passed = 0, g_failed = 0;

#define CHECK(cond)                                                                           \
  do {                                                                                        \
    if (cond) {                                                                               \
      ++g_passed;                                                                             \
    } else {                                                                                  \
      ++g_failed;                                                                             \
      fprintf(stderr, "%s:%d: CHECK(%s) failed; last error: %s\n", __FILE__, __LINE__, #cond, \
              moert_last_error());                                                            \
    }                                                                                         \
  } while (0)

static char g_dir[4096];

static int32_t count_progress(void* user, double fraction, const char* stage) {
  int* calls = (int*)user;
  (void)stage;
  if (fraction < 0.0 || fraction > 1.0) return 1;
  ++*calls;
  return 0;
}

static int32_t cancel_progress(void* user, double fraction, const char* stage) {
  (void)user;
  (void)stage;
  return fraction > 0.1; /* cancel once past the config stage */
}

static void test_version_and_errors(void) {
  CHECK(moert_api_version() == MOERT_API_VERSION);
  CHECK(strlen(moert_version_string()) > 0);
  CHECK(strcmp(moert_status_name(MOERT_ERR_IO), "MOERT_ERR_IO") == 0);
  CHECK(moert_options_create(NULL) == MOERT_ERR_INVALID_ARGUMENT);
  CHECK(strstr(moert_last_error(), "out") != NULL);
}

static void test_options(void) {
  moert_options* o = NULL;
  CHECK(moert_options_create(&o) == MOERT_OK && o != NULL);
  CHECK(moert_options_set_int(o, "threads", 2) == MOERT_OK);
  CHECK(moert_options_set_int(o, "no_such_key", 1) == MOERT_ERR_INVALID_ARGUMENT);
  CHECK(strstr(moert_last_error(), "no_such_key") != NULL);
  CHECK(moert_options_set_int(o, "threads", -1) == MOERT_ERR_INVALID_ARGUMENT);
  CHECK(strstr(moert_last_error(), "threads") != NULL);
  CHECK(moert_options_set_string(o, "activations", "fp16") == MOERT_ERR_INVALID_ARGUMENT);
  CHECK(strstr(moert_last_error(), "fp16") != NULL);
  CHECK(moert_options_set_string(o, "threads", "2") == MOERT_ERR_INVALID_ARGUMENT);
  CHECK(moert_options_set_string(o, "activations", NULL) == MOERT_ERR_INVALID_ARGUMENT);
  CHECK(moert_options_set_int(NULL, "threads", 1) == MOERT_ERR_INVALID_ARGUMENT);
  CHECK(moert_options_set_string(o, "activations", "fp8") == MOERT_OK);
  moert_options_free(o);
  moert_options_free(NULL);
}

static void test_load_errors(void) {
  moert_model* m = (moert_model*)0x1; /* must stay untouched on failure */
  CHECK(moert_model_load("/nonexistent/model", NULL, NULL, NULL, &m) == MOERT_ERR_IO);
  CHECK(m == (moert_model*)0x1);
  CHECK(strstr(moert_last_error(), "/nonexistent/model") != NULL);
  CHECK(moert_model_load(NULL, NULL, NULL, NULL, &m) == MOERT_ERR_INVALID_ARGUMENT);
  CHECK(moert_model_load(g_dir, NULL, NULL, NULL, NULL) == MOERT_ERR_INVALID_ARGUMENT);
  CHECK(moert_model_load(g_dir, NULL, cancel_progress, NULL, &m) == MOERT_ERR_CANCELLED);
  CHECK(m == (moert_model*)0x1);
  moert_model_free(NULL);
  /* Expert-parallel options the load refuses, each with a message naming what to change. */
  {
    moert_options* o = NULL;
    CHECK(moert_options_create(&o) == MOERT_OK);
    CHECK(moert_options_set_string(o, "ep_transport", "nccl") == MOERT_OK);
    CHECK(moert_model_load(g_dir, o, NULL, NULL, &m) == MOERT_ERR_INVALID_ARGUMENT);
    CHECK(strstr(moert_last_error(), "device \"cuda\"") != NULL);
    CHECK(moert_options_set_string(o, "ep_transport", "inproc") == MOERT_OK);
    CHECK(moert_options_set_int(o, "ep_size", 2) == MOERT_OK);
    CHECK(moert_model_load(g_dir, o, NULL, NULL, &m) == MOERT_ERR_INVALID_ARGUMENT);
    CHECK(strstr(moert_last_error(), "one-rank") != NULL);
    CHECK(moert_options_set_string(o, "ep_transport", "none") == MOERT_OK);
    CHECK(moert_model_load(g_dir, o, NULL, NULL, &m) == MOERT_ERR_INVALID_ARGUMENT);
    CHECK(strstr(moert_last_error(), "ep_size 2") != NULL);
    CHECK(moert_options_set_string(o, "ep_transport", "tcp") == MOERT_ERR_INVALID_ARGUMENT);
    moert_options_free(o);
    o = NULL;
    CHECK(moert_options_create(&o) == MOERT_OK);
    CHECK(moert_options_set_int(o, "batch_invariant", 1) == MOERT_OK);
    CHECK(moert_options_set_string(o, "device", "cuda") == MOERT_OK);
    CHECK(moert_model_load(g_dir, o, NULL, NULL, &m) == MOERT_ERR_UNSUPPORTED);
    moert_options_free(o);
    /* kv_cache_dtype: bf16 is a GPU cache; fp32 and auto load on the CPU; other values are refused. */
    o = NULL;
    CHECK(moert_options_create(&o) == MOERT_OK);
    CHECK(moert_options_set_string(o, "kv_cache_dtype", "fp16") == MOERT_ERR_INVALID_ARGUMENT);
    CHECK(moert_options_set_string(o, "kv_cache_dtype", "bf16") == MOERT_OK);
    CHECK(moert_model_load(g_dir, o, NULL, NULL, &m) == MOERT_ERR_UNSUPPORTED);
    CHECK(strstr(moert_last_error(), "kv_cache_dtype") != NULL);
    CHECK(moert_options_set_string(o, "kv_cache_dtype", "fp32") == MOERT_OK);
    /* activation_dtype: bf16 activations need the CUDA kernels; fp32 and auto load on the CPU. */
    CHECK(moert_options_set_string(o, "activation_dtype", "fp16") == MOERT_ERR_INVALID_ARGUMENT);
    CHECK(moert_options_set_string(o, "activation_dtype", "bf16") == MOERT_OK);
    CHECK(moert_model_load(g_dir, o, NULL, NULL, &m) == MOERT_ERR_UNSUPPORTED);
    CHECK(strstr(moert_last_error(), "activation_dtype bf16 needs device cuda") != NULL);
    CHECK(moert_options_set_string(o, "activation_dtype", "fp32") == MOERT_OK);
    CHECK(moert_options_set_int(o, "cuda_graphs", 0) == MOERT_OK);
    CHECK(moert_options_set_int(o, "cuda_graphs", 2) == MOERT_ERR_INVALID_ARGUMENT);
    {
      moert_model* km = NULL;
      CHECK(moert_model_load(g_dir, o, NULL, NULL, &km) == MOERT_OK);
      moert_model_free(km);
    }
    moert_options_free(o);
    /* ep_overlap: auto (-1, the default) is off for in-process ranks (one host); 1 forces it. */
    for (int forced = 0; forced <= 1; ++forced) {
      moert_model* em = NULL;
      int64_t v = -5;
      o = NULL;
      CHECK(moert_options_create(&o) == MOERT_OK);
      CHECK(moert_options_set_string(o, "ep_transport", "inproc") == MOERT_OK);
      if (forced) CHECK(moert_options_set_int(o, "ep_overlap", 1) == MOERT_OK);
      CHECK(moert_model_load(g_dir, o, NULL, NULL, &em) == MOERT_OK);
      CHECK(moert_model_info_int(em, "ep_overlap", &v) == MOERT_OK && v == forced);
      CHECK(moert_model_info_int(em, "ep_size", &v) == MOERT_OK && v == 1);
      moert_model_free(em);
      moert_options_free(o);
    }
    o = NULL;
    CHECK(moert_options_create(&o) == MOERT_OK);
    CHECK(moert_options_set_int(o, "ep_overlap", 2) == MOERT_ERR_INVALID_ARGUMENT);
    CHECK(m == (moert_model*)0x1);
    moert_options_free(o);
  }
}

static void test_model_and_sessions(void) {
  moert_options* o = NULL;
  moert_model* m = NULL;
  int calls = 0;
  CHECK(moert_options_create(&o) == MOERT_OK);
  CHECK(moert_options_set_int(o, "threads", 2) == MOERT_OK);
  /* A budget of 4 pages of 64 tokens: a 300-token request cannot fit. */
  CHECK(moert_options_set_int(o, "kv_cache_bytes", 4 * 64 * 576 * 4 * 2) == MOERT_OK);
  CHECK(moert_model_load(g_dir, o, count_progress, &calls, &m) == MOERT_OK && m != NULL);
  moert_options_free(o);
  if (!m) return;
  CHECK(calls >= 2);

  int64_t vocab = 0, layers = 0, v = 0;
  CHECK(moert_model_info_int(m, "vocab_size", &vocab) == MOERT_OK && vocab == 1024);
  CHECK(moert_model_info_int(m, "num_layers", &layers) == MOERT_OK && layers == 2);
  CHECK(moert_model_info_int(m, "kv_bytes_per_token", &v) == MOERT_OK && v == 2 * 576 * 4);
  v = 42;
  CHECK(moert_model_info_int(m, "bogus", &v) == MOERT_ERR_INVALID_ARGUMENT && v == 42);

  size_t need = 0;
  CHECK(moert_model_config_json(m, NULL, 0, &need) == MOERT_OK && need > 10);
  char small[4] = "xyz";
  CHECK(moert_model_config_json(m, small, sizeof small, &need) == MOERT_ERR_INVALID_ARGUMENT);
  CHECK(strcmp(small, "xyz") == 0);
  char* buf = (char*)malloc(need);
  CHECK(moert_model_config_json(m, buf, need, NULL) == MOERT_OK);
  CHECK(strstr(buf, "\"kv_lora_rank\"") != NULL && buf[need - 1] == '\0');
  free(buf);

  moert_session *a = NULL, *b = NULL;
  CHECK(moert_session_create(m, &a) == MOERT_OK && moert_session_create(m, &b) == MOERT_OK);
  float* logits = (float*)malloc(sizeof(float) * (size_t)vocab * 300);
  int32_t toks[300];
  for (int i = 0; i < 300; ++i) toks[i] = (i * 37) % (int32_t)vocab;

  CHECK(moert_session_eval(a, toks, 5, 1, logits, (size_t)vocab * 5) == MOERT_OK);
  int64_t len = 0;
  CHECK(moert_session_length(a, &len) == MOERT_OK && len == 5);
  /* bad token id: an error naming it, nothing appended */
  int32_t bad[2] = {1, (int32_t)vocab + 7};
  CHECK(moert_session_eval(a, bad, 2, 0, logits, (size_t)vocab) == MOERT_ERR_INVALID_ARGUMENT);
  CHECK(strstr(moert_last_error(), "1031") != NULL);
  CHECK(moert_session_length(a, &len) == MOERT_OK && len == 5);
  /* buffer too small, n == 0, NULLs */
  CHECK(moert_session_eval(a, toks, 2, 1, logits, (size_t)vocab) == MOERT_ERR_INVALID_ARGUMENT);
  CHECK(moert_session_eval(a, toks, 0, 0, logits, (size_t)vocab) == MOERT_ERR_INVALID_ARGUMENT);
  CHECK(moert_session_eval(NULL, toks, 1, 0, logits, (size_t)vocab) == MOERT_ERR_INVALID_ARGUMENT);
  CHECK(moert_session_eval(a, NULL, 1, 0, logits, (size_t)vocab) == MOERT_ERR_INVALID_ARGUMENT);

  /* A request larger than the KV budget fails alone; the other session continues. */
  CHECK(moert_session_eval(b, toks, 300, 0, logits, (size_t)vocab) == MOERT_ERR_OUT_OF_MEMORY);
  CHECK(strstr(moert_last_error(), "KV cache") != NULL);
  CHECK(moert_session_length(b, &len) == MOERT_OK && len == 0);
  CHECK(moert_session_eval(a, toks + 5, 1, 0, logits, (size_t)vocab) == MOERT_OK);

  /* The same tokens give the same logits incrementally and in one pass. */
  float* full = (float*)malloc(sizeof(float) * (size_t)vocab * 6);
  CHECK(moert_session_eval(b, toks, 6, 1, full, (size_t)vocab * 6) == MOERT_OK);
  float worst = 0.0f;
  for (int64_t i = 0; i < vocab; ++i) {
    float d = logits[i] - full[5 * vocab + i];
    if (d < 0) d = -d;
    if (d > worst) worst = d;
  }
  CHECK(worst < 1e-4f);
  /* truncate and re-evaluate */
  CHECK(moert_session_truncate(b, 3) == MOERT_OK && moert_session_length(b, &len) == MOERT_OK && len == 3);
  CHECK(moert_session_truncate(b, -1) == MOERT_ERR_INVALID_ARGUMENT);

  /* The model may be freed while sessions live. */
  moert_model_free(m);
  CHECK(moert_session_eval(b, toks + 3, 3, 0, logits, (size_t)vocab) == MOERT_OK);
  moert_session_free(a);
  moert_session_free(b);
  moert_session_free(NULL);
  free(full);
  free(logits);
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: capi_test DATA_DIR\n");
    return 2;
  }
  snprintf(g_dir, sizeof g_dir, "%s/tiny-v3-bf16", argv[1]);
  test_version_and_errors();
  test_options();
  test_load_errors();
  test_model_and_sessions();
  printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed ? 1 : 0;
}
