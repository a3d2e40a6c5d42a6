#include "gqe/cli/device_option.h"

#include "gqe/core/runtime.h"

namespace gqe::cli {

c10::Device device_option(const Args& args, const std::string& command, int local_rank) {
  return parse_device(args.get("device", "cpu"), "gqe " + command + ": --device", local_rank);
}

}  // namespace gqe::cli
