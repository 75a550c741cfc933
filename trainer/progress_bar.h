// Training progress on stderr: a bar redrawn in place on a terminal (step, loss, tokens/s,
// ETA), or plain log lines every few steps when stderr is a file or pipe.
#pragma once
#include <cstdint>
#include <string>

namespace hearth::trainer {

class ProgressBar {
 public:
  // enabled=false prints nothing; plain_every: steps between lines when not on a terminal.
  ProgressBar(int64_t total_steps, bool enabled, int64_t plain_every);
  void update(int64_t step, double loss, double tokens_per_s, double eta_s);
  // A message on its own line (evaluations, checkpoints), not overwritten by the bar.
  void message(const std::string& text);
  void finish();

 private:
  int64_t total_;
  bool enabled_;
  bool tty_;
  int64_t plain_every_;
  bool bar_drawn_ = false;
};

std::string format_duration(double seconds);

}  // namespace hearth::trainer
