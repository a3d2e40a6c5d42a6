// What machine a measurement ran on: every figure gqe prints about speed names the CPU and the load
// beside it, since the same code reaches different fractions of peak on different x86 machines.
#pragma once
#include <string>

namespace gqe {

// The CPU's model name as the kernel reports it ("AMD EPYC 7B13", "Intel(R) Xeon(R) ..."), or "unknown".
std::string cpu_model_name();
// The 1-minute load average (/proc/loadavg), or -1 where it cannot be read.
double load_average_1min();

}  // namespace gqe
