/* An outside C program, built against an installed moert as a user would (pkg-config or find_package):
 * streams a completion from MODEL_DIR on DEVICE (default cpu). On a failed load it prints the status name and
 * moert's message, and exits 3 (the install tests check both).   app MODEL_DIR [DEVICE] */
#include <moert/moert.h>
#include <stdio.h>

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: app MODEL_DIR [DEVICE]\n");
    return 2;
  }
  moert_options* o = NULL;
  moert_model* m = NULL;
  moert_stream* s = NULL;
  if (moert_options_create(&o) != MOERT_OK) return 1;
  if (argc > 2) moert_options_set_string(o, "device", argv[2]);
  moert_status st = moert_model_load(argv[1], o, NULL, NULL, &m);
  moert_options_free(o);
  if (st != MOERT_OK) {
    printf("load: %s: %s\n", moert_status_name(st), moert_last_error());
    return 3;
  }
  moert_options* g = NULL;
  moert_options_create(&g);
  moert_options_set_int(g, "max_tokens", 24);
  moert_options_set_int(g, "ignore_eos", 1);
  if (moert_generate_text(m, "def fibonacci(n):\n", g, &s) != MOERT_OK) return 1;
  moert_options_free(g);
  int tokens = 0;
  for (;;) {
    int32_t token, finish;
    char buf[256];
    size_t need = 0;
    if (moert_stream_next(s, -1, &token, &finish) != MOERT_OK) return 1;
    if (moert_stream_text(s, buf, sizeof buf, &need) == MOERT_OK) fputs(buf, stdout);
    if (token >= 0) ++tokens;
    if (finish != MOERT_FINISH_NONE) break;
  }
  printf("\nstreamed %d tokens (moert %s, API %d)\n", tokens, moert_version_string(),
         (int)moert_api_version());
  moert_stream_free(s);
  moert_model_free(m);
  return tokens > 0 ? 0 : 1;
}
