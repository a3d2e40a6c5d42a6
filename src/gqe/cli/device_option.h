// --device for the commands that run a model: cpu (the default) or cuda[:N]; --dtype, the precision of CPU
// attention for inference.
#pragma once
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <string>

#include "gqe/cli/args.h"

namespace gqe::cli {

// The device --device names. "cuda" without an index is cuda:local_rank (one GPU per rank under torchrun).
// Errors (one line, naming the command and the value): not cpu or cuda[:N]; CUDA asked for but this build
// or machine has none.
c10::Device device_option(const Args& args, const std::string& command, int local_rank = 0);

// The help line every such command prints for it.
inline const char* device_option_help() {
  return "  --device cpu|cuda[:N] (cpu; cuda = cuda:LOCAL_RANK)\n";
}

// --dtype auto|bf16|fp32 (default fp32), for inference on the CPU: the KV cache's dtype and the attention
// kernels that read it (attention/attention_dtype.h); set for the whole process. auto: bf16 where the CPU
// has AVX512-BF16. Errors (one line): an unknown value; bf16 on a CPU without AVX512-BF16; bf16 with a
// device other than the CPU (the CUDA path chooses its own precision). Returns the dtype in effect.
c10::ScalarType apply_dtype_option(const Args& args, const c10::Device& device);

inline const char* dtype_option_help() {
  return "  --dtype auto|bf16|fp32 (fp32) CPU attention for inference: the KV cache and the attention kernels\n"
         "                  in bf16 (AVX512-BF16, fp32 accumulation) or fp32; auto = bf16 where the CPU has it.\n"
         "                  Weights and the projections stay fp32 (bf16 weights are a later step)\n";
}

}  // namespace gqe::cli
