#include "trainer/progress_bar.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace hearth::trainer {

std::string format_duration(double seconds) {
  if (!(seconds >= 0) || seconds > 1e7) return "?";
  const int64_t s = int64_t(seconds + 0.5);
  char buf[32];
  if (s >= 3600) {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", (long long)(s / 3600), (long long)(s / 60 % 60));
  } else {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", (long long)(s / 60), (long long)(s % 60));
  }
  return buf;
}

ProgressBar::ProgressBar(int64_t total_steps, bool enabled, int64_t plain_every)
    : total_(std::max<int64_t>(1, total_steps)),
      enabled_(enabled),
      tty_(::isatty(STDERR_FILENO) == 1),
      plain_every_(std::max<int64_t>(1, plain_every)) {}

void ProgressBar::update(int64_t step, double loss, double tokens_per_s, double eta_s) {
  if (!enabled_) return;
  if (tty_) {
    constexpr int kWidth = 30;
    const int filled = int(kWidth * std::min<int64_t>(step, total_) / total_);
    std::string bar(filled, '#');
    bar.resize(kWidth, '.');
    std::fprintf(stderr, "\r[%s] %lld/%lld  loss %.4f  %.0f tok/s  ETA %s   ", bar.c_str(), (long long)step,
                 (long long)total_, loss, tokens_per_s, format_duration(eta_s).c_str());
    std::fflush(stderr);
    bar_drawn_ = true;
  } else if (step % plain_every_ == 0 || step == total_) {
    std::fprintf(stderr, "step %lld/%lld  loss %.4f  %.0f tok/s  ETA %s\n", (long long)step, (long long)total_, loss,
                 tokens_per_s, format_duration(eta_s).c_str());
  }
}

void ProgressBar::message(const std::string& text) {
  if (!enabled_) return;
  if (bar_drawn_) std::fputc('\n', stderr);
  bar_drawn_ = false;
  std::fprintf(stderr, "%s\n", text.c_str());
}

void ProgressBar::finish() {
  if (enabled_ && bar_drawn_) std::fputc('\n', stderr);
  bar_drawn_ = false;
}

}  // namespace hearth::trainer
