// PEFT-layout adapter folders: Hearth's own files reload to bitwise the same outputs, names and
// config fields are PEFT's, and every kind of damaged or mismatched folder is refused clearly.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "adapter_fixtures.h"
#include "adapters/adapter_set.h"
#include "adapters/peft_files.h"
#include "core/atomic_file.h"
#include "core/safetensors.h"

namespace hearth {
namespace {

namespace fs = std::filesystem;
using testing::load_tiny;
using testing::randomize_adapter;
using testing::tokens_input;

class PeftFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = load_tiny(true);
    dir_ = testing::fresh_temp_dir("peft_files") / "adapter";
  }
  std::shared_ptr<Adapter> saved(AdapterConfig c) {
    auto adapter = Adapter::create(*model_.decoder, c);
    randomize_adapter(*adapter, 4);
    save_peft_adapter(dir_, *adapter, "tiny-base", model_.fingerprint, Json{{"steps", 12}});
    return adapter;
  }
  // Expects loading dir_ to fail with `code` and a message containing `mentions`.
  void expect_refused(ErrorCode code, const std::string& mentions) {
    try {
      load_peft_adapter(dir_, *model_.decoder, model_.fingerprint);
      FAIL() << "loaded a bad adapter folder (expected: " << mentions << ")";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), code) << e.what();
      EXPECT_NE(std::string(e.what()).find(mentions), std::string::npos) << e.what();
    }
  }
  void rewrite_config(const std::function<void(Json&)>& edit) {
    Json j = read_json_file(dir_ / "adapter_config.json");
    edit(j);
    write_file_atomic(dir_ / "adapter_config.json", j.dump());
  }
  // Rewrites the weights keeping the tensors `keep` accepts, after `edit`.
  void rewrite_weights(const std::function<bool(const std::string&, at::Tensor&)>& keep) {
    auto file = SafetensorsFile::open(dir_ / "adapter_model.safetensors");
    SafetensorsWriter w;
    for (const auto& e : file->entries()) {
      at::Tensor t = file->tensor(e.name).clone();
      if (keep(e.name, t)) w.add(e.name, t);
    }
    file.reset();
    w.write(dir_ / "adapter_model.safetensors");
  }

  LoadedModel model_;
  fs::path dir_;
};

TEST_F(PeftFiles, ReloadGivesBitwiseTheSameOutputs) {
  for (AdapterMethod method : {AdapterMethod::kLoRA, AdapterMethod::kDoRA}) {
    AdapterConfig c;
    c.method = method;
    c.rank = 4;
    c.first_layer = 1;
    c.rslora = method == AdapterMethod::kDoRA;
    auto original = saved(c);
    auto loaded = load_peft_adapter(dir_, *model_.decoder, model_.fingerprint);
    EXPECT_EQ(loaded->config().method, method);
    EXPECT_EQ(loaded->config().first_layer, 1);
    EXPECT_EQ(loaded->config().rslora, c.rslora);
    ForwardInput in = tokens_input(2, 6, model_.decoder->config().vocab_size, 8);
    at::NoGradGuard no_grad;
    attach_adapter(*model_.decoder, original);
    const at::Tensor want = model_.decoder->forward(in);
    attach_adapter(*model_.decoder, loaded);
    EXPECT_TRUE(at::equal(model_.decoder->forward(in), want)) << adapter_method_name(method);
    detach_adapters(*model_.decoder);
  }
}

TEST_F(PeftFiles, TensorNamesAndShapesArePefts) {
  AdapterConfig c;
  c.method = AdapterMethod::kDoRA;
  c.rank = 4;
  saved(c);
  auto file = SafetensorsFile::open(dir_ / "adapter_model.safetensors");
  const int64_t h = model_.decoder->config().hidden_size, ff = model_.decoder->config().intermediate_size;
  const std::string p = "base_model.model.model.layers.";
  EXPECT_EQ(file->entry(p + "0.self_attn.q_proj.lora_A.weight").shape, (std::vector<int64_t>{4, h}));
  EXPECT_EQ(file->entry(p + "0.self_attn.q_proj.lora_B.weight").shape, (std::vector<int64_t>{h, 4}));
  EXPECT_EQ(file->entry(p + "1.mlp.down_proj.lora_A.weight").shape, (std::vector<int64_t>{4, ff}));
  EXPECT_EQ(file->entry(p + "1.mlp.gate_proj.lora_B.weight").shape, (std::vector<int64_t>{ff, 4}));
  EXPECT_EQ(file->entry(p + "1.mlp.up_proj.lora_magnitude_vector").shape, (std::vector<int64_t>{ff}));
  EXPECT_EQ(file->entry(p + "0.self_attn.o_proj.lora_A.weight").dtype, at::kFloat);
  EXPECT_EQ(file->entries().size(), 2u * 7u * 3u);
  EXPECT_EQ(file->metadata().at("format"), "pt");
}

