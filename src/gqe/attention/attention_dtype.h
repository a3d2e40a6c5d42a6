// The precision of CPU attention for inference (`--dtype auto|bf16|fp32`): the KV cache's storage dtype and,
// with it, the kernels that read it. bf16 halves the cache's bytes (decode is bound by reading them) and
// doubles the dot-product rate on CPUs with AVX512-BF16; it is chosen by the CPU's features at run time.
// The model's weights and activations stay fp32 in this step (bf16 projection weights are a later one).
//
// One process-wide setting, made once by the command from its flag, so that generation, evaluation and the
// benchmark need no dtype threaded through their calls. With bf16, for fp32 CPU models without autograd:
// every KV cache created afterwards stores bf16 (kv_cache.h asks when it allocates; each value rounded to
// nearest even), and attention without a cache rounds its K/V to bf16 the same way before the bf16 kernels
// read them (attention_path.cpp), so a prefill sees what a cache would hold. Training (autograd) stays fp32;
// caches on other devices or of other dtypes keep their input's dtype.
#pragma once
#include <ATen/ATen.h>

#include "gqe/core/enum_names.h"

namespace gqe {

enum class AttentionDtype { auto_, bf16, fp32 };
GQE_ENUM_NAMES(AttentionDtype, "attention dtype", {AttentionDtype::auto_, "auto"}, {AttentionDtype::bf16, "bf16"},
               {AttentionDtype::fp32, "fp32"})

// Whether this CPU runs the bf16 attention kernels (AVX512-BF16; kernels/bf16_avx512.h).
bool cpu_has_bf16_attention();

// The dtype a request stands for on this CPU: auto -> bf16 where the CPU has AVX512-BF16, else fp32;
// bf16 on a CPU without it -> Error naming the missing instructions.
at::ScalarType resolve_attention_dtype(AttentionDtype requested);

// The dtype of CPU attention's K/V for fp32 models from now on: at::kFloat (the default) or at::kBFloat16.
at::ScalarType cpu_attention_dtype();
void set_cpu_attention_dtype(at::ScalarType dtype);

// Sets it for its lifetime (tests, and the benchmark's fp32 and bf16 rows side by side).
class CpuAttentionDtypeScope {
 public:
  explicit CpuAttentionDtypeScope(at::ScalarType dtype) : previous_(cpu_attention_dtype()) {
    set_cpu_attention_dtype(dtype);
  }
  ~CpuAttentionDtypeScope() { set_cpu_attention_dtype(previous_); }
  CpuAttentionDtypeScope(const CpuAttentionDtypeScope&) = delete;
  CpuAttentionDtypeScope& operator=(const CpuAttentionDtypeScope&) = delete;

 private:
  at::ScalarType previous_;
};

}  // namespace gqe
