// Interoperability with the real thing (scripts/peer/llama_cpp.sh installs it): GGUF files the
// `hearth` binary writes parse with @huggingface/gguf, and llama.cpp (node-llama-cpp's prebuilt
// CPU build) loads Hearth's GGUF model and GGUF LoRA and computes the same greedy tokens and
// logits as Hearth; GGUF files made by llama.cpp's own tools load in Hearth with the same logits.
#include <gtest/gtest.h>

#include <fstream>

#include "adapters/adapter_set.h"
#include "adapters/peft_files.h"
#include "cli_runner.h"
#include "core/json.h"
#include "inference/generator.h"
#include "inference/gguf_file.h"
#include "inference/model_loader.h"
#include "llama_cpp_peer.h"

namespace hearth {
namespace {

namespace fs = std::filesystem;
using testing::last_peer_json;
using testing::llama_cpp;
using testing::relative_logit_gap;
using testing::run_hearth;
using testing::shell_quote;
const fs::path kPeer = testing::peer_dir();

std::string run(const std::string& cmd) { return testing::run_command(cmd); }

void require_peer() {
  ASSERT_TRUE(testing::peer_installed()) << "the llama.cpp peer is not installed: run bash scripts/peer/llama_cpp.sh npm";
}

// Hearth's logits [T, vocab] for `tokens` and its greedy continuation.
struct HearthRun {
  at::Tensor logits;
  std::vector<int32_t> greedy;
};
HearthRun hearth_run(const LoadedModel& m, const std::vector<int32_t>& tokens, int steps) {
  at::NoGradGuard no_grad;
  ForwardInput in;
  in.tokens = at::tensor(std::vector<int64_t>(tokens.begin(), tokens.end()), at::kLong).view({1, -1});
  HearthRun r;
  r.logits = m.decoder->forward(in)[0];
  GenerationOptions g;
  g.max_tokens = steps;
  g.sampling.temperature = 0;
  g.stop_at_stop_tokens = false;
  r.greedy = generate(*m.decoder, *m.tokenizer, tokens, g).tokens;
  return r;
}

class GgufInterop : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(testing::fresh_temp_dir("gguf_interop"));
    const std::string model = testing::stories260k_dir().string();
    for (const char* type : {"f32", "q8_0"}) {
      auto r = run_hearth({"quantize", "--model", model, "--to", "gguf", "--format", type, "--out", (*dir_ / (std::string(type) + ".gguf")).string()});
      ASSERT_EQ(r.exit_code, 0) << r.err;
    }
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }
  // BOS + "Once upon a time, there was" in the model's own tokenizer.
  static std::vector<int32_t> prompt(const LoadedModel& m) { return m.tokenizer->encode("Once upon a time, there was", true); }
  static fs::path* dir_;
};
fs::path* GgufInterop::dir_ = nullptr;

TEST_F(GgufInterop, HuggingfaceGgufParsesHearthsModel) {
  require_peer();
  const fs::path file = *dir_ / "q8_0.gguf";
  const Json theirs = last_peer_json(run("node " + shell_quote((kPeer / "gguf_inspect.mjs").string()) + " " + shell_quote(file.string())));
  auto ours = GgufFile::open(file);
  EXPECT_EQ(theirs.at("metadata").at("general.architecture"), "llama");
  EXPECT_EQ(theirs.at("metadata").at("tokenizer.ggml.tokens").at("array_length"), 512);
  EXPECT_EQ(theirs.at("metadata").at("kv_count").get<size_t>(), ours->metadata().size());
  const Json& tensors = theirs.at("tensors");
  ASSERT_EQ(tensors.size(), ours->tensors().size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const GgufTensorInfo& t = ours->tensors()[i];
    EXPECT_EQ(tensors[i].at("name"), t.name);
    EXPECT_EQ(tensors[i].at("shape").get<std::vector<int64_t>>(), t.dims) << t.name;
    EXPECT_EQ(tensors[i].at("dtype").get<uint32_t>(), t.type) << t.name;
    EXPECT_EQ(tensors[i].at("offset").get<uint64_t>(), t.offset) << t.name;
  }
}

