#include "gqe/eval/progress.h"

#include <cstdio>

namespace gqe::eval {

ProgressBar::ProgressBar(std::string label, std::ostream& out, bool interactive)
    : label_(std::move(label)), out_(out), interactive_(interactive) {
  start_ = last_ = std::chrono::steady_clock::now();
}

void ProgressBar::update(int64_t done, int64_t total) {
  done_ = done;
  total_ = total;
  const auto now = std::chrono::steady_clock::now();
  if (interactive_ && (now - last_ > std::chrono::milliseconds(200) || done == total)) {
    last_ = now;
    draw(done, total);
  }
}

void ProgressBar::draw(int64_t done, int64_t total) {
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const int width = 30;
  const int fill = total > 0 ? int(double(width) * double(done) / double(total)) : width;
  const double rate = secs > 0 ? double(done) / secs : 0;
  const double eta = rate > 0 ? double(total - done) / rate : 0;
  char buf[96];
  std::snprintf(buf, sizeof(buf), "] %lld/%lld  %.1f/s  %s %d:%02d", (long long)done, (long long)total, rate,
                done == total ? "took" : "ETA", int(done == total ? secs : eta) / 60, int(done == total ? secs : eta) % 60);
  out_ << (interactive_ ? "\r" : "") << label_ << " [" << std::string(size_t(fill), '#')
       << std::string(size_t(width - fill), '.') << buf << std::flush;
}

void ProgressBar::finish() {
  if (finished_) return;
  finished_ = true;
  draw(done_, total_);
  out_ << "\n" << std::flush;
}

}  // namespace gqe::eval
