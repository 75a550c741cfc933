// Decode and training speed of the real `hearth` binary with another process spinning on one
// core, against the same command on a quiet machine: the contended / quiet ratio, for Hearth's
// default OpenMP wait policy and for the alternatives (libgomp's own default spin, PASSIVE,
// ACTIVE), at --threads 2 and 1. Quiet and contended runs alternate, several rounds, medians.
//
//   build/bench/bench_contention [--hearth build/hearth] [--model DIR] [--threads 2] [--rounds 3]
//                                [--tokens 200] [--steps 40] [--only decode|train]
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/assets.h"
#include "core/atomic_file.h"
#include "core/json.h"

namespace fs = std::filesystem;
using hearth::Json;

namespace {

struct Options {
  fs::path hearth;
  fs::path model;
  int threads = 2;
  int rounds = 3;
  int tokens = 200;
  int steps = 40;
  std::string only;
};

// One way of running: extra environment for the child and the --threads it gets.
struct Setting {
  std::string name;
  std::vector<std::string> env;
  int threads;
};

std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

// A process spinning on the last core this one may use, until killed.
pid_t start_competitor() {
  cpu_set_t mine;
  sched_getaffinity(0, sizeof mine, &mine);
  int last = 0;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &mine)) last = c;
  const pid_t pid = fork();
  if (pid == 0) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(last, &one);
    sched_setaffinity(0, sizeof one, &one);
    volatile uint64_t x = 0;
    for (;;) x = x + 1;
  }
  return pid;
}

void stop(pid_t pid) {
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
}

// Runs hearth with `args` and `env` added; the last stdout line parsed as JSON (null on failure).
Json run_hearth(const Options& o, const std::vector<std::string>& args, const std::vector<std::string>& env) {
  std::string cmd;
  for (const auto& e : env) cmd += e + " ";
  cmd += o.hearth.string();
  for (const auto& a : args) cmd += " '" + a + "'";
  cmd += " 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out, line;
  char buf[4096];
  while (p && fgets(buf, sizeof buf, p)) out += buf;
  const int status = p ? pclose(p) : -1;
  std::istringstream lines(out);
  std::string last;
  while (std::getline(lines, line))
    if (!line.empty()) last = line;
  if (status != 0 || last.empty() || last[0] != '{') {
    std::fprintf(stderr, "failed: %s\n", cmd.c_str());
    return nullptr;
  }
  return Json::parse(last);
}

double decode_tokens_per_s(const Options& o, const Setting& s) {
  Json r = run_hearth(o, {"generate", "--model", o.model.string(), "--prompt", "Once upon a time", "--max-tokens",
                          std::to_string(o.tokens), "--temperature", "0", "--ignore-stop", "--threads",
                          std::to_string(s.threads), "--json"},
                      s.env);
  return r.is_null() ? 0 : r["tokens_per_s"].get<double>();
}

double train_steps_per_s(const Options& o, const Setting& s, const fs::path& data, const fs::path& out) {
  constexpr int kSeq = 64, kBatch = 4;
  Json r = run_hearth(o, {"train", "--model", o.model.string(), "--quant", "nf4", "--data", data.string(), "--out",
                          out.string(), "--steps", std::to_string(o.steps), "--seq-len", std::to_string(kSeq), "--batch",
                          std::to_string(kBatch), "--warmup", "2", "--eval-every", "0", "--eval-max-rows", "1",
                          "--threads", std::to_string(s.threads), "--json"},
                      s.env);
  return r.is_null() ? 0 : r["tokens_per_s"].get<double>() / (kSeq * kBatch);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

struct Figures {
  std::vector<double> quiet, contended;
};

// Alternates quiet and contended runs of `measure`, `rounds` times each.
template <typename Measure>
Figures measure_both(int rounds, Measure&& measure) {
  Figures f;
  for (int r = 0; r < rounds; ++r) {
    f.quiet.push_back(measure());
    const pid_t competitor = start_competitor();
    usleep(100000);  // let it settle on its core
    f.contended.push_back(measure());
    stop(competitor);
  }
  return f;
}

void print_row(const char* what, const Setting& s, const Figures& f, const char* unit) {
  const double q = median(f.quiet), c = median(f.contended);
  std::printf("%-7s %-28s threads %d  quiet %8.2f %s  contended %8.2f %s  ratio %.2f\n", what, s.name.c_str(), s.threads, q,
              unit, c, unit, q > 0 ? c / q : 0.0);
  std::fflush(stdout);
}

Options parse(int argc, char** argv) {
  Options o;
  o.hearth = fs::canonical("/proc/self/exe").parent_path().parent_path() / "hearth";
  o.model = hearth::asset_path("models/stories260K");
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--hearth") o.hearth = next();
    else if (a == "--model") o.model = next();
    else if (a == "--threads") o.threads = std::stoi(next());
    else if (a == "--rounds") o.rounds = std::stoi(next());
    else if (a == "--tokens") o.tokens = std::stoi(next());
    else if (a == "--steps") o.steps = std::stoi(next());
    else if (a == "--only") o.only = next();
    else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      std::exit(2);
    }
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  const fs::path tmp = fs::temp_directory_path() / ("hearth_bench_contention_" + std::to_string(getpid()));
  fs::create_directories(tmp);
  std::string text = hearth::read_file(hearth::asset_path("data/jane_austen/persuasion.txt")).substr(0, 60000);
  hearth::write_file_atomic(tmp / "data.txt", text.substr(0, text.rfind('\n') + 1));

  std::printf("bench_contention: %s, model %s, a competitor spinning on the last core; %d rounds, medians\n",
              o.hearth.c_str(), o.model.c_str(), o.rounds);
  std::printf("load average at start: %s\n", load_average().c_str());
  const std::vector<Setting> settings = {
      {"hearth default", {}, o.threads},
      {"libgomp default (spin 300k)", {"GOMP_SPINCOUNT=300000"}, o.threads},
      {"OMP_WAIT_POLICY=ACTIVE", {"OMP_WAIT_POLICY=ACTIVE"}, o.threads},
      {"OMP_WAIT_POLICY=PASSIVE", {"OMP_WAIT_POLICY=PASSIVE"}, o.threads},
      {"hearth default", {}, 1},
  };
  for (const Setting& s : settings) {
    if (o.only != "train") print_row("decode", s, measure_both(o.rounds, [&] { return decode_tokens_per_s(o, s); }), "tok/s");
    if (o.only != "decode") {
      print_row("train", s, measure_both(o.rounds, [&] { return train_steps_per_s(o, s, tmp / "data.txt", tmp / "run"); }),
                "steps/s");
    }
  }
  std::printf("load average at end: %s\n", load_average().c_str());
  fs::remove_all(tmp);
  return 0;
}
