// Memory: what a run will need, estimated from the model config before anything is allocated, what the
// machine can give, and one-line messages for the allocation failures that still happen. Without the
// estimate a model too large for the machine is OOM-killed with no message, or fails deep inside the
// allocator (under an address-space limit, sometimes as SIGSEGV).
#pragma once
#include <cstdint>
#include <exception>
#include <string>

#include "gqe/core/config.h"

namespace gqe {

struct MemoryEstimate {  // bytes
  double weights = 0, gradients = 0, optimizer = 0, activations = 0;
  double total() const { return weights + gradients + optimizer + activations; }
};

// One optimizer step of fp32 training: weights, gradients, AdamW's two moments, and the activations
// autograd keeps for one micro-batch of batch x seq tokens (per layer: norms, projections, attention
// output, MLP; the reference attention path's T x T scores; the logits and their gradient). An estimate,
// meant to be within a small factor; the framework's own overhead is not counted.
MemoryEstimate estimate_training_memory(const ModelConfig& cfg, int64_t batch, int64_t seq);

struct AvailableMemory {
  double bytes = 0;
  std::string source;  // which limit: "MemAvailable", "cgroup memory.max", "address-space limit (ulimit -v)"
};
// The least of: the kernel's MemAvailable, the cgroup's remaining memory limit, and the remaining
// address space under RLIMIT_AS. A source that cannot be read is skipped.
AvailableMemory available_memory();

// Throws gqe::Error "<what> needs about X GB (weights .., gradients .., optimizer .., activations ..), only
// Y GB available (<source>) ... --ignore-memory-check" when the estimate exceeds what is available.
void check_memory(const MemoryEstimate& need, const std::string& what, const std::string& override_flag);

// "4.2 GB" style, for messages.
std::string format_bytes(double bytes);

// A one-line description when `e` is an allocation failure (libtorch's allocators, a storage size that
// overflows, std::bad_alloc), so that it is reported as such and not as an internal error with a
// backtrace; "" for any other exception.
std::string allocation_failure_message(const std::exception& e);

}  // namespace gqe
