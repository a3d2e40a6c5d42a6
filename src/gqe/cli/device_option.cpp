#include "gqe/cli/device_option.h"

#include <ATen/Context.h>

#include "gqe/core/error.h"

namespace gqe::cli {

c10::Device device_option(const Args& args, const std::string& command, int local_rank) {
  const std::string name = args.get("device", "cpu");
  c10::Device device(c10::kCPU);
  try {
    device = c10::Device(name);
  } catch (const std::exception&) {
    throw Error("gqe " + command + ": --device '" + name + "': expected cpu or cuda[:N]");
  }
  if (!device.is_cpu() && !device.is_cuda())
    throw Error("gqe " + command + ": --device '" + name + "': expected cpu or cuda[:N]");
  if (device.is_cuda()) {
    if (!at::hasCUDA())
      throw Error("gqe " + command + ": --device " + name + ": no usable CUDA device (this libtorch has no CUDA " +
                  "support, or no GPU and driver were found)");
    if (!device.has_index()) device = c10::Device(c10::kCUDA, c10::DeviceIndex(local_rank));
  }
  return device;
}

}  // namespace gqe::cli
