// SHA-256 (FIPS 180-4) of a file, for identifying the checkpoint an evaluation ran on. Torch-free.
#pragma once
#include <string>

namespace gqe::eval {

std::string sha256_hex(const std::string& bytes);
std::string sha256_file(const std::string& path);  // throws gqe::Error when unreadable

}  // namespace gqe::eval
