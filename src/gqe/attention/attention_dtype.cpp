#include "gqe/attention/attention_dtype.h"

#include <atomic>

#include "gqe/core/error.h"
#include "gqe/kernels/bf16_avx512.h"

namespace gqe {
namespace {

std::atomic<at::ScalarType>& kv_dtype() {
  static std::atomic<at::ScalarType> dtype{at::kFloat};
  return dtype;
}

}  // namespace

bool cpu_has_bf16_attention() { return kernels::bf16::cpu_has_avx512_bf16(); }

at::ScalarType resolve_attention_dtype(AttentionDtype requested) {
  switch (requested) {
    case AttentionDtype::fp32: return at::kFloat;
    case AttentionDtype::auto_: return cpu_has_bf16_attention() ? at::kBFloat16 : at::kFloat;
    case AttentionDtype::bf16:
      if (!cpu_has_bf16_attention())
        throw Error("--dtype bf16: this CPU has no AVX512-BF16 (vdpbf16ps), which gqe's bf16 attention needs; "
                    "use --dtype fp32 or auto");
      return at::kBFloat16;
  }
  return at::kFloat;
}

at::ScalarType cpu_attention_dtype() { return kv_dtype().load(); }

void set_cpu_attention_dtype(at::ScalarType dtype) {
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kBFloat16, "CPU attention dtype: fp32 or bf16, got ", dtype);
  kv_dtype().store(dtype);
}

}  // namespace gqe
