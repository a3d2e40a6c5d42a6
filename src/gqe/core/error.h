// Errors gqe raises for bad input: each message names the file/field/value and what was expected.
#pragma once
#include <stdexcept>
#include <string>

namespace gqe {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct ConfigError : Error {
  using Error::Error;
};
struct FormatError : Error {  // malformed or truncated files (checkpoints, shards)
  using Error::Error;
};

}  // namespace gqe
