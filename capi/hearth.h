/* Hearth's C API: what a phone or desktop app links (Android through JNI, iOS through Swift, or
 * plain C). A thin layer over the C++ engine (engine/engine.h): one engine per Hearth home holds
 * the encrypted store, the 4-bit base model, the personalization jobs and the loaded adapters.
 *
 * Conventions
 * - Every call returns a hearth_status; HEARTH_OK is 0. On failure, hearth_last_error() returns
 *   a one-line message saying what went wrong and what to do (per thread; valid until the next
 *   call on the same thread).
 * - Handles are opaque. A closed or never-opened handle, NULL pointers, unknown users, invalid
 *   UTF-8 and calls from several threads return error codes; they never crash. One engine may be
 *   used from several threads: calls are serialized, except hearth_request_stop and job status,
 *   which work while a slice runs on another thread.
 * - Strings are NUL-terminated UTF-8. Strings and arrays the library returns are freed with
 *   hearth_free_string / hearth_free_records.
 * - No C++ exception crosses this boundary. */
#ifndef HEARTH_H
#define HEARTH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum hearth_status {
  HEARTH_OK = 0,
  HEARTH_ERR_INVALID_ARGUMENT = 1, /* malformed or out-of-range input, NULL pointer, closed handle */
  HEARTH_ERR_NOT_FOUND = 2,        /* no such user, record, job, adapter or file */
  HEARTH_ERR_CORRUPT = 3,          /* a file or record is damaged */
  HEARTH_ERR_UNSUPPORTED = 4,      /* valid, but not something Hearth does */
  HEARTH_ERR_IO = 5,               /* the system refused a read or write */
  HEARTH_ERR_AUTHENTICATION = 6,   /* wrong key, or a ciphertext that does not open */
  HEARTH_ERR_CANCELLED = 7,        /* stopped on request */
  HEARTH_ERR_INTERNAL = 8          /* a bug in Hearth; the message says where */
} hearth_status;

typedef struct hearth_engine hearth_engine;

/* "0.5.0" */
const char* hearth_version(void);
/* The last error of this thread ("" after a successful call). */
const char* hearth_last_error(void);
/* Sets the worker threads for the whole process (LibTorch, OpenMP and BLAS together; 0 = all
 * cores). Call once, before opening an engine; later calls return HEARTH_ERR_INVALID_ARGUMENT. */
hearth_status hearth_init(int threads);

/* ---- Engines ---------------------------------------------------------------------------- */

typedef enum hearth_key_kind {
  HEARTH_KEY_NONE = 0,       /* open an existing home without its key: list, delete, forget, status */
  HEARTH_KEY_PASSPHRASE = 1, /* key = the passphrase bytes (stretched with Argon2id) */
  HEARTH_KEY_FILE = 2,       /* key = path of a key file readable by its owner only */
  HEARTH_KEY_RAW = 3         /* key = 32 bytes from the platform keystore */
} hearth_key_kind;

/* Opens (creating if needed) the home folder `home`. `key` and `key_len` as `kind` says. */
hearth_status hearth_open(const char* home, hearth_key_kind kind, const void* key, size_t key_len, hearth_engine** out);
/* Closes the engine; the handle becomes invalid (later calls return HEARTH_ERR_INVALID_ARGUMENT). */
hearth_status hearth_close(hearth_engine* engine);

/* Loads the base model once: a Hugging Face folder, a Hearth quantized folder or a llama2.c
 * model. `quant` quantizes at load time ("nf4", "nf4-32", "int4", "int8") or is NULL. */
hearth_status hearth_load_base(hearth_engine* engine, const char* model_path, const char* quant);

/* ---- A user's data (redacted and encrypted on the way in; one transaction per call) ------ */

typedef enum hearth_data_kind {
  HEARTH_DATA_DOCUMENT = 0, /* plain text or Markdown */
  HEARTH_DATA_EXAMPLES = 1  /* JSONL lines: {"messages": [...]} or {"prompt": ..., "completion": ...} */
} hearth_data_kind;

/* Stores `len` bytes of `content` for `user` (created on first use). `name` names the item in
 * error messages only. *added (may be NULL) receives the number of records added. */
hearth_status hearth_ingest_text(hearth_engine* engine, const char* user, hearth_data_kind kind, const char* name,
                                 const char* content, size_t len, int64_t* added);
/* The same for a file (.txt, .md or .jsonl). */
hearth_status hearth_ingest_file(hearth_engine* engine, const char* user, const char* path, int64_t* added);

typedef struct hearth_record {
  int64_t id;
  hearth_data_kind kind;
  int64_t bytes;   /* plaintext size */
  int64_t created; /* seconds since the epoch */
} hearth_record;

/* The user's records (metadata only; no key needed). Free *records with hearth_free_records. */
hearth_status hearth_data_list(hearth_engine* engine, const char* user, hearth_record** records, size_t* count);
void hearth_free_records(hearth_record* records);
/* Deletes the records (all or none). */
hearth_status hearth_data_delete(hearth_engine* engine, const char* user, hearth_data_kind kind, const int64_t* ids,
                                 size_t count);
/* Erases the user: data, adapters, jobs, checkpoints and their key. */
hearth_status hearth_forget(hearth_engine* engine, const char* user);

/* ---- Personalization jobs ------------------------------------------------------------------ */

/* Queues a job described by JSON: {"user": "...", "training": {...}, "policy": {...}} (see
 * docs/engine.md; unknown fields and out-of-range values are refused). The engine's loaded base
 * is used unless "base" is given. */
hearth_status hearth_job_submit(hearth_engine* engine, const char* spec_json, int64_t* job_id);

