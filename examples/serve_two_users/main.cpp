// Serving two users from one base model, in C++ over the engine (engine/engine.h): each user's
// data trains their own adapter (one job each), then requests alternate between the users, each
// answered through its user's adapter while the 4-bit base stays loaded once.
//
//   serve_two_users HOME MODEL_DIR TEXT_A TEXT_B
//
// It checks what it shows: every alternating answer equals the answer the same adapter gives when
// it is the only one asked (greedy decoding), and the two users' answers differ.
#include <cstdio>
#include <map>
#include <string>

#include "core/error.h"
#include "core/runtime.h"
#include "engine/engine.h"

namespace {

hearth::engine::JobSpec job_for(const std::string& user) {
  hearth::engine::JobSpec s;
  s.user = user;
  s.training.rank = 8;
  s.training.steps = 12;
  s.training.seq_len = 64;
  s.training.batch = 4;
  s.training.lr = 4e-3;
  s.training.seed = 2;
  s.training.eval_max_rows = 8;
  return s;
}

bool has_user(hearth::engine::Engine& e, const std::string& name) {
  for (const auto& u : e.users())
    if (u.name == name) return true;
  return false;
}

std::string answer(hearth::engine::Engine& e, const std::string& user, const std::string& prompt) {
  hearth::engine::GenerateRequest r;
  r.prompt = prompt;
  r.user = user;
  r.adapter = "default";
  r.options.max_tokens = 24;
  r.options.sampling.temperature = 0;
  return e.generate(r).text;
}

int run(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: %s HOME MODEL_DIR TEXT_A TEXT_B\n", argv[0]);
    return 2;
  }
  hearth::init_runtime(0);
  hearth::engine::EngineOptions o;
  o.home = argv[1];
  o.key = hearth::privacy::MasterKeySource::from_raw_key(std::string(32, 'k'));  // a real app: the keystore
  hearth::engine::Engine e(o);
  hearth::engine::BaseModelSpec base;
  base.path = argv[2];
  base.quant = "nf4";
  e.load_base(base);

  const std::map<std::string, std::string> users = {{"ann", argv[3]}, {"bob", argv[4]}};
  for (const auto& [user, text] : users) {
    if (!has_user(e, user)) e.ingest_files(user, {text});
    if (e.adapter_versions(user, "default").empty()) {
      const hearth::engine::SliceResult r = e.run_slice(e.submit_job(job_for(user)), {});
      std::printf("trained %s's adapter: %s after %lld steps\n", user.c_str(), r.outcome.c_str(),
                  static_cast<long long>(r.steps_done));
    }
  }

  const std::string prompts[] = {"She said that", "The best thing about", "In the morning"};
  std::map<std::string, std::string> alone;  // (user + prompt) -> the answer asked on its own
  for (const auto& [user, text] : users)
    for (const std::string& p : prompts) alone[user + "|" + p] = answer(e, user, p);

  int mismatches = 0;
  for (const std::string& p : prompts) {
    for (const auto& [user, text] : users) {  // alternating: ann, bob, ann, bob, ...
      const std::string a = answer(e, user, p);
      std::printf("[%s] %s%s\n", user.c_str(), p.c_str(), a.c_str());
      mismatches += a != alone[user + "|" + p];
    }
  }
  const bool differ = alone["ann|" + prompts[0]] != alone["bob|" + prompts[0]];
  std::printf("%s; the two users' adapters %s\n",
              mismatches == 0 ? "every alternating answer equals the single-adapter answer" : "MISMATCH",
              differ ? "answer differently" : "answer the same (unexpected)");
  return mismatches == 0 && differ ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