TEST_F(PeftFiles, ConfigFieldsArePefts) {
  AdapterConfig c;
  c.rank = 4;
  c.alpha = 8;
  c.dropout = 0.05;
  c.targets = {"q_proj", "v_proj"};
  c.first_layer = 1;
  saved(c);
  const Json j = read_json_file(dir_ / "adapter_config.json");
  EXPECT_EQ(j.at("peft_type"), "LORA");
  EXPECT_EQ(j.at("task_type"), "CAUSAL_LM");
  EXPECT_EQ(j.at("r"), 4);
  EXPECT_EQ(j.at("lora_alpha"), 8.0);
  EXPECT_EQ(j.at("lora_dropout"), 0.05);
  EXPECT_EQ(j.at("target_modules"), Json({"q_proj", "v_proj"}));
  EXPECT_EQ(j.at("use_dora"), false);
  EXPECT_EQ(j.at("use_rslora"), false);
  EXPECT_EQ(j.at("base_model_name_or_path"), "tiny-base");
  EXPECT_EQ(j.at("bias"), "none");
  EXPECT_EQ(j.at("fan_in_fan_out"), false);
  EXPECT_EQ(j.at("init_lora_weights"), true);
  EXPECT_EQ(j.at("layers_to_transform"), Json({1}));
  EXPECT_TRUE(j.at("modules_to_save").is_null());
  EXPECT_EQ(j.at("inference_mode"), true);
  EXPECT_TRUE(j.at("revision").is_null());
  EXPECT_FALSE(j.contains("hearth"));
  const Json hearth = read_json_file(dir_ / "hearth.json");
  EXPECT_EQ(hearth.at("base_fingerprint"), model_.fingerprint);
  EXPECT_EQ(hearth.at("training_summary").at("steps"), 12);
}

TEST_F(PeftFiles, AllLayersWriteNullLayersToTransform) {
  saved(AdapterConfig{});
  const Json j = read_json_file(dir_ / "adapter_config.json");
  EXPECT_TRUE(j.at("layers_to_transform").is_null());
  const AdapterFileInfo info = read_peft_adapter_info(dir_);
  EXPECT_EQ(info.base_fingerprint, model_.fingerprint);
  EXPECT_EQ(info.config.targets.size(), 7u);
  EXPECT_EQ(info.parameter_count, Adapter::create(*model_.decoder, AdapterConfig{})->parameter_count());
}

TEST_F(PeftFiles, RefusesAnotherBaseModel) {
  saved(AdapterConfig{});
  try {
    load_peft_adapter(dir_, *model_.decoder, "0123456789abcdef");
    FAIL() << "loaded onto another base";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find(model_.fingerprint), std::string::npos) << e.what();
  }
}

TEST_F(PeftFiles, RefusesAWrongRank) {
  AdapterConfig c;
  c.rank = 4;
  saved(c);
  rewrite_config([](Json& j) { j["r"] = 8; });
  expect_refused(ErrorCode::kCorruptFile, "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight has shape [4, 64], expected [8, 64]");
}

TEST_F(PeftFiles, RefusesAMissingTensor) {
  saved(AdapterConfig{});
  const std::string gone = "base_model.model.model.layers.1.mlp.up_proj.lora_B.weight";
  rewrite_weights([&](const std::string& name, at::Tensor&) { return name != gone; });
  expect_refused(ErrorCode::kCorruptFile, "missing tensor " + gone);
}

TEST_F(PeftFiles, RefusesAWronglyShapedTensor) {
  saved(AdapterConfig{});
  const std::string bad = "base_model.model.model.layers.0.mlp.down_proj.lora_A.weight";
  rewrite_weights([&](const std::string& name, at::Tensor& t) {
    if (name == bad) t = t.narrow(1, 0, t.size(1) - 1).contiguous();
    return true;
  });
  expect_refused(ErrorCode::kCorruptFile, bad + " has shape");
}

