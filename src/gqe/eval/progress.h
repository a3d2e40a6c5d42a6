// A one-line progress bar on a terminal stream: "label [#####.....] 120/400  35.2/s  ETA 0:10".
// Redrawn at most ~5 times a second; when the stream is not a terminal only the final line is printed.
#pragma once
#include <chrono>
#include <cstdint>
#include <ostream>
#include <string>

namespace gqe::eval {

class ProgressBar {
 public:
  ProgressBar(std::string label, std::ostream& out, bool interactive);
  void update(int64_t done, int64_t total);
  void finish();  // prints the final state and a newline (once)

 private:
  void draw(int64_t done, int64_t total);
  std::string label_;
  std::ostream& out_;
  bool interactive_, finished_ = false;
  int64_t done_ = 0, total_ = 0;
  std::chrono::steady_clock::time_point start_, last_;
};

}  // namespace gqe::eval
