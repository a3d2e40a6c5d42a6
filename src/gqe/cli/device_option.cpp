#include "gqe/cli/device_option.h"

#include "gqe/attention/attention_dtype.h"
#include "gqe/core/error.h"
#include "gqe/core/runtime.h"

namespace gqe::cli {

c10::Device device_option(const Args& args, const std::string& command, int local_rank) {
  return parse_device(args.get("device", "cpu"), "gqe " + command + ": --device", local_rank);
}

c10::ScalarType apply_dtype_option(const Args& args, const c10::Device& device) {
  const AttentionDtype requested = args.get_enum("dtype", AttentionDtype::fp32);
  if (requested == AttentionDtype::fp32) {
    set_cpu_attention_dtype(at::kFloat);
    return at::kFloat;
  }
  if (!device.is_cpu()) {
    if (requested == AttentionDtype::auto_) return at::kFloat;  // nothing to choose off the CPU
    throw Error("--dtype bf16 is for the CPU; on " + device.str() +
                " the CUDA path chooses its own precision (bf16 autocast)");
  }
  const at::ScalarType dtype = resolve_attention_dtype(requested);
  set_cpu_attention_dtype(dtype);
  return dtype;
}

}  // namespace gqe::cli
