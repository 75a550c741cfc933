// Memorization of a secret by a LoRA adapter, with and without DP-SGD: the exposure of a
// random canary (Carlini et al. 2019, "The Secret Sharer") inserted 10 times into a user's
// Austen text. The text goes through the real path: ingested into a vault (sealed), read back
// decrypted in memory, trained on; each run starts from the same fresh adapter.
//
// Exposure = log2(candidates) - log2(rank), where rank is 1 + the number of random candidates
// of the same format ("my locker code is DDDDDD", 10^6 possibilities) whose log-likelihood
// under the trained model is higher than the canary's. 13.3 bits (rank 1 of 10,000) means
// the model prefers the canary to every other candidate; ~1 bit is chance.
//
//   build/bench/bench_canary_exposure [--steps 300] [--bytes 100000] [--dp-noise 1.0] [--dp-clip 1.0]
//                                     [--lr 3e-3] [--seed 1] [--threads 1] [--quick]
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <set>
#include <string>

#include "adapters/adapter.h"
#include "core/assets.h"
#include "core/atomic_file.h"
#include "core/json.h"
#include "core/rng.h"
#include "core/threads.h"
#include "inference/model_loader.h"
#include "storage/ingest.h"
#include "storage/user_data.h"
#include "storage/vault.h"
#include "trainer/packing.h"
#include "trainer/trainer.h"
#include "trainer/user_training_data.h"

using namespace hearth;
namespace fs = std::filesystem;

