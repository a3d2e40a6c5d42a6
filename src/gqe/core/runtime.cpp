#include "gqe/core/runtime.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <malloc.h>
#include <torch/version.h>

#include <algorithm>
#include <cstdlib>
#include <chrono>
#include <fstream>
#include <thread>
#include <vector>

#include "gqe/core/error.h"
#include "gqe/core/machine.h"

namespace gqe {
namespace {
std::string g_allocator = "system malloc";
}

std::string configure_allocator() {
  const char* env = std::getenv("GQE_MALLOC");
  if (env && std::string(env) == "system") return g_allocator = "system malloc (GQE_MALLOC=system)";
#if defined(__GLIBC__)
  // Large blocks from the heap instead of fresh mmaps, and freed memory kept (not trimmed) for reuse.
  if (mallopt(M_MMAP_MAX, 0) == 1 && mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1)
    g_allocator = "glibc malloc, freed memory kept for reuse";
#endif
  return g_allocator;
}

int configure_threads(int n) {
  if (n <= 0) n = int(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(n);
  // OpenBLAS keeps its own pool; libtorch 1.13 does not forward the count to it.
  using SetFn = void (*)(int);
  if (auto fn = reinterpret_cast<SetFn>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) fn(n);
  return at::get_num_threads();
}

std::string loaded_blas_library() {
  void* sym = ::dlsym(RTLD_DEFAULT, "sgemm_");
  Dl_info info{};
  std::string lib = sym && ::dladdr(sym, &info) && info.dli_fname ? info.dli_fname : "unknown";
  // libblas.so.3 is a Debian alternative: resolve the symlink to name the real implementation.
  if (char* real = ::realpath(lib.c_str(), nullptr)) {
    if (lib != real) lib += " -> " + std::string(real);
    std::free(real);
  }
  std::ifstream maps("/proc/self/maps");
  std::string line;
  bool openblas = false;
  while (std::getline(maps, line))
    if (line.find("openblas") != std::string::npos) openblas = true;
  if (openblas && lib.find("openblas") == std::string::npos) lib += " (openblas mapped)";
  return lib;
}

double measure_matmul_gflops(int n, int repeats) {
  at::Tensor a = at::randn({n, n}), b = at::randn({n, n});
  at::matmul(a, b);  // warm-up
  std::vector<double> t;
  for (int i = 0; i < repeats; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    at::Tensor c = at::matmul(a, b);
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return 2.0 * n * double(n) * n / t[t.size() / 2] / 1e9;
}

std::string describe_runtime() {
  return "cpu=\"" + cpu_model_name() + "\" threads=" + std::to_string(at::get_num_threads()) + " blas=" + loaded_blas_library() +
         " malloc=\"" + g_allocator + "\" libtorch=" + TORCH_VERSION;
}

c10::Device parse_device(const std::string& name, const std::string& what, int local_rank) {
  c10::Device device(c10::kCPU);
  try {
    device = c10::Device(name);
  } catch (const std::exception&) {
    throw Error(what + " '" + name + "': expected cpu or cuda[:N]");
  }
  if (!device.is_cpu() && !device.is_cuda()) throw Error(what + " '" + name + "': expected cpu or cuda[:N]");
  if (device.is_cuda()) {
    if (!at::hasCUDA())
      throw Error(what + " " + name + ": no usable CUDA device (this libtorch has no CUDA support, or no GPU and " +
                  "driver were found)");
    if (!device.has_index()) device = c10::Device(c10::kCUDA, c10::DeviceIndex(local_rank));
  }
  return device;
}

}  // namespace gqe
