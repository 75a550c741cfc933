// A process-wide stop request: SIGINT / SIGTERM set an atomic flag that the training loop
// checks once per step, so a run stops between steps with a checkpoint instead of dying.
#pragma once

namespace hearth::trainer {

// Installs handlers for SIGINT and SIGTERM that call request_stop(). A second signal while a
// stop is pending restores the default action, so pressing Ctrl-C twice still kills.
void install_stop_signal_handlers();
void request_stop();
bool stop_requested();
void clear_stop_request();

}  // namespace hearth::trainer
