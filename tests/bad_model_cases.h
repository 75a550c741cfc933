// The corrupt and hostile model folders of the bad-input suite, shared by the library-level
// test (also run under ASan/UBSan) and the CLI test (one error line, non-zero exit).
#pragma once
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "core/atomic_file.h"
#include "core/json.h"
#include "test_helpers.h"

namespace hearth::testing {

struct BadModelCase {
  std::string name;
  // Builds the broken model from the good tiny HF folder `good`; returns the path to load.
  std::function<std::filesystem::path(const std::filesystem::path& good, const std::filesystem::path& work)> make;
  std::string needle;  // a word the error message must contain
};

inline void overwrite_bytes(const std::filesystem::path& p, size_t offset, const std::string& bytes) {
  std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

inline std::filesystem::path copy_folder(const std::filesystem::path& from, const std::filesystem::path& to) {
  std::filesystem::remove_all(to);
  std::filesystem::copy(from, to, std::filesystem::copy_options::recursive);
  return to;
}

inline std::filesystem::path copy_stories260k(const std::filesystem::path& to) {
  std::filesystem::remove_all(to);
  std::filesystem::create_directories(to);
  std::filesystem::copy_file(stories260k_dir() / "stories260K.bin", to / "model.bin");
  std::filesystem::copy_file(stories260k_dir() / "tok512.bin", to / "tok512.bin");
  return to;
}

inline std::vector<BadModelCase> bad_model_cases() {
  namespace fs = std::filesystem;
  using P = const fs::path&;
  auto edit_config = [](P good, P work, const std::function<void(Json&)>& edit) {
    fs::path m = copy_folder(good, work);
    Json c = read_json_file(m / "config.json");
    edit(c);
    write_file_atomic(m / "config.json", c.dump());
    return m;
  };
  return {
      {"truncated_safetensors",
       [](P good, P work) {
         fs::path m = copy_folder(good, work);
         fs::resize_file(m / "model.safetensors", fs::file_size(m / "model.safetensors") / 2);
         return m;
       },
       "truncated"},
      {"header_length_past_end",
       [](P good, P work) {
         fs::path m = copy_folder(good, work);
         overwrite_bytes(m / "model.safetensors", 0, std::string("\xff\xff\xff\x7f\x00\x00\x00\x00", 8));
         return m;
       },
       "past the end"},
      {"overlapping_ranges",
       [](P good, P work) {
         fs::path m = copy_folder(good, work);
         const std::string header =
             R"({"model.norm.weight":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
             R"("model.embed_tokens.weight":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})";
         const uint64_t len = header.size();
         write_file_atomic(m / "model.safetensors",
                           std::string(reinterpret_cast<const char*>(&len), 8) + header + std::string(24, '\0'));
         return m;
       },
       "overlap"},
      {"unknown_dtype",
       [](P good, P work) {
         fs::path m = copy_folder(good, work);
         std::string bytes = read_file(m / "model.safetensors");
         bytes.replace(bytes.find("\"BF16\""), 6, "\"BF17\"");
         write_file_atomic(m / "model.safetensors", bytes);
         return m;
       },
       "unknown safetensors dtype"},
      {"garbage_header",
       [](P good, P work) {
         fs::path m = copy_folder(good, work);
         overwrite_bytes(m / "model.safetensors", 8, "\x01\x02\x03garbage");
         return m;
       },
       "not valid JSON"},
      {"missing_config_field",
       [edit_config](P good, P work) { return edit_config(good, work, [](Json& c) { c.erase("hidden_size"); }); },
       "hidden_size"},
      {"config_field_of_wrong_type",
       [edit_config](P good, P work) { return edit_config(good, work, [](Json& c) { c["num_hidden_layers"] = "two"; }); },
       "num_hidden_layers"},
      // Found by fuzzing: a number past a double's range escaped as nlohmann's own exception, and
      // a float in an integer field was cast (1e300: undefined behaviour, 5.5: silently 5).
      {"config_number_too_large",
       [](P good, P work) {
         fs::path m = copy_folder(good, work);
         std::string text = read_file(m / "config.json");
         const size_t at = text.find("\"vocab_size\"");
         text.replace(at, text.find_first_of(",}", at) - at, "\"vocab_size\": 1e999");
         write_file_atomic(m / "config.json", text);
         return m;
       },
       "number too large"},
      {"config_float_for_an_integer",
       [edit_config](P good, P work) { return edit_config(good, work, [](Json& c) { c["hidden_size"] = 1e300; }); },
       "\"hidden_size\" must be a whole number"},
      // Numbers of the right kind but outside their range: refused naming the field, the
      // value and the range.
      {"config_absurd_layers",
       [edit_config](P good, P work) { return edit_config(good, work, [](Json& c) { c["num_hidden_layers"] = 5000; }); },
       "\"num_hidden_layers\" must be an integer in 1..1024, got 5000"},
      {"config_fractional_layers",
       [edit_config](P good, P work) { return edit_config(good, work, [](Json& c) { c["num_hidden_layers"] = 5.5; }); },
       "\"num_hidden_layers\" must be a whole number, got 5.5"},
      {"config_absurd_context",
       [edit_config](P good, P work) {
         return edit_config(good, work, [](Json& c) { c["max_position_embeddings"] = int64_t(1) << 40; });
       },
       "\"max_position_embeddings\" must be an integer in 1..16777216, got 1099511627776"},
      {"config_norm_eps_out_of_range",
       [edit_config](P good, P work) { return edit_config(good, work, [](Json& c) { c["rms_norm_eps"] = 5; }); },
       "\"rms_norm_eps\" must be a finite number in [1e-12, 0.1], got 5"},
      {"config_fractional_eos",
       [edit_config](P good, P work) { return edit_config(good, work, [](Json& c) { c["eos_token_id"] = {2.5}; }); },
       "\"eos_token_id\" must be a whole number"},
      {"config_disagrees_with_tensors",
       [edit_config](P good, P work) { return edit_config(good, work, [](Json& c) { c["intermediate_size"] = 200; }); },
       "shape"},
      {"heads_do_not_divide",
       [edit_config](P good, P work) { return edit_config(good, work, [](Json& c) { c["num_key_value_heads"] = 3; }); },
       "num_key_value_heads"},
      {"unsupported_architecture",
       [edit_config](P good, P work) {
         return edit_config(good, work, [](Json& c) { c["architectures"] = {"MambaForCausalLM"}; });
       },
       "not supported"},
      {"malformed_config_json",
       [](P good, P work) {
         fs::path m = copy_folder(good, work);
         write_file_atomic(m / "config.json", "{\"hidden_size\": 64,");
         return m;
       },
       "not valid JSON"},
      {"garbage_tokenizer_json",
       [](P good, P work) {
         fs::path m = copy_folder(good, work);
         write_file_atomic(m / "tokenizer.json", "\x01\x02garbage{{{");
         return m;
       },
       "tokenizer"},
      {"llama2c_lying_header",
       [](P, P work) {
         fs::path d = copy_stories260k(work);
         int32_t layers = 50;
         overwrite_bytes(d / "model.bin", 8, std::string(reinterpret_cast<char*>(&layers), 4));
         return d;
       },
       "header"},
      {"llama2c_negative_sizes",
       [](P, P work) {
         fs::path d = copy_stories260k(work);
         int32_t dim = -64;
         overwrite_bytes(d / "model.bin", 0, std::string(reinterpret_cast<char*>(&dim), 4));
         return d;
       },
       "non-positive"},
      {"llama2c_truncated",
       [](P, P work) {
         fs::path d = copy_stories260k(work);
         fs::resize_file(d / "model.bin", 1000);
         return d;
       },
       "truncated"},
      {"llama2c_truncated_tokenizer",
       [](P, P work) {
         fs::path d = copy_stories260k(work);
         fs::resize_file(d / "tok512.bin", 300);
         return d;
       },
       "tok512.bin"},
  };
}

}  // namespace hearth::testing