typedef struct hearth_device_state {
  int charging;        /* 0 / 1 */
  int battery_percent; /* 0..100 */
  double temperature_c;
  int screen_on; /* 0 / 1 */
  int idle;      /* 0 / 1 */
} hearth_device_state;

/* Fills *state with the device's state now; return 0 (nonzero: treated as "do not run"). */
typedef int (*hearth_device_fn)(void* user_data, hearth_device_state* state);

typedef struct hearth_slice_budget {
  double seconds;            /* wall-time budget (0: none) */
  int64_t steps;             /* step budget (0: none) */
  const int* cancel;         /* may be NULL; set *cancel nonzero from any thread to preempt now */
  hearth_device_fn device;   /* may be NULL; asked before the slice and after every step */
  void* device_user_data;
} hearth_slice_budget;

typedef enum hearth_slice_outcome {
  HEARTH_SLICE_NONE = 0,     /* run_next: no job could run */
  HEARTH_SLICE_FINISHED = 1, /* the job is done; a new adapter version is registered */
  HEARTH_SLICE_PAUSED = 2,   /* budget, cancel or policy: checkpointed durably, resumable */
  HEARTH_SLICE_WAITING = 3   /* the job's policy does not allow running now; nothing ran */
} hearth_slice_outcome;

typedef struct hearth_slice_result {
  int64_t job_id;
  hearth_slice_outcome outcome;
  int64_t steps_done;       /* of the job, after the slice */
  int64_t steps_this_slice;
  double seconds;
  int64_t adapter_version;  /* when finished */
  char reason[256];         /* why it paused or waited */
} hearth_slice_result;

/* Runs one slice of a job: resumes it, trains until it ends or the budget, the cancel flag, the
 * policy or hearth_request_stop stops it, checkpoints, returns. */
hearth_status hearth_job_run_slice(hearth_engine* engine, int64_t job_id, const hearth_slice_budget* budget,
                                   hearth_slice_result* result);
/* The same for the oldest job that can run now (outcome HEARTH_SLICE_NONE when there is none). */
hearth_status hearth_job_run_next(hearth_engine* engine, const hearth_slice_budget* budget, hearth_slice_result* result);
/* Stops the running slice at its next interruption point; callable from any thread. */
hearth_status hearth_request_stop(hearth_engine* engine);
/* The job's state, progress and held-out loss curve as JSON. Free with hearth_free_string. */
hearth_status hearth_job_status(hearth_engine* engine, int64_t job_id, char** json);
hearth_status hearth_job_cancel(hearth_engine* engine, int64_t job_id);

/* ---- Federated personalization ------------------------------------------------------------- */

/* Takes part in a federation as one device until the coordinator ends it (hearth federate serve
 * on coordinator, "ADDR:PORT"): in each round this device is sampled for, the population adapter
 * is trained locally on `user`'s data (decrypted in memory, never sent) and only a masked update
 * is sent back. Blocks; run it from a background worker. timeout_seconds bounds every wait for
 * the coordinator (0: 300). *report_json (may be NULL) receives {"client_id", "rounds_sampled",
 * "rounds_uploaded", "rounds": [...]}; free it with hearth_free_string. The engine must have its
 * base model loaded, the same one the coordinator runs. */
hearth_status hearth_federate_join(hearth_engine* engine, const char* coordinator, const char* user,
                                   double timeout_seconds, char** report_json);

/* ---- Adapters and generation --------------------------------------------------------------- */

/* Loads the user's adapter `name` (version 0: the newest, or the pinned one) for generation. */
hearth_status hearth_adapter_load(hearth_engine* engine, const char* user, const char* name, int64_t version);

typedef struct hearth_generate_options {
  int max_tokens;       /* default 128 */
  float temperature;    /* 0: greedy */
  int top_k;            /* 0: all */
  float top_p;          /* 1: off */
  float repeat_penalty; /* 1: off */
  uint64_t seed;
  int chat;             /* 1: wrap the prompt with the model's chat template */
} hearth_generate_options;

/* Defaults: 128 tokens, temperature 0.8, top_k 40, top_p 0.95, repeat_penalty 1.1, seed 0, chat 0. */
hearth_generate_options hearth_generate_defaults(void);

/* Receives each piece of text as it is produced (whole UTF-8 characters); return nonzero to stop. */
typedef int (*hearth_token_fn)(void* user_data, const char* text, size_t len);

/* Generates a continuation of `prompt`, through `user`'s adapter `adapter` when both are given
 * (NULL for the bare base). `on_token` and `cancel` may be NULL. *text (may be NULL) receives the
 * whole text; free it with hearth_free_string. */
hearth_status hearth_generate(hearth_engine* engine, const char* user, const char* adapter, const char* prompt,
                              const hearth_generate_options* options, hearth_token_fn on_token, void* user_data,
                              const int* cancel, char** text);

/* Test-time training, then generation: a short-lived adapter (initialized from the user's adapter
 * when user and adapter are given, else fresh) first learns `context`, answers `prompt`, and is
 * dropped. `ttt_json` sets it as an object {"steps", "lr", "rank", "alpha", "chunk", "targets",
 * "max_seconds", "max_memory_mb", "seed"} over the defaults of docs/serving.md; "steps" > 0 is
 * required and unknown fields are errors. *report (may be NULL) receives what the training did as
 * JSON (steps, context tokens, seconds, first and last loss); free it with hearth_free_string. */
hearth_status hearth_generate_with_context(hearth_engine* engine, const char* user, const char* adapter,
                                           const char* prompt, const char* context, const char* ttt_json,
                                           const hearth_generate_options* options, hearth_token_fn on_token,
                                           void* user_data, const int* cancel, char** text, char** report);

void hearth_free_string(char* s);

#ifdef __cplusplus
}
#endif

#endif /* HEARTH_H */
