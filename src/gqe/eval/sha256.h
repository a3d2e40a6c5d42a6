// SHA-256 (OpenSSL's libcrypto) of bytes or a file, for identifying the checkpoint an evaluation ran on.
#pragma once
#include <string>

namespace gqe::eval {

std::string sha256_hex(const std::string& bytes);
std::string sha256_file(const std::string& path);  // throws gqe::Error when unreadable

}  // namespace gqe::eval