// F32: Hearth computes in float; llama.cpp too, but keeps its KV cache in half precision (its
// default), so keys and values are rounded by up to 2^-11 (4.9e-4) relative: measured gap 4.9e-4
// of the largest logit, bound 2e-3. Q8_0: llama.cpp also rounds the activations to 8 bits per 32
// (Q8_0 x Q8_0 dot products), about 1% of a logit's terms: measured 8.9e-3, bound 3e-2. A wrong
// layout, rotary pairing or scale moves logits by tens of percent and changes the greedy tokens.
TEST_F(GgufInterop, LlamaCppComputesHearthsLogitsAndGreedyTokens) {
  require_peer();
  for (const auto& [type, tol] : {std::pair<std::string, double>{"f32", 2e-3}, {"q8_0", 3e-2}}) {
    const fs::path file = *dir_ / (type + ".gguf");
    LoadedModel m = load_model(file, LoadOptions{});
    const std::vector<int32_t> tokens = prompt(m);
    const Json peer = llama_cpp(file, tokens, 24);
    const HearthRun ours = hearth_run(m, tokens, 24);
    EXPECT_EQ(peer.at("greedy").get<std::vector<int32_t>>(), ours.greedy) << type;
    const double gap = relative_logit_gap(ours.logits, peer);
    EXPECT_LT(gap, tol) << type;
    std::printf("[ figures  ] %s: greedy tokens equal over 24 steps, max logit gap %.2e of the largest logit\n", type.c_str(), gap);
  }
}

// A LoRA trained by Hearth over the GGUF base, exported for llama.cpp, applied by llama.cpp with
// --lora over the same file: the same greedy tokens and logits as Hearth with the adapter.
TEST_F(GgufInterop, LlamaCppAppliesHearthsLora) {
  require_peer();
  const fs::path base = *dir_ / "f32.gguf", text = *dir_ / "austen.txt", adapter = *dir_ / "lora", exported = *dir_ / "lora.gguf";
  {
    std::ifstream in(asset_path("data/jane_austen/emma.txt"));
    std::ofstream out(text);
    std::string line;
    for (int n = 0; n < 400 && std::getline(in, line);) if (!line.empty()) out << line << "\n", ++n;
  }
  auto train = run_hearth({"train", "--model", base.string(), "--data", text.string(), "--method", "lora", "--rank", "4",
                           "--alpha", "8", "--steps", "15", "--warmup", "0", "--lr", "1e-2", "--seq-len", "64", "--batch", "4",
                           "--eval-every", "0", "--threads", "1", "--out", adapter.string()});
  ASSERT_EQ(train.exit_code, 0) << train.err;
  auto exp = run_hearth({"adapters", "export", "--model", base.string(), "--adapter", adapter.string(), "--format", "gguf", "--out", exported.string()});
  ASSERT_EQ(exp.exit_code, 0) << exp.err;
  auto lora_file = GgufFile::open(exported);
  EXPECT_EQ(lora_file->get_string("general.type"), "adapter");
  EXPECT_EQ(lora_file->get_string("adapter.type"), "lora");
  EXPECT_NE(lora_file->find_tensor("blk.0.attn_q.weight.lora_a"), nullptr);

  LoadedModel m = load_model(base, LoadOptions{});
  const std::vector<int32_t> tokens = prompt(m);
  const HearthRun plain = hearth_run(m, tokens, 24);
  attach_adapter(*m.decoder, load_peft_adapter(adapter, *m.decoder, m.fingerprint));
  const HearthRun adapted = hearth_run(m, tokens, 24);
  ASSERT_GT((adapted.logits - plain.logits).abs().max().item<double>(), 0.1) << "the adapter should change the model";
  const Json peer = llama_cpp(base, tokens, 24, exported);
  EXPECT_EQ(peer.at("greedy").get<std::vector<int32_t>>(), adapted.greedy);
  const double gap = relative_logit_gap(adapted.logits, peer);
  EXPECT_LT(gap, 2e-3);  // llama.cpp's half-precision KV cache; see the F32 case above
  std::printf("[ figures  ] lora: greedy tokens equal over 24 steps, max logit gap %.2e\n", gap);
}

