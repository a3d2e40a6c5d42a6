// A graceful stop on SIGTERM and SIGINT for work that must not lose its progress (gqe train): a scheduler's
// time limit, a preemption or Ctrl-C asks the process to stop; the work finishes what it is doing, saves,
// and exits with 128 + the signal (the shell's convention, so a scheduler sees why it ended).
//
// While a StopSignals lives, the first SIGTERM or SIGINT is only recorded (stop_signal_received()) and
// the work polls for it at its safe points; a second one ends the process at once (_exit(128 + signal)),
// for a user who does not want to wait. Whatever that cuts short must already be safe to cut: gqe's
// checkpoints and atomic writes are (train/train_checkpoint.h). A second signal within kSameStopSeconds
// of the first is the same request arriving twice, and ignored: Ctrl-C reaches torchrun and its workers
// (one process group), and a scheduler signals every process of a job, while torchrun forwards the
// signal to its workers again.
#pragma once

namespace gqe {

inline constexpr double kSameStopSeconds = 1.0;

class StopSignals {
 public:
  // Installs the handlers. `notice`, when not null, is written to stderr on the first signal (one line
  // saying what will happen); it must outlive this object.
  explicit StopSignals(const char* notice = nullptr);
  // Restores the previous handlers: a signal after this point acts as it did before (by default it ends
  // the process). A signal already recorded stays recorded.
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
};

// The first SIGTERM or SIGINT received while a StopSignals lived, or 0.
int stop_signal_received();

// "SIGTERM", "SIGINT", else "a signal".
const char* signal_name(int sig);

}  // namespace gqe