namespace {

struct Options {
  int64_t steps = 300;
  int64_t seq_len = 128;
  int64_t batch = 8;
  double lr = 3e-3;
  double dp_noise = 1.0;
  double dp_clip = 1.0;
  int64_t candidates = 10000;
  int64_t copies = 10;
  std::string novel = "data/jane_austen/persuasion.txt";
  size_t bytes = 100000;  // the user's text: the novel's opening, cut at a line end
  uint64_t seed = 1;
  int threads = 1;
};

std::string canary_text(const std::string& digits) { return "my locker code is " + digits; }

std::string random_digits(at::Generator& gen) {
  at::Tensor d = at::randint(0, 10, {6}, gen, at::kLong);
  std::string s;
  for (int i = 0; i < 6; ++i) s += char('0' + d[i].item<int64_t>());
  return s;
}

// The novel with the canary as its own line at `copies` evenly spaced places in the first 85%
// (the held-out split is the last 10% of the text).
std::string with_canary(const std::string& novel, const std::string& canary, int64_t copies) {
  std::string out;
  const size_t span = novel.size() * 85 / 100;
  size_t from = 0;
  for (int64_t c = 1; c <= copies; ++c) {
    const size_t at = novel.find('\n', span * c / (copies + 1));
    out += novel.substr(from, at + 1 - from) + canary + "\n";
    from = at + 1;
  }
  return out + novel.substr(from);
}

// Sum of -log p over every token after BOS of each text: one forward pass per batch of texts
// (padding sits after the text, where the causal mask keeps it from mattering).
std::vector<double> sequence_nll(const Decoder& decoder, const Tokenizer& tok, const std::vector<std::string>& texts) {
  at::NoGradGuard no_grad;
  std::vector<double> out;
  constexpr size_t kChunk = 500;
  for (size_t begin = 0; begin < texts.size(); begin += kChunk) {
    const size_t end = std::min(texts.size(), begin + kChunk);
    std::vector<std::vector<int32_t>> ids;
    size_t longest = 0;
    for (size_t i = begin; i < end; ++i) {
      ids.push_back(tok.encode(texts[i], /*add_bos=*/true));
      longest = std::max(longest, ids.back().size());
    }
    at::Tensor tokens = at::zeros({int64_t(ids.size()), int64_t(longest)}, at::kLong);
    at::Tensor weights = at::zeros({int64_t(ids.size()), int64_t(longest) - 1});
    for (size_t r = 0; r < ids.size(); ++r) {
      for (size_t t = 0; t < ids[r].size(); ++t) tokens[r][t] = ids[r][t];
      weights[r].narrow(0, 0, int64_t(ids[r].size()) - 1).fill_(1.0);
    }
    ForwardInput in;
    in.tokens = tokens;
    at::Tensor logp = decoder.forward(in).narrow(1, 0, int64_t(longest) - 1).log_softmax(-1);
    at::Tensor target = tokens.narrow(1, 1, int64_t(longest) - 1).unsqueeze(-1);
    at::Tensor nll = -(logp.gather(-1, target).squeeze(-1) * weights).sum(1).to(at::kDouble);
    for (int64_t r = 0; r < nll.size(0); ++r) out.push_back(nll[r].item<double>());
  }
  return out;
}

struct Exposure {
  int64_t rank = 0;
  double bits = 0;
  double canary_nll = 0, median_candidate_nll = 0;
};

Exposure exposure(const Decoder& decoder, const Tokenizer& tok, const std::string& canary,
                  const std::vector<std::string>& candidates) {
  const double mine = sequence_nll(decoder, tok, {canary})[0];
  std::vector<double> theirs = sequence_nll(decoder, tok, candidates);
  Exposure e;
  e.canary_nll = mine;
  e.rank = 1 + std::count_if(theirs.begin(), theirs.end(), [&](double x) { return x < mine; });
  e.bits = std::log2(double(candidates.size())) - std::log2(double(e.rank));
  std::nth_element(theirs.begin(), theirs.begin() + theirs.size() / 2, theirs.end());
  e.median_candidate_nll = theirs[theirs.size() / 2];
  return e;
}

struct RunResult {
  std::string name;
  Exposure exposure;
  trainer::TrainResult train;
  double seconds = 0;
};

RunResult run(const std::string& name, const Options& o, bool dp, const trainer::TrainingData& data,
              const std::string& canary, const std::vector<std::string>& candidates) {
  LoadOptions lo;
  lo.quant = QuantFormat::kNF4;
  LoadedModel m = load_model(asset_path("models/stories260K"), lo);
  RunResult r;
  r.name = name;
  const auto t0 = std::chrono::steady_clock::now();
  if (o.steps > 0) {
    trainer::TrainConfig cfg;
    cfg.steps = o.steps;
    cfg.seq_len = o.seq_len;
    cfg.batch = o.batch;
    cfg.lr = o.lr;
    cfg.warmup = std::min<int64_t>(20, o.steps - 1);
    cfg.eval_every = 0;
    cfg.eval_max_rows = 64;
    cfg.seed = o.seed;
    cfg.optimizer.name = "adamw";
    cfg.optimizer.seed = o.seed;
    cfg.progress = false;
    cfg.in_memory = true;
    cfg.grad_checkpoint = trainer::GradCheckpoint::kOff;
    if (dp) {
      cfg.dp.noise = o.dp_noise;
      cfg.dp.clip = o.dp_clip;
      cfg.dp.seed = mix_seed(o.seed, 99);  // a fixed seed so the figure repeats; never for real use
    }
    AdapterConfig a;
    a.rank = 8;
    a.alpha = 16;
    a.seed = o.seed;
    trainer::Trainable t = trainer::Trainable::adapter(*m.decoder, a);
    r.train = trainer::train(*m.decoder, t, trainer::pack_documents(data.train, o.seq_len),
                             trainer::pack_documents(data.eval, o.seq_len), cfg, {"stories260K", m.fingerprint});
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.exposure = exposure(*m.decoder, *m.tokenizer, canary, candidates);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--steps") o.steps = std::stoll(next());
    else if (a == "--dp-noise") o.dp_noise = std::stod(next());
    else if (a == "--dp-clip") o.dp_clip = std::stod(next());
    else if (a == "--lr") o.lr = std::stod(next());
    else if (a == "--seed") o.seed = std::stoull(next());
    else if (a == "--threads") o.threads = std::stoi(next());
    else if (a == "--novel") o.novel = next();
    else if (a == "--bytes") o.bytes = std::stoull(next());
    else if (a == "--quick") { o.steps = 20; o.candidates = 1000; }
    else { std::fprintf(stderr, "unknown option %s\n", a.c_str()); return 2; }
  }
  set_num_threads(o.threads);

  // The canary and 10,000 other secrets of its format.
  at::Generator gen = make_generator(mix_seed(o.seed, 7));
  const std::string secret = random_digits(gen);
  const std::string canary = canary_text(secret);
  std::set<std::string> seen{secret};
  std::vector<std::string> candidates;
  while (int64_t(candidates.size()) < o.candidates) {
    const std::string d = random_digits(gen);
    if (seen.insert(d).second) candidates.push_back(canary_text(d));
  }

  // The user's data through the vault: ingested (sealed), read back in memory.
  const fs::path work = fs::temp_directory_path() / ("hearth_bench_canary_" + std::to_string(::getpid()));
  fs::remove_all(work);
  fs::create_directories(work);
  const fs::path input = work / "austen.txt";
  std::string novel = read_file(asset_path(o.novel)).substr(0, o.bytes);
  novel = novel.substr(0, novel.rfind('\n') + 1);
  write_file_atomic(input, with_canary(novel, canary, o.copies));
  trainer::TrainingData data;
  {
    storage::Vault vault(work / "home", privacy::MasterKeySource::from_raw_key(std::string(32, '\x42')));
    storage::IngestOptions io;
    io.user = "reader";
    io.redaction = privacy::RedactionMode::kOff;
    storage::ingest_files(vault.db(), vault.keyring(), {input}, io);
    fs::remove(input);
    const storage::UserData stored = storage::load_user_data(vault.db(), vault.keyring(), "reader");
    LoadedModel m = load_model(asset_path("models/stories260K"), LoadOptions{});
    data = trainer::user_training_data(stored, *m.tokenizer, {0.1, trainer::EvalSplit::kTail});
  }
  const int64_t rows = trainer::pack_documents(data.train, o.seq_len).rows();
  std::printf("canary \"%s\" x%lld in the first %zu bytes of %s; %lld training rows of %lld; %lld candidates; %lld steps, batch %lld\n",
              canary.c_str(), static_cast<long long>(o.copies), o.bytes, o.novel.c_str(), static_cast<long long>(rows),
              static_cast<long long>(o.seq_len), static_cast<long long>(o.candidates), static_cast<long long>(o.steps),
              static_cast<long long>(o.batch));

  Options base = o;
  base.steps = 0;
  std::vector<RunResult> results{run("base model (no adapter)", base, false, data, canary, candidates),
                                 run("LoRA", o, false, data, canary, candidates),
                                 run("LoRA + DP-SGD", o, true, data, canary, candidates)};
  std::printf("\n| run | held-out loss | canary NLL | median candidate NLL | rank | exposure (bits) | epsilon | time |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
  Json all = Json::array();
  for (const RunResult& r : results) {
    const bool trained = r.train.steps_done > 0;
    const double eps = r.train.privacy.is_object() ? r.train.privacy["epsilon"].get<double>() : 0;
    std::printf("| %s | %s | %.2f | %.2f | %lld | %.2f | %s | %.0f s |\n", r.name.c_str(),
                trained ? std::to_string(r.train.eval_loss_after).substr(0, 6).c_str() : "-", r.exposure.canary_nll,
                r.exposure.median_candidate_nll, static_cast<long long>(r.exposure.rank), r.exposure.bits,
                r.train.privacy.is_object() ? std::to_string(eps).substr(0, 5).c_str() : "∞", r.seconds);
    all.push_back(Json{{"run", r.name},
                       {"rank", r.exposure.rank},
                       {"exposure_bits", r.exposure.bits},
                       {"canary_nll", r.exposure.canary_nll},
                       {"median_candidate_nll", r.exposure.median_candidate_nll},
                       {"train", trained ? r.train.to_json() : Json(nullptr)}});
  }
  std::printf("%s\n", all.dump().c_str());
  fs::remove_all(work);
  return 0;
}
