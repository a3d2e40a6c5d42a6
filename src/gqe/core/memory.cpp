#include "gqe/core/memory.h"

#include <c10/util/Exception.h>
#include <sys/resource.h>

#include <cstdio>
#include <fstream>
#include <new>
#include <sstream>

#include "gqe/core/error.h"

namespace gqe {

MemoryEstimate estimate_training_memory(const ModelConfig& c, int64_t batch, int64_t seq) {
  constexpr double kFloat = 4;
  const AttentionConfig& a = c.attention;
  // Parameters from the same formulas as `gqe info` (core/model_stats.h), in double: no overflow here.
  const double d = double(c.hidden_size), dh = double(a.head_dim), L = double(c.num_hidden_layers);
  const double V = double(c.vocab_size), I = double(c.intermediate_size);
  const double per_layer = double(a.num_heads + (a.has_shared_head() ? 1 : 0)) * dh * d +
                           2.0 * double(a.num_kv_heads) * dh * d + double(a.num_slots()) * dh * d +
                           (a.is_gqe() ? double(a.num_heads) * d : 0.0) +
                           (c.mlp_type == MlpType::swiglu ? 3.0 : 2.0) * d * I + 4.0 * d;
  const double params = L * per_layer + V * d * (c.tie_word_embeddings ? 1.0 : 2.0) + 2.0 * d;
  MemoryEstimate m;
  m.weights = params * kFloat;
  m.gradients = params * kFloat;
  m.optimizer = 2.0 * params * kFloat;
  const double tokens = double(batch) * double(seq);
  // Saved per token and layer: residual stream and norms (~6 d), queries of every head (the GQE
  // reference path computes all N), keys and values, the attention slots into W_O, the MLP's hidden
  // activations (~3-4 I).
  const double saved = 6.0 * d + double(a.num_heads) * dh + 2.0 * double(a.num_kv_heads) * dh +
                       double(a.num_slots()) * dh + (c.mlp_type == MlpType::swiglu ? 4.0 : 2.0) * I;
  double act = tokens * L * saved * kFloat;
  if (a.implementation == AttentionImplementation::reference)  // scores and probabilities, every head
    act += 2.0 * double(batch) * L * double(a.num_heads) * double(seq) * double(seq) * kFloat;
  act += 3.0 * tokens * V * kFloat;  // logits, their log-softmax and gradient
  m.activations = act;
  return m;
}

namespace {

// A number from the first line of `path`; false when absent or "max".
bool read_number(const std::string& path, double& out) {
  std::ifstream f(path);
  std::string s;
  if (!(f >> s) || s == "max") return false;
  try {
    out = std::stod(s);
  } catch (const std::exception&) {
    return false;
  }
  return true;
}

// "Key:   123 kB" from a /proc file, in bytes.
bool read_proc_kb(const std::string& path, const std::string& key, double& out) {
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(key + ":", 0) == 0) {
      std::istringstream ss(line.substr(key.size() + 1));
      double kb = 0;
      if (!(ss >> kb)) return false;
      out = kb * 1024.0;
      return true;
    }
  return false;
}

}  // namespace

AvailableMemory available_memory() {
  AvailableMemory best{1e300, "unknown"};
  auto consider = [&](double bytes, const char* source) {
    if (bytes >= 0 && bytes < best.bytes) best = {bytes, source};
  };
  double v = 0;
  if (read_proc_kb("/proc/meminfo", "MemAvailable", v)) consider(v, "MemAvailable");
  double limit = 0, used = 0;
  if (read_number("/sys/fs/cgroup/memory.max", limit) && read_number("/sys/fs/cgroup/memory.current", used))
    consider(limit - used, "cgroup memory.max");
  else if (read_number("/sys/fs/cgroup/memory/memory.limit_in_bytes", limit) &&
           read_number("/sys/fs/cgroup/memory/memory.usage_in_bytes", used) && limit < 1e18)
    consider(limit - used, "cgroup memory.limit_in_bytes");
  struct rlimit rl {};
  double vm = 0;
  if (::getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && read_proc_kb("/proc/self/status", "VmSize", vm))
    consider(double(rl.rlim_cur) - vm, "address-space limit (ulimit -v)");
  return best;
}

std::string format_bytes(double b) {
  char buf[64];
  if (b >= 1e12) std::snprintf(buf, sizeof buf, "%.3g TB", b / 1e12);
  else if (b >= 1e9) std::snprintf(buf, sizeof buf, "%.3g GB", b / 1e9);
  else std::snprintf(buf, sizeof buf, "%.3g MB", b / 1e6);
  return buf;
}

void check_memory(const MemoryEstimate& need, const std::string& what, const std::string& override_flag) {
  const AvailableMemory have = available_memory();
  if (have.source == "unknown" || need.total() <= have.bytes) return;
  throw Error(what + " needs about " + format_bytes(need.total()) + " (weights " + format_bytes(need.weights) +
              ", gradients " + format_bytes(need.gradients) + ", optimizer " + format_bytes(need.optimizer) +
              ", activations " + format_bytes(need.activations) + "), " + format_bytes(have.bytes) +
              " available (" + have.source + "); use a smaller model, batch or sequence, or " + override_flag +
              " to try anyway");
}

std::string allocation_failure_message(const std::exception& e) {
  if (dynamic_cast<const std::bad_alloc*>(&e)) return "out of memory (" + std::string(e.what()) + ")";
  const auto* c10e = dynamic_cast<const c10::Error*>(&e);
  if (!c10e) return "";
  std::string msg = c10e->what_without_backtrace();
  const size_t nl = msg.find('\n');
  if (nl != std::string::npos) msg = msg.substr(0, nl);
  // "[enforce fail at alloc_cpu.cpp:75] err == 0. DefaultCPUAllocator: ...": the allocator's own words.
  const size_t allocator = msg.find("DefaultCPUAllocator: ");
  if (allocator != std::string::npos) msg = msg.substr(allocator);
  for (const char* sign : {"can't allocate memory", "out of memory", "Storage size calculation overflowed",
                           "storage size calculation overflowed"})
    if (msg.find(sign) != std::string::npos)
      return "out of memory: " + msg + " (the model, batch or sequence is too large for this machine)";
  return "";
}

}  // namespace gqe
