#!/usr/bin/env bash
# Runs every bad-input suite of the sanitizer build (ASan + UBSan; scripts/test.sh configures it)
# one suite per core at a time: `scripts/sanitizer_suites.sh BUILD_DIR`. A suite's output is
# shown only when it fails.
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:?usage: scripts/sanitizer_suites.sh BUILD_DIR}"
export HEARTH_ASSETS="${HEARTH_ASSETS:-$(cd .. && pwd)/shared}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

# suite  gtest filter: the tests that feed each parser bad or hostile input (and the good case
# beside it, so a parser that refuses everything fails too). The longest (the CLI's) goes first.
suites=(
  "test_cli CliBadInput.*:*CliBadModel*:IngestBadInput.*:CliParseErrors.*:CliOptionRanges.*:HomeRecovery.*:CliGguf.BadGgufInputIsOneErrorLine:ServeCliTest.BadRequestsGetOneErrorEachAndServingGoesOn"
  "test_core *"
  "test_quant QuantIo.*"
  "test_tokenizer *BadFiles*:Utf8.*:ChatTemplate.RejectsUnknownTemplatesAndRoles:BpeTokenizer.InvalidUtf8IsRejectedNamingTheByte:Llama2cTokenizer.RejectsInvalidUtf8NamingTheByte:SyntheticTokenizer.TooSmallVocabularyIsRefused"
  "test_inference *BadModelFiles*:BrokenQuantizedFolder.*:GgufFile.*:FusedDecodeAttention.RefusesABatchOrAMisfitCache"
  "test_adapters PeftFiles.Refuses*:PeftFiles.MissingFilesAreNotFound:PeftFiles.PeftFolderWithoutHearthMetadataLoads:AdapterBundle.*"
  "test_privacy Aead.*:DataKey.*:SealedFile.*:MasterKey.KeyFileMustBeOwnerOnly:Redactor.*"
  "test_storage Database.*:Ingest.*:Erasure.UnknownUserIsNotFound:AdapterRegistry.*:Corruption.*:Backup.*:Doctor.*:ReadOnly.*"
  "test_trainer TrainingData.*:ChatTokenize.*:TrainConfigRanges.*:TrainRunFolder.*:StateFile.*"
)

logs="$build/sanitizer-logs"
mkdir -p "$logs"
declare -A pid_suite
for entry in "${suites[@]}"; do
  suite="${entry%% *}"
  filter="${entry#* }"
  while [ "$(jobs -rp | wc -l)" -ge "$(nproc)" ]; do sleep 0.2; done
  "$build/tests/$suite" --gtest_filter="$filter" >"$logs/$suite.log" 2>&1 &
  pid_suite[$!]="$suite"
done
failed=0
for pid in "${!pid_suite[@]}"; do
  suite="${pid_suite[$pid]}"
  if wait "$pid"; then
    echo "  $suite: $(grep -o '[0-9]* tests\? from [0-9]* test suites\? ran. ([0-9]* ms total)' "$logs/$suite.log" | head -1)"
  else
    failed=1
    echo "sanitizer suite $suite failed; its output:" >&2
    tail -n 60 "$logs/$suite.log" >&2
  fi
done
exit "$failed"
