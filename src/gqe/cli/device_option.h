// --device for the commands that run a model: cpu (the default) or cuda[:N].
#pragma once
#include <c10/core/Device.h>

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

}  // namespace gqe::cli
