// SHA-256 (OpenSSL's libcrypto) of bytes or a file: content identities of checkpoints, evaluation data,
// tokenizers and training data (a name or a size says nothing about what a file holds).
#pragma once
#include <string>

namespace gqe {

std::string sha256_hex(const std::string& bytes);
std::string sha256_file(const std::string& path);  // throws gqe::Error when unreadable

}  // namespace gqe