TEST_F(PeftFiles, RefusesAnUnexpectedTensorAndNonFiniteValues) {
  saved(AdapterConfig{});
  rewrite_weights([&](const std::string& name, at::Tensor& t) {
    if (name.find("layers.0.self_attn.k_proj.lora_A") != std::string::npos) t[0][0] = NAN;
    return true;
  });
  expect_refused(ErrorCode::kCorruptFile, "layers.0.self_attn.k_proj.lora_A.weight holds NaN");
  // An infinity, and +inf with -inf (whose sum is NaN): both refused.
  for (const float second : {1.0f, -INFINITY}) {
    saved(AdapterConfig{});
    rewrite_weights([&](const std::string& name, at::Tensor& t) {
      if (name.find("layers.1.self_attn.v_proj.lora_B") != std::string::npos) {
        t[0][0] = INFINITY;
        t[1][0] = second;
      }
      return true;
    });
    expect_refused(ErrorCode::kCorruptFile, "layers.1.self_attn.v_proj.lora_B.weight holds NaN or infinite");
  }
  // Finite values whose sum overflows float are not non-finite values: the file loads.
  saved(AdapterConfig{});
  rewrite_weights([&](const std::string& name, at::Tensor& t) {
    if (name.find("layers.1.self_attn.v_proj.lora_B") != std::string::npos) t[0][0] = t[1][0] = 3e38f;
    return true;
  });
  EXPECT_NO_THROW(load_peft_adapter(dir_, *model_.decoder, model_.fingerprint));
  saved(AdapterConfig{});
  {
    auto file = SafetensorsFile::open(dir_ / "adapter_model.safetensors");
    SafetensorsWriter w;
    for (const auto& e : file->entries()) w.add(e.name, file->tensor(e.name).clone());
    w.add("base_model.model.model.layers.7.self_attn.q_proj.lora_A.weight", at::zeros({8, 64}));
    file.reset();
    w.write(dir_ / "adapter_model.safetensors");
  }
  expect_refused(ErrorCode::kCorruptFile, "unexpected tensor base_model.model.model.layers.7");
}

TEST_F(PeftFiles, RefusesCorruptSafetensors) {
  saved(AdapterConfig{});
  const fs::path f = dir_ / "adapter_model.safetensors";
  fs::resize_file(f, fs::file_size(f) / 2);
  expect_refused(ErrorCode::kCorruptFile, "");
  write_file_atomic(f, "not a safetensors file");
  expect_refused(ErrorCode::kCorruptFile, "");
}

TEST_F(PeftFiles, RefusesMalformedConfig) {
  saved(AdapterConfig{});
  write_file_atomic(dir_ / "adapter_config.json", "{\"peft_type\": \"LORA\", ");
  expect_refused(ErrorCode::kCorruptFile, "adapter_config.json");
  saved(AdapterConfig{});
  rewrite_config([](Json& j) { j.erase("r"); });
  expect_refused(ErrorCode::kCorruptFile, "\"r\"");
  saved(AdapterConfig{});
  rewrite_config([](Json& j) { j["lora_alpha"] = "sixteen"; });
  expect_refused(ErrorCode::kCorruptFile, "lora_alpha");
  saved(AdapterConfig{});
  rewrite_config([](Json& j) { j["peft_type"] = "IA3"; });
  expect_refused(ErrorCode::kUnsupported, "IA3");
  saved(AdapterConfig{});
  rewrite_config([](Json& j) { j["bias"] = "all"; });
  expect_refused(ErrorCode::kUnsupported, "bias");
  saved(AdapterConfig{});
  rewrite_config([](Json& j) { j["target_modules"] = {"q_proj", "lm_head"}; });
  expect_refused(ErrorCode::kUnsupported, "lm_head");
  // Phi-3's PEFT adapters adapt its fused modules; Hearth adapts the parts.
  saved(AdapterConfig{});
  rewrite_config([](Json& j) { j["target_modules"] = {"qkv_proj", "o_proj"}; });
  expect_refused(ErrorCode::kUnsupported, "Phi-3's fused projection");
  saved(AdapterConfig{});
  rewrite_config([](Json& j) { j["target_modules"] = {"gate_up_proj"}; });
  expect_refused(ErrorCode::kUnsupported, "gate_up_proj");
}