// The peer's paths (scripts/peer/llama_cpp.sh env): LLAMA_CPP_SRC, and LLAMA_CPP_BIN once built.
std::string peer_path(const std::string& key) {
  const std::string env = run("bash " + shell_quote((kPeer / "llama_cpp.sh").string()) + " env");
  const size_t at = env.find(key + "=");
  if (at == std::string::npos) return "";
  const size_t begin = at + key.size() + 1;
  return env.substr(begin, env.find('\n', begin) - begin);
}

// A GGUF made by llama.cpp loads in Hearth with the llama2.c ids and greedy tokens, and the logits
// llama.cpp computes on it (bounds of LlamaCppComputesHearthsLogitsAndGreedyTokens).
void expect_loads_like_llama2c(const fs::path& f32, const fs::path& q8) {
  LoadedModel reference = load_model(testing::stories260k_dir(), LoadOptions{});
  for (const auto& [file, tol] : {std::pair<fs::path, double>{f32, 2e-3}, {q8, 3e-2}}) {
    LoadedModel m = load_model(file, LoadOptions{});
    const std::vector<int32_t> tokens = m.tokenizer->encode("Once upon a time, there was", true);
    EXPECT_EQ(tokens, reference.tokenizer->encode("Once upon a time, there was", true)) << "tokenizer of " << file;
    const HearthRun ours = hearth_run(m, tokens, 24);
    EXPECT_EQ(ours.greedy, hearth_run(reference, tokens, 24).greedy) << file;
    const Json peer = llama_cpp(file, tokens, 24);
    EXPECT_EQ(peer.at("greedy").get<std::vector<int32_t>>(), ours.greedy) << file;
    const double gap = relative_logit_gap(ours.logits, peer);
    EXPECT_LT(gap, tol) << file;
    std::printf("[ figures  ] %s: max logit gap to llama.cpp %.2e\n", file.filename().c_str(), gap);
  }
}

// llama.cpp's Python library (gguf-py, run from the bundled source on Debian's numpy) writes
// stories260K as GGUF with its own writer and its own Q8_0 quantizer.
TEST_F(GgufInterop, GgufFromLlamaCppLibraryLoadsWithTheSameLogits) {
  require_peer();
  const std::string src = peer_path("LLAMA_CPP_SRC");
  ASSERT_TRUE(fs::exists(fs::path(src) / "gguf-py" / "gguf")) << "run bash scripts/peer/llama_cpp.sh npm";
  const fs::path s = testing::stories260k_dir(), f32 = *dir_ / "gguf_py_f32.gguf", q8 = *dir_ / "gguf_py_q8_0.gguf";
  for (const auto& [file, type] : {std::pair<fs::path, std::string>{f32, "F32"}, {q8, "Q8_0"}}) {
    run("/usr/bin/python3 " + shell_quote((kPeer / "llama2c_to_gguf.py").string()) + " " + shell_quote(src + "/gguf-py") + " " +
        shell_quote((s / "stories260K.bin").string()) + " " + shell_quote((s / "tok512.bin").string()) + " " +
        shell_quote(file.string()) + " " + type);
  }
  expect_loads_like_llama2c(f32, q8);
}

// llama.cpp's native tools (scripts/peer/llama_cpp.sh native; not built in CI, see docs/gguf.md):
// llama-convert-llama2c-to-ggml and llama-quantize.
TEST_F(GgufInterop, GgufFromLlamaCppToolsLoadsWithTheSameLogits) {
  require_peer();
  const std::string bin_dir = peer_path("LLAMA_CPP_BIN");
  if (bin_dir.empty()) GTEST_SKIP() << "llama.cpp's native tools are not built here: bash scripts/peer/llama_cpp.sh native";
  const fs::path bin = bin_dir, s = testing::stories260k_dir();
  const fs::path f32 = *dir_ / "llama_cpp_f32.gguf", q8 = *dir_ / "llama_cpp_q8_0.gguf";
  run(shell_quote((bin / "llama-convert-llama2c-to-ggml").string()) + " --copy-vocab-from-model " + shell_quote((s / "tok512.bin").string()) +
      " --llama2c-model " + shell_quote((s / "stories260K.bin").string()) + " --llama2c-output-model " + shell_quote(f32.string()));
  run(shell_quote((bin / "llama-quantize").string()) + " " + shell_quote(f32.string()) + " " + shell_quote(q8.string()) + " Q8_0");
  expect_loads_like_llama2c(f32, q8);
}

}  // namespace
}  // namespace hearth
