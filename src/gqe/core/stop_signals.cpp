#include "gqe/core/stop_signals.h"

#include <signal.h>
#include <unistd.h>

#include <cstring>
#include <ctime>

namespace gqe {

namespace {

// Only async-signal-safe work in the handler: a lock-free flag, clock_gettime(2), write(2) and _exit(2).
volatile sig_atomic_t g_signal = 0;
timespec g_first{};  // when the first signal came
const char* volatile g_notice = nullptr;
struct sigaction g_previous_term, g_previous_int;

void on_stop_signal(int sig) {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  if (g_signal != 0) {
    const double since = double(now.tv_sec - g_first.tv_sec) + 1e-9 * double(now.tv_nsec - g_first.tv_nsec);
    if (since >= kSameStopSeconds) _exit(128 + sig);  // asked again: the user does not want to wait
    return;
  }
  g_first = now;
  g_signal = sig;
  const char* notice = g_notice;
  if (notice) {
    ssize_t ignored = ::write(STDERR_FILENO, notice, std::strlen(notice));
    (void)ignored;
  }
}

}  // namespace

StopSignals::StopSignals(const char* notice) {
  g_notice = notice;
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  // One handler at a time: a SIGINT and a SIGTERM arriving together must not both count as the first.
  sigaddset(&sa.sa_mask, SIGTERM);
  sigaddset(&sa.sa_mask, SIGINT);
  // Restart interrupted system calls: a read, a write or a collective's socket call in progress must
  // not fail because the stop was asked for.
  sa.sa_flags = SA_RESTART;
  ::sigaction(SIGTERM, &sa, &g_previous_term);
  ::sigaction(SIGINT, &sa, &g_previous_int);
}

StopSignals::~StopSignals() {
  ::sigaction(SIGTERM, &g_previous_term, nullptr);
  ::sigaction(SIGINT, &g_previous_int, nullptr);
  g_notice = nullptr;
}

int stop_signal_received() { return g_signal; }

const char* signal_name(int sig) {
  if (sig == SIGTERM) return "SIGTERM";
  if (sig == SIGINT) return "SIGINT";
  return "a signal";
}

}  // namespace gqe
