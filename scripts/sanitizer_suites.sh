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
# beside it, so a parser that refuses everything fails too). The sanitizer build compiles only
# the files that hold them (tests/CMakeLists.txt names them: a new file goes there too). The longest (the CLI's, in two halves
# of about a minute each) go first.
suites=(
  "test_cli HomeRecovery.*:IngestBadInput.*:CliParseErrors.*:CliOptionRanges.*"
  "test_cli CliBadInput.*:*CliBadModel*:CliGguf.BadGgufInputIsOneErrorLine:ServeCliTest.BadRequestsGetOneErrorEachAndServingGoesOn"
  "test_core *"
  "test_quant QuantIo.*"
  "test_tokenizer *BadFiles*:Utf8.*:ChatTemplate.RejectsUnknownTemplatesAndRoles:BpeTokenizer.InvalidUtf8IsRejectedNamingTheByte:Llama2cTokenizer.RejectsInvalidUtf8NamingTheByte:SyntheticTokenizer.TooSmallVocabularyIsRefused"
  "test_inference *BadModelFiles*:BrokenQuantizedFolder.*:GgufFile.*:FusedDecodeAttention.RefusesABatchOrAMisfitCache:FusedSiluMul.*"
  "test_adapters PeftFiles.Refuses*:PeftFiles.MissingFilesAreNotFound:PeftFiles.PeftFolderWithoutHearthMetadataLoads:AdapterBundle.*"
  "test_privacy Aead.*:DataKey.*:SealedFile.*:MasterKey.KeyFileMustBeOwnerOnly:Redactor.*"
  "test_storage Database.*:Ingest.*:Erasure.UnknownUserIsNotFound:AdapterRegistry.*:Corruption.*:Backup.*:Doctor.*:ReadOnly.*"
  "test_trainer TrainingData.*:ChatTokenize.*:TrainConfigRanges.*:TrainRunFolder.*"
)

logs="$build/sanitizer-logs"
mkdir -p "$logs"
source scripts/suite_jobs.sh
part=0
for entry in "${suites[@]}"; do
  suite="${entry%% *}"
  part=$((part + 1))
  suite_job "sanitizer $part-$suite" "$logs/$part-$suite.log" "$build/tests/$suite" --gtest_filter="${entry#* }"
done
wait_suite_jobs
