/* The C API from plain C, as an app uses it: every function, on the real stories260K model and
 * real Austen text, plus the bad calls (NULL and closed handles, unknown users, invalid UTF-8,
 * malformed job specs) and two threads at once. Exits non-zero naming the first failed check.
 * Usage: capi_test [ASSETS_DIR]   (HEARTH_ASSETS wins when set) */
#define _POSIX_C_SOURCE 200809L /* mkdtemp, under -std=c99 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hearth.h"

static int failures = 0;

#define CHECK(cond)                                                                              \
  do {                                                                                           \
    if (!(cond)) {                                                                               \
      fprintf(stderr, "FAILED %s:%d: %s (last error: %s)\n", __FILE__, __LINE__, #cond, hearth_last_error()); \
      ++failures;                                                                                \
    }                                                                                            \
  } while (0)

#define CHECK_STATUS(call, expected) CHECK((call) == (expected))

static char assets[4096];

static void asset(char* out, size_t size, const char* relative) { snprintf(out, size, "%s/%s", assets, relative); }

/* The first `limit` bytes of a file, cut at a line end (malloc'ed, NUL-terminated). */
static char* read_prefix(const char* path, size_t limit, size_t* len) {
  FILE* f = fopen(path, "rb");
  if (f == NULL) return NULL;
  char* buf = malloc(limit + 1);
  size_t n = fread(buf, 1, limit, f);
  fclose(f);
  while (n > 0 && buf[n - 1] != '\n') --n;
  buf[n] = '\0';
  *len = n;
  return buf;
}

static int count_pieces(void* user_data, const char* text, size_t len) {
  (void)text;
  *(size_t*)user_data += len;
  return 0;
}

static int stop_at_once(void* user_data, const char* text, size_t len) {
  (void)user_data;
  (void)text;
  (void)len;
  return 1;
}

static int low_battery(void* user_data, hearth_device_state* s) {
  (void)user_data;
  s->charging = 0;
  s->battery_percent = 12;
  s->temperature_c = 30;
  s->screen_on = 0;
  s->idle = 1;
  return 0;
}

struct shared_engine {
  hearth_engine* engine;
  int64_t job_id;
  hearth_status status;
};

static void* read_status(void* arg) {
  struct shared_engine* s = arg;
  char* json = NULL;
  s->status = HEARTH_OK;
  for (int i = 0; i < 20 && s->status == HEARTH_OK; ++i) {
    s->status = hearth_job_status(s->engine, s->job_id, &json);
    hearth_free_string(json);
    json = NULL;
  }
  return NULL;
}

static void bad_calls_without_an_engine(void) {
  hearth_engine* e = NULL;
  CHECK(strlen(hearth_version()) > 0);
  CHECK_STATUS(hearth_open(NULL, HEARTH_KEY_NONE, NULL, 0, &e), HEARTH_ERR_INVALID_ARGUMENT);
  CHECK(strlen(hearth_last_error()) > 0);
  CHECK_STATUS(hearth_open("/tmp/x", HEARTH_KEY_RAW, NULL, 0, &e), HEARTH_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(hearth_open("/tmp/x", HEARTH_KEY_RAW, "k", 1, NULL), HEARTH_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(hearth_open("/nonexistent-hearth-home", HEARTH_KEY_NONE, NULL, 0, &e), HEARTH_ERR_NOT_FOUND);
  CHECK_STATUS(hearth_load_base(NULL, "x", NULL), HEARTH_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(hearth_load_base((hearth_engine*)(uintptr_t)424242, "x", NULL), HEARTH_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(hearth_close(NULL), HEARTH_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(hearth_init(-3), HEARTH_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(hearth_init(1), HEARTH_OK);
  CHECK_STATUS(hearth_init(1), HEARTH_ERR_INVALID_ARGUMENT); /* once per process */
  CHECK(strlen(hearth_last_error()) > 0);
}

static void data_calls(hearth_engine* e, const char* text, size_t len) {
  int64_t added = 0;
  CHECK_STATUS(hearth_ingest_text(e, "ann", HEARTH_DATA_DOCUMENT, "emma", text, len, &added), HEARTH_OK);
  CHECK(added == 1);
  CHECK(strcmp(hearth_last_error(), "") == 0);
  const char* chat = "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"Hello.\"}]}\n";
  CHECK_STATUS(hearth_ingest_text(e, "ann", HEARTH_DATA_EXAMPLES, "chat.jsonl", chat, strlen(chat), &added), HEARTH_OK);
  CHECK(added == 1);
  CHECK_STATUS(hearth_ingest_text(e, "ann", HEARTH_DATA_EXAMPLES, "bad.jsonl", "{not json\n", 10, NULL), HEARTH_ERR_CORRUPT);
  CHECK(strstr(hearth_last_error(), "bad.jsonl:1") != NULL);
  CHECK_STATUS(hearth_ingest_text(e, "\xff\xfe", HEARTH_DATA_DOCUMENT, "x", "hi", 2, NULL), HEARTH_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(hearth_ingest_text(e, "ann", (hearth_data_kind)7, "x", "hi", 2, NULL), HEARTH_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(hearth_ingest_file(e, "ann", "/nonexistent/file.txt", NULL), HEARTH_ERR_NOT_FOUND);

  hearth_record* records = NULL;
  size_t count = 0;
  CHECK_STATUS(hearth_data_list(e, "ann", &records, &count), HEARTH_OK);
  CHECK(count == 2);
  int64_t example_id = 0;
  for (size_t i = 0; i < count; ++i)
    if (records[i].kind == HEARTH_DATA_EXAMPLES) example_id = records[i].id;
  hearth_free_records(records);
  CHECK_STATUS(hearth_data_list(e, "nobody", &records, &count), HEARTH_ERR_NOT_FOUND);
  CHECK_STATUS(hearth_data_delete(e, "ann", HEARTH_DATA_EXAMPLES, &example_id, 1), HEARTH_OK);
  CHECK_STATUS(hearth_data_delete(e, "ann", HEARTH_DATA_EXAMPLES, &example_id, 1), HEARTH_ERR_NOT_FOUND);
  CHECK_STATUS(hearth_data_delete(e, "ann", HEARTH_DATA_EXAMPLES, NULL, 0), HEARTH_ERR_INVALID_ARGUMENT);
}

static int64_t job_calls(hearth_engine* e) {
  int64_t job = 0;
  const char* spec =
      "{\"user\": \"ann\", \"training\": {\"rank\": 4, \"steps\": 6, \"seq_len\": 64, \"batch\": 2, \"lr\": 0.005, "
      "\"seed\": 3, \"eval_max_rows\": 4}}";
  CHECK_STATUS(hearth_job_submit(e, "{\"user\": \"ann\", \"training\": {\"rank\": 5.5}}", &job), HEARTH_ERR_INVALID_ARGUMENT);
  CHECK(strstr(hearth_last_error(), "rank") != NULL);
  CHECK_STATUS(hearth_job_submit(e, "{\"user\": \"ann\", \"trainig\": {}}", &job), HEARTH_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(hearth_job_submit(e, "{not json", &job), HEARTH_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(hearth_job_submit(e, "{\"user\": \"nobody\"}", &job), HEARTH_ERR_NOT_FOUND);
  CHECK_STATUS(hearth_job_submit(e, spec, &job), HEARTH_OK);
  CHECK(job > 0);

  hearth_slice_result r;
  hearth_slice_budget budget;
  memset(&budget, 0, sizeof budget);
  budget.device = low_battery;
  CHECK_STATUS(hearth_job_run_slice(e, job, &budget, &r), HEARTH_OK);
  CHECK(r.outcome == HEARTH_SLICE_WAITING && strstr(r.reason, "12%") != NULL);
  CHECK_STATUS(hearth_job_run_next(e, &budget, &r), HEARTH_OK);
  CHECK(r.outcome == HEARTH_SLICE_NONE);

  memset(&budget, 0, sizeof budget);
  budget.steps = 2;
  CHECK_STATUS(hearth_job_run_slice(e, job, &budget, &r), HEARTH_OK);
  CHECK(r.outcome == HEARTH_SLICE_PAUSED && r.steps_done == 2 && r.steps_this_slice == 2);

  int cancel = 1; /* already set: the slice stops before its first step */
  memset(&budget, 0, sizeof budget);
  budget.cancel = &cancel;
  CHECK_STATUS(hearth_job_run_slice(e, job, &budget, &r), HEARTH_OK);
  CHECK(r.outcome == HEARTH_SLICE_PAUSED && r.steps_done == 2 && r.steps_this_slice == 0);

  /* Status from another thread while this one runs the rest of the job. */
  struct shared_engine s = {e, job, HEARTH_OK};
  pthread_t reader;
  pthread_create(&reader, NULL, read_status, &s);
  CHECK_STATUS(hearth_job_run_next(e, NULL, &r), HEARTH_OK);
  pthread_join(reader, NULL);
  CHECK(s.status == HEARTH_OK);
  CHECK(r.outcome == HEARTH_SLICE_FINISHED && r.steps_done == 6 && r.adapter_version == 1);

  char* json = NULL;
  CHECK_STATUS(hearth_job_status(e, job, &json), HEARTH_OK);
  CHECK(json != NULL && strstr(json, "\"status\":\"done\"") != NULL && strstr(json, "eval_curve") != NULL);
  hearth_free_string(json);
  CHECK_STATUS(hearth_job_status(e, 9999, &json), HEARTH_ERR_NOT_FOUND);
  CHECK_STATUS(hearth_job_cancel(e, job), HEARTH_ERR_INVALID_ARGUMENT); /* done: nothing to cancel */
  CHECK_STATUS(hearth_request_stop(e), HEARTH_OK);
  return job;
}

static void test_time_training_calls(hearth_engine* e, const hearth_generate_options* o) {
  const char* context = "Emma Woodhouse, handsome, clever, and rich, with a comfortable home and happy disposition, "
                        "seemed to unite some of the best blessings of existence.";
  char* text = NULL;
  char* report = NULL;
  CHECK_STATUS(hearth_generate_with_context(e, "ann", "default", "Emma", context, "{\"steps\": 3, \"rank\": 4}", o, NULL,
                                            NULL, NULL, &text, &report),
               HEARTH_OK);
  CHECK(text != NULL && report != NULL && strstr(report, "\"steps\":3") != NULL);
  hearth_free_string(text);
  hearth_free_string(report);
  CHECK_STATUS(hearth_generate_with_context(e, NULL, NULL, "Emma", context, "{\"steps\": 0}", o, NULL, NULL, NULL, NULL, NULL),
               HEARTH_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(hearth_generate_with_context(e, NULL, NULL, "Emma", context, "{\"stpes\": 2}", o, NULL, NULL, NULL, NULL, NULL),
               HEARTH_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(hearth_generate_with_context(e, NULL, NULL, "Emma", NULL, "{\"steps\": 2}", o, NULL, NULL, NULL, NULL, NULL),
               HEARTH_ERR_INVALID_ARGUMENT);
}

static void generation_calls(hearth_engine* e) {
  CHECK_STATUS(hearth_adapter_load(e, "ann", "default", 0), HEARTH_OK);
  CHECK_STATUS(hearth_adapter_load(e, "ann", "default", 7), HEARTH_ERR_NOT_FOUND);
  CHECK_STATUS(hearth_adapter_load(e, "ann", NULL, 0), HEARTH_ERR_INVALID_ARGUMENT);
  hearth_generate_options o = hearth_generate_defaults();
  o.temperature = 0;
  o.max_tokens = 16;
  size_t streamed = 0;
  char* text = NULL;
  CHECK_STATUS(hearth_generate(e, "ann", "default", "Emma was", &o, count_pieces, &streamed, NULL, &text), HEARTH_OK);
  CHECK(text != NULL && strlen(text) > 0 && streamed == strlen(text));
  char* bare = NULL;
  CHECK_STATUS(hearth_generate(e, NULL, NULL, "Emma was", &o, NULL, NULL, NULL, &bare), HEARTH_OK);
  CHECK(bare != NULL && strcmp(bare, text) != 0); /* the adapter changes what the model says */
  hearth_free_string(text);
  hearth_free_string(bare);
  text = NULL;
  CHECK_STATUS(hearth_generate(e, "ann", "default", "Emma", &o, stop_at_once, NULL, NULL, &text), HEARTH_OK);
  CHECK(text != NULL && strlen(text) < 8); /* one piece, then stopped */
  hearth_free_string(text);
  int cancel = 1;
  CHECK_STATUS(hearth_generate(e, NULL, NULL, "Emma", &o, NULL, NULL, &cancel, &text), HEARTH_OK);
  CHECK(text != NULL && strlen(text) == 0);
  hearth_free_string(text);
  CHECK_STATUS(hearth_generate(e, "ann", NULL, "Emma", &o, NULL, NULL, NULL, NULL), HEARTH_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(hearth_generate(e, NULL, NULL, "\xc3\x28", &o, NULL, NULL, NULL, NULL), HEARTH_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(hearth_generate(e, "nobody", "default", "Emma", &o, NULL, NULL, NULL, NULL), HEARTH_ERR_NOT_FOUND);
  test_time_training_calls(e, &o);
  o.top_p = 7;
  CHECK_STATUS(hearth_generate(e, NULL, NULL, "Emma", &o, NULL, NULL, NULL, NULL), HEARTH_ERR_INVALID_ARGUMENT);
}

int main(int argc, char** argv) {
  const char* env = getenv("HEARTH_ASSETS");
  snprintf(assets, sizeof assets, "%s", env != NULL && *env ? env : (argc > 1 ? argv[1] : "../shared"));
  char model[4096], emma[4096], home[] = "/tmp/hearth-capi-XXXXXX";
  asset(model, sizeof model, "models/stories260K");
  asset(emma, sizeof emma, "data/jane_austen/emma.txt");
  size_t len = 0;
  char* text = read_prefix(emma, 20000, &len);
  if (text == NULL || mkdtemp(home) == NULL) {
    fprintf(stderr, "FAILED: cannot read %s or make a temporary home (set HEARTH_ASSETS)\n", emma);
    return 1;
  }

  bad_calls_without_an_engine();
  hearth_engine* e = NULL;
  const char key[32] = "0123456789abcdef0123456789abcde";
  CHECK_STATUS(hearth_open(home, HEARTH_KEY_RAW, key, 32, &e), HEARTH_OK);
  CHECK_STATUS(hearth_load_base(e, "/nonexistent/model", NULL), HEARTH_ERR_NOT_FOUND);
  CHECK_STATUS(hearth_load_base(e, model, "nf5"), HEARTH_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(hearth_load_base(e, model, "nf4"), HEARTH_OK);
  data_calls(e, text, len);
  job_calls(e);
  generation_calls(e);

  /* A second engine on the same home without the key: lists, cannot decrypt; wrong key refused. */
  hearth_engine* locked = NULL;
  CHECK_STATUS(hearth_open(home, HEARTH_KEY_NONE, NULL, 0, &locked), HEARTH_OK);
  hearth_record* records = NULL;
  size_t count = 0;
  CHECK_STATUS(hearth_data_list(locked, "ann", &records, &count), HEARTH_OK);
  CHECK(count == 1);
  hearth_free_records(records);
  CHECK_STATUS(hearth_ingest_text(locked, "ann", HEARTH_DATA_DOCUMENT, "x", "hello", 5, NULL), HEARTH_ERR_AUTHENTICATION);
  hearth_engine* wrong = NULL;
  CHECK_STATUS(hearth_open(home, HEARTH_KEY_RAW, "wrong key wrong key wrong key 32", 32, &wrong), HEARTH_ERR_AUTHENTICATION);
  CHECK_STATUS(hearth_close(locked), HEARTH_OK);

  CHECK_STATUS(hearth_forget(e, "ann"), HEARTH_OK);
  CHECK_STATUS(hearth_forget(e, "ann"), HEARTH_ERR_NOT_FOUND);
  CHECK_STATUS(hearth_close(e), HEARTH_OK);
  CHECK_STATUS(hearth_close(e), HEARTH_ERR_INVALID_ARGUMENT); /* closed */
  CHECK_STATUS(hearth_generate(e, NULL, NULL, "Emma", NULL, NULL, NULL, NULL, NULL), HEARTH_ERR_INVALID_ARGUMENT);
  free(text);
  char cleanup[4200];
  snprintf(cleanup, sizeof cleanup, "rm -rf '%s'", home);
  if (system(cleanup) != 0) fprintf(stderr, "could not remove %s\n", home);
  if (failures > 0) {
    fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  printf("C API: every check passed\n");
  return 0;
}
