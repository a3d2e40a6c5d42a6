#include "gqe/core/stop_signals.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

namespace gqe {
namespace {

// In a child process: what the handlers do to a process is the point, and the test runner must keep its own.
int exit_status_of(void (*body)()) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    body();
    ::_exit(0);
  }
  int st = 0;
  ::waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

TEST(StopSignals, TheFirstIsRecordedARepeatAtOnceIsTheSameRequestALaterOneExits) {
  EXPECT_EQ(exit_status_of([] {
              StopSignals s;
              if (stop_signal_received() != 0) ::_exit(10);
              ::raise(SIGTERM);
              if (stop_signal_received() != SIGTERM) ::_exit(11);
              ::raise(SIGINT);  // the same stop arriving by another route (terminal, launcher)
              if (stop_signal_received() != SIGTERM) ::_exit(12);
              std::this_thread::sleep_for(std::chrono::duration<double>(kSameStopSeconds + 0.2));
              ::raise(SIGINT);  // asked again: exits at once
              ::_exit(13);
            }),
            128 + SIGINT);
}

TEST(StopSignals, AfterwardsASignalActsAsBefore) {
  EXPECT_EQ(exit_status_of([] {
              { StopSignals s; }
              ::raise(SIGTERM);  // the default action: the process ends by the signal
              ::_exit(10);
            }),
            128 + SIGTERM);
  EXPECT_STREQ(signal_name(SIGTERM), "SIGTERM");
  EXPECT_STREQ(signal_name(SIGINT), "SIGINT");
}

}  // namespace
}  // namespace gqe
