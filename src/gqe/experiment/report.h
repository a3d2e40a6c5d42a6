// The experiment report: gathers every number from the run directories and writes
// OUT/report/{README.md, results.json, loss_curves.png, speedup.png, routing.png}.
#pragma once
#include <string>
#include <vector>

namespace gqe {

struct MeanStd {
  double mean = 0, std = 0;  // std: sample standard deviation (0 with one value)
  int n = 0;
};
MeanStd mean_std(const std::vector<double>& xs);

}  // namespace gqe