// Found by feeding fuzz_peft_adapter hostile numbers: a float rank or layer index was cast to an
// integer (1e300: undefined behaviour), and the largest index overflowed the consecutive check.
TEST_F(PeftFiles, RefusesNumbersNoIntegerFieldCanHold) {
  saved(AdapterConfig{});
  rewrite_config([](Json& j) { j["r"] = 8.5; });
  expect_refused(ErrorCode::kCorruptFile, "\"r\" must be a whole number, got 8.5");
  saved(AdapterConfig{});
  rewrite_config([](Json& j) { j["r"] = 1e300; });
  expect_refused(ErrorCode::kCorruptFile, "\"r\" must be a whole number");
  saved(AdapterConfig{});
  rewrite_config([](Json& j) { j["layers_to_transform"] = {0, 1e300}; });
  expect_refused(ErrorCode::kCorruptFile, "layers_to_transform\" holds a value that must be a whole number");
  saved(AdapterConfig{});
  rewrite_config([](Json& j) { j["layers_to_transform"] = {INT64_MAX, INT64_MAX}; });
  expect_refused(ErrorCode::kUnsupported, "consecutive range");
}

TEST_F(PeftFiles, MissingFilesAreNotFound) {
  expect_refused(ErrorCode::kNotFound, dir_.string());
  saved(AdapterConfig{});
  fs::remove(dir_ / "adapter_model.safetensors");
  expect_refused(ErrorCode::kNotFound, "adapter_model.safetensors");
}

TEST_F(PeftFiles, PeftFolderWithoutHearthMetadataLoads) {
  auto original = saved(AdapterConfig{});
  fs::remove(dir_ / "hearth.json");
  // PEFT may also write newer fields and extra tensors' dtypes; unknown fields are tolerated.
  rewrite_config([](Json& j) { j["use_qalora"] = false; });
  auto loaded = load_peft_adapter(dir_, *model_.decoder, model_.fingerprint);
  EXPECT_EQ(loaded->parameter_count(), original->parameter_count());
}

TEST_F(PeftFiles, AdapterSetLoadsFolders) {
  saved(AdapterConfig{});
  AdapterSet set(model_.decoder);
  set.load("user1", dir_, model_.fingerprint);
  set.activate("user1");
  EXPECT_NE(model_.decoder->layers()[0].q.adapter(), nullptr);
}

}  // namespace
}  // namespace hearth

namespace hearth {
namespace {

// Fields of adapter_config.json of the right JSON type but an absurd or wrong-typed value: an
// alpha of 1e38 used to load and turn the logits into NaN; 1e300 overflowed in LibTorch.
TEST_F(PeftFiles, RefusesOutOfRangeAndWronglyTypedConfigFields) {
  const std::vector<std::pair<std::function<void(Json&)>, std::string>> cases = {
      {[](Json& j) { j["lora_alpha"] = 1e38; }, "\"lora_alpha\" must be a finite number in (0, 10000], got 1e+38"},
      {[](Json& j) { j["lora_alpha"] = 1e300; }, "got 1e+300"},
      {[](Json& j) { j["lora_alpha"] = -2; }, "\"lora_alpha\""},
      {[](Json& j) { j["r"] = 100000; }, "\"r\" must be an integer in 1..4096, got 100000"},
      {[](Json& j) { j["lora_dropout"] = 2; }, "\"lora_dropout\" must be a finite number in [0, 1), got 2"},
      {[](Json& j) { j["layers_to_transform"] = Json::array({4999, 5000}); },
       "adapter first layer must be an integer in 0..1023, got 4999"},
  };
  for (const auto& [edit, mentions] : cases) {
    saved(AdapterConfig{});
    rewrite_config(edit);
    expect_refused(ErrorCode::kCorruptFile, mentions);
  }
}

TEST(AdapterConfigRanges, OptionsOutsideTheirRangeAreNamed) {
  auto message = [](AdapterConfig c) {
    try {
      c.validate();
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  AdapterConfig c;
  EXPECT_EQ(message(c), "accepted");
  c.alpha = 1e300;
  EXPECT_EQ(message(c), "adapter alpha (--alpha) must be a finite number in (0, 10000], got 1e+300");
  c = AdapterConfig{};
  c.alpha = std::nan("");
  EXPECT_NE(message(c).find("got nan"), std::string::npos);
  c = AdapterConfig{};
  c.rank = 0;
  EXPECT_EQ(message(c), "adapter rank (--rank) must be an integer in 1..4096, got 0");
  c = AdapterConfig{};
  c.dropout = 1;
  EXPECT_NE(message(c).find("[0, 1), got 1"), std::string::npos);
  c = AdapterConfig{};
  c.first_layer = 5000;
  EXPECT_NE(message(c).find("got 5000"), std::string::npos);
}

}  // namespace
}  // namespace hearth
