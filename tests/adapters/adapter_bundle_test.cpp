// Adapter bundles (one in-memory safetensors blob, what the vault seals): a bundle reloads to
// bitwise the same outputs, carries its config and metadata, and damaged bytes are refused.
#include <gtest/gtest.h>

#include "adapter_fixtures.h"
#include "adapters/adapter_bundle.h"
#include "adapters/adapter_set.h"
#include "core/error.h"

namespace hearth {
namespace {

TEST(AdapterBundle, ReloadsToBitwiseTheSameOutputsWithItsMetadata) {
  LoadedModel m = testing::load_tiny(true);
  AdapterConfig c;
  c.method = AdapterMethod::kDoRA;
  c.rank = 4;
  c.seed = 9;
  auto original = Adapter::create(*m.decoder, c);
  testing::randomize_adapter(*original, 4);
  const std::string bytes = adapter_to_bundle(*original, "tiny-base", m.fingerprint, Json{{"steps", 3}});

  AdapterFileInfo info = read_adapter_bundle_info(bytes, "bundle");
  EXPECT_EQ(info.config.method, AdapterMethod::kDoRA);
  EXPECT_EQ(info.config.rank, 4);
  EXPECT_EQ(info.config.seed, 9u);
  EXPECT_EQ(info.base_fingerprint, m.fingerprint);
  EXPECT_EQ(info.base_model_name, "tiny-base");
  EXPECT_EQ(info.training_summary["steps"], 3);
  EXPECT_EQ(info.parameter_count, original->parameter_count());

  auto loaded = load_adapter_bundle(bytes, "bundle", *m.decoder, m.fingerprint);
  ForwardInput in = testing::tokens_input(2, 5, m.decoder->config().vocab_size, 2);
  at::NoGradGuard no_grad;
  attach_adapter(*m.decoder, original);
  const at::Tensor want = m.decoder->forward(in);
  attach_adapter(*m.decoder, loaded);
  EXPECT_TRUE(at::equal(m.decoder->forward(in), want));
  detach_adapters(*m.decoder);
}

TEST(AdapterBundle, RefusesDamagedBytesAndAnotherBase) {
  LoadedModel m = testing::load_tiny(true);
  AdapterConfig c;
  c.rank = 2;
  auto adapter = Adapter::create(*m.decoder, c);
  const std::string bytes = adapter_to_bundle(*adapter, "tiny-base", m.fingerprint, Json::object());
  auto code_of = [&](const std::string& b, const std::string& fingerprint) {
    try {
      load_adapter_bundle(b, "adapter 7", *m.decoder, fingerprint);
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("adapter 7"), std::string::npos) << e.what();
      return e.code();
    }
    return ErrorCode::kInternal;  // loaded: not expected
  };
  EXPECT_EQ(code_of(bytes.substr(0, bytes.size() - 4), m.fingerprint), ErrorCode::kCorruptFile);  // truncated
  EXPECT_EQ(code_of("not a bundle at all", m.fingerprint), ErrorCode::kCorruptFile);
  EXPECT_EQ(code_of(bytes, "another-base"), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace hearth
