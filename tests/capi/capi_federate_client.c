/* One device of a federation through the C API, as an app's background worker runs it: its own
 * home, its user's text stored in the vault, the base loaded, then hearth_federate_join until the
 * coordinator ends the federation. Run by tests/cli/federate_cli_test.cpp beside the CLI's
 * `hearth federate serve` and `hearth federate join`.
 *
 *   capi_federate_client HOME ASSETS COORDINATOR USER
 *
 * Prints the client's report JSON on stdout; exits 0 when every call succeeded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hearth.h"

static int fail(const char* what) {
  fprintf(stderr, "error: %s: %s\n", what, hearth_last_error());
  return 1;
}

int main(int argc, char** argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: capi_federate_client HOME ASSETS COORDINATOR USER\n");
    return 2;
  }
  const char *home = argv[1], *assets = argv[2], *coordinator = argv[3], *user = argv[4];
  char model[4096], novel[4096];
  snprintf(model, sizeof model, "%s/models/stories260K", assets);
  snprintf(novel, sizeof novel, "%s/data/jane_austen/persuasion.txt", assets);

  /* 12 kB of the novel: this device's private data. */
  FILE* f = fopen(novel, "rb");
  if (f == NULL) return fail("cannot open the novel (is ASSETS right?)");
  static char text[12000];
  const size_t len = fread(text, 1, sizeof text, f);
  fclose(f);

  if (hearth_init(1) != HEARTH_OK) return fail("hearth_init");
  hearth_engine* e = NULL;
  const char key[32] = "federated device key 0123456789";
  if (hearth_open(home, HEARTH_KEY_RAW, key, 32, &e) != HEARTH_OK) return fail("hearth_open");
  if (hearth_ingest_text(e, user, HEARTH_DATA_DOCUMENT, "persuasion", text, len, NULL) != HEARTH_OK)
    return fail("hearth_ingest_text");
  if (hearth_load_base(e, model, "nf4") != HEARTH_OK) return fail("hearth_load_base");
  char* report = NULL;
  if (hearth_federate_join(e, coordinator, user, 120, &report) != HEARTH_OK) return fail("hearth_federate_join");
  printf("%s\n", report);
  hearth_free_string(report);
  /* A coordinator nobody runs: a clear error after the timeout, not a hang. */
  if (hearth_federate_join(e, "127.0.0.1:1", user, 2, NULL) == HEARTH_OK) {
    fprintf(stderr, "error: joined a coordinator that does not exist\n");
    return 1;
  }
  if (strlen(hearth_last_error()) == 0) return fail("no message for the missing coordinator");
  printf("missing coordinator: %s\n", hearth_last_error());
  hearth_close(e);
  return 0;
}
