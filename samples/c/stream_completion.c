/* A C host of moert: load a model, stream a completion and a chat answer, run several streams at once
 * from threads, cancel one, and read every error as a message. Build: see samples/c/CMakeLists.txt.
 * usage: stream_completion [MODEL_DIR]   (default: the shipped moert-tiny-coder) */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "moert/moert.h"

static void die(const char* what, moert_status st) {
  fprintf(stderr, "%s failed: %s (%s)\n", what, moert_last_error(), moert_status_name(st));
  exit(1);
}
#define CHECK(what, call)                \
  do {                                   \
    moert_status st_ = (call);           \
    if (st_ != MOERT_OK) die(what, st_); \
  } while (0)

/* Prints a stream's text as it arrives; returns the number of tokens. */
static int print_stream(moert_stream* s, FILE* out) {
  int n = 0;
  char buf[1024];
  for (;;) {
    int32_t token, finish;
    CHECK("next", moert_stream_next(s, -1, &token, &finish));
    size_t need = 0;
    if (moert_stream_text(s, buf, sizeof buf, &need) == MOERT_OK && out) fputs(buf, out);
    if (token >= 0) ++n;
    if (finish != MOERT_FINISH_NONE) break;
  }
  if (out) fputs("\n", out);
  return n;
}

struct job {
  moert_model* model;
  const char* prompt;
  int tokens;
};

static void* worker(void* arg) {
  struct job* j = (struct job*)arg;
  moert_options* g;
  moert_stream* s;
  CHECK("options", moert_options_create(&g));
  CHECK("options", moert_options_set_int(g, "max_tokens", 32));
  CHECK("generate", moert_generate_text(j->model, j->prompt, g, &s));
  j->tokens = print_stream(s, NULL);
  moert_stream_free(s);
  moert_options_free(g);
  return NULL;
}

int main(int argc, char** argv) {
  const char* dir = argc > 1 ? argv[1] : MOERT_DEFAULT_MODEL_DIR;
  moert_model* model;
  moert_options* opts;
  CHECK("options", moert_options_create(&opts));
  CHECK("options", moert_options_set_int(opts, "threads", 2));
  CHECK("load", moert_model_load(dir, opts, NULL, NULL, &model));
  moert_options_free(opts);

  /* 1. Stream a completion. */
  moert_options* g;
  moert_stream* s;
  CHECK("options", moert_options_create(&g));
  CHECK("options", moert_options_set_int(g, "max_tokens", 48));
  printf("--- completion ---\ndef fibonacci(n):\n");
  CHECK("generate", moert_generate_text(model, "def fibonacci(n):\n", g, &s));
  print_stream(s, stdout);
  double tps = 0;
  CHECK("usage", moert_stream_usage(s, NULL, NULL, NULL, &tps));
  printf("(%.0f tokens/s)\n", tps);
  moert_stream_free(s);

  /* 2. A chat answer. */
  printf("--- chat ---\n");
  CHECK("generate",
        moert_generate_chat(model, "[{\"role\":\"user\",\"content\":\"Sort a list in Python.\"}]", g, &s));
  print_stream(s, stdout);
  moert_stream_free(s);

  /* 3. Eight streams at once from eight threads. */
  pthread_t th[8];
  struct job jobs[8];
  const char* prompts[] = {"import os\n", "class Node:\n", "def main():\n", "# utils\n"};
  for (int i = 0; i < 8; ++i) {
    jobs[i].model = model;
    jobs[i].prompt = prompts[i % 4];
    jobs[i].tokens = 0;
    pthread_create(&th[i], NULL, worker, &jobs[i]);
  }
  for (int i = 0; i < 8; ++i) pthread_join(th[i], NULL);
  printf("--- 8 concurrent streams ---\n");
  for (int i = 0; i < 8; ++i) printf("stream %d: %d tokens\n", i, jobs[i].tokens);

  /* 4. Cancel one. */
  CHECK("options", moert_options_set_int(g, "max_tokens", 100000));
  CHECK("options", moert_options_set_int(g, "ignore_eos", 1));
  CHECK("generate", moert_generate_text(model, "def long_function():\n", g, &s));
  int32_t token, finish;
  CHECK("next", moert_stream_next(s, -1, &token, &finish));
  CHECK("cancel", moert_stream_cancel(s));
  do CHECK("next", moert_stream_next(s, -1, &token, &finish));
  while (finish == MOERT_FINISH_NONE);
  printf("--- cancel ---\nfinish reason %d (cancelled = %d)\n", finish, MOERT_FINISH_CANCELLED);
  moert_stream_free(s);
  moert_options_free(g);

  /* 5. Errors come back as a status and a message. */
  int32_t bad = 1 << 30;
  moert_status st = moert_generate_tokens(model, &bad, 1, NULL, &s);
  printf("--- errors ---\n%s: %s\n", moert_status_name(st), moert_last_error());
  moert_model* none;
  st = moert_model_load("/no/such/model", NULL, NULL, NULL, &none);
  printf("%s: %s\n", moert_status_name(st), moert_last_error());

  moert_model_free(model);
  return 0;
}
