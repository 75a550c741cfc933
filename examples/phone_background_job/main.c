/* A phone app's background personalization worker, in C over Hearth's C API.
 *
 * The OS wakes the worker now and then; each time it runs one short slice of the user's training
 * job while the device allows it (charging or battery >= 50%, cool, screen off), stops within a
 * second when the OS asks, and may be killed outright at any moment. Run it again after a kill and
 * it carries on from the last checkpoint. When the job is done it loads the new adapter and
 * answers with it.
 *
 *   phone_background_job HOME MODEL_DIR TEXT_FILE [SLICES]
 *
 * The device's state is simulated: it changes from slice to slice (on battery at 35%, the screen
 * on, charging again, ...), and one slice in three is preempted by the "OS" from another thread.
 * A real app reads the key from the platform keystore; this example uses a fixed demo key. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hearth.h"

static const char kUser[] = "reader";

static int fail(const char* what) {
  fprintf(stderr, "error: %s: %s\n", what, hearth_last_error());
  return 1;
}

/* The simulated device: slice n sees state n % 5. */
static int device_now(void* user_data, hearth_device_state* s) {
  const int phase = *(const int*)user_data % 5;
  s->charging = phase != 1;
  s->battery_percent = phase == 1 ? 35 : 80;
  s->temperature_c = 31;
  s->screen_on = phase == 3;
  s->idle = 1;
  return 0;
}

struct preemption {
  int* cancel;
  unsigned delay_ms;
};

/* The OS asking the worker to stop, after a while. */
static void* preempt_later(void* arg) {
  struct preemption* p = arg;
  usleep(p->delay_ms * 1000u);
  __atomic_store_n(p->cancel, 1, __ATOMIC_RELAXED);
  return NULL;
}

static int print_piece(void* user_data, const char* text, size_t len) {
  (void)user_data;
  fwrite(text, 1, len, stdout);
  fflush(stdout);
  return 0;
}

/* First run: store the user's text and queue their job. Later runs find both. */
static int ensure_job(hearth_engine* e, const char* text_file) {
  hearth_record* records = NULL;
  size_t count = 0;
  if (hearth_data_list(e, kUser, &records, &count) == HEARTH_OK && count > 0) {
    hearth_free_records(records);
    return 0;
  }
  int64_t added = 0, job = 0;
  if (hearth_ingest_file(e, kUser, text_file, &added) != HEARTH_OK) return fail("ingest");
  const char* spec =
      "{\"user\": \"reader\", \"training\": {\"rank\": 8, \"steps\": 24, \"seq_len\": 128, \"batch\": 4, "
      "\"lr\": 0.004, \"optimizer\": \"apollo-mini\", \"seed\": 1, \"max_memory_mb\": 1024, \"eval_max_rows\": 16}}";
  if (hearth_job_submit(e, spec, &job) != HEARTH_OK) return fail("submit");
  printf("worker: stored %lld record(s), queued job %lld\n", (long long)added, (long long)job);
  return 0;
}

static void answer(hearth_engine* e) {
  hearth_generate_options o = hearth_generate_defaults();
  o.temperature = 0;
  o.max_tokens = 48;
  printf("worker: the personalized model says: ");
  if (hearth_generate(e, kUser, "default", "It was a fine morning, and", &o, print_piece, NULL, NULL, NULL) != HEARTH_OK)
    fail("generate");
  printf("\n");
}

int main(int argc, char** argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s HOME MODEL_DIR TEXT_FILE [SLICES]\n", argv[0]);
    return 2;
  }
  const int max_slices = argc > 4 ? atoi(argv[4]) : 200;
  const char key[32] = "demo key: use the OS keystore!!";
  hearth_engine* e = NULL;
  if (hearth_init(1) != HEARTH_OK) return fail("init");
  if (hearth_open(argv[1], HEARTH_KEY_RAW, key, sizeof key, &e) != HEARTH_OK) return fail("open");
  if (hearth_load_base(e, argv[2], "nf4") != HEARTH_OK) return fail("load base");
  if (hearth_adapter_load(e, kUser, "default", 0) == HEARTH_OK) {
    printf("worker: the adapter is ready\n");
    answer(e);
    return hearth_close(e) == HEARTH_OK ? 0 : fail("close");
  }
  if (ensure_job(e, argv[3]) != 0) return 1;

  for (int slice = 0; slice < max_slices; ++slice) {
    int cancel = 0;
    hearth_slice_budget budget;
    memset(&budget, 0, sizeof budget);
    budget.seconds = 1.5;
    budget.cancel = &cancel;
    budget.device = device_now;
    budget.device_user_data = &slice;
    pthread_t os;
    struct preemption p = {&cancel, 300u + 97u * (unsigned)slice % 700u};
    const int preempted = slice % 3 == 2;
    if (preempted) pthread_create(&os, NULL, preempt_later, &p);
    hearth_slice_result r;
    const hearth_status status = hearth_job_run_next(e, &budget, &r);
    if (preempted) pthread_join(os, NULL);
    if (status != HEARTH_OK) return fail("run slice");
    if (r.outcome == HEARTH_SLICE_NONE) {
      printf("worker: slice %d: the device does not allow training now; sleeping\n", slice);
    } else {
      printf("worker: slice %d: job %lld %s at step %lld (%lld this slice, %.2f s)%s%s\n", slice, (long long)r.job_id,
             r.outcome == HEARTH_SLICE_FINISHED ? "finished" : r.outcome == HEARTH_SLICE_PAUSED ? "paused" : "waiting",
             (long long)r.steps_done, (long long)r.steps_this_slice, r.seconds, r.reason[0] ? ": " : "", r.reason);
    }
    fflush(stdout);
    if (r.outcome == HEARTH_SLICE_FINISHED) {
      if (hearth_adapter_load(e, kUser, "default", 0) != HEARTH_OK) return fail("load adapter");
      answer(e);
      return hearth_close(e) == HEARTH_OK ? 0 : fail("close");
    }
  }
  printf("worker: out of slices for now; run again to continue\n");
  return hearth_close(e) == HEARTH_OK ? 0 : fail("close");
}
