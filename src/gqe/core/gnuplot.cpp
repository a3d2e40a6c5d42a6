#include "gqe/core/gnuplot.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "gqe/core/error.h"
#include "gqe/core/fs.h"

namespace gqe {

namespace {

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// The shell answers 127 when it cannot find the program.
bool command_not_found(int status) { return status == -1 || (WIFEXITED(status) && WEXITSTATUS(status) == 127); }

}  // namespace

bool run_gnuplot(const std::string& script, PlotNeed need) {
  const std::string err_path = script + ".err." + std::to_string(::getpid());
  const int status = std::system(("gnuplot " + shell_quote(script) + " 2> " + shell_quote(err_path)).c_str());
  std::string err;
  if (fs::exists(err_path)) {
    err = fs::read_file(err_path);
    std::remove(err_path.c_str());
  }
  while (!err.empty() && (err.back() == '\n' || err.back() == ' ')) err.pop_back();
  if (status == 0) return true;
  const std::string what =
      command_not_found(status)
          ? "gnuplot is not installed (Debian: apt-get install gnuplot-nox); no picture from " + script
          : "gnuplot failed on " + script + (err.empty() ? std::string() : ":\n" + err);
  if (need == PlotNeed::kRequired) throw Error(what);
  std::cerr << "warning: " << what << "\n";
  return false;
}

std::string gnuplot_png_terminal() {
  if (command_not_found(std::system("gnuplot -e '' > /dev/null 2>&1"))) return "";
  return std::system("gnuplot -e 'set terminal pngcairo' > /dev/null 2>&1") == 0 ? "pngcairo" : "png";
}

}  // namespace gqe
