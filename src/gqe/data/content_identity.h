// Content identities: what a tokenizer or a set of data files holds, as SHA-256. A path, a name or a size
// says nothing about the bytes: a tokenizer retrained in place keeps its path (and often its vocabulary
// size), and another corpus cut to the same size keeps the size.
#pragma once
#include <string>
#include <vector>

#include "gqe/tokenizers/run_tokenizer.h"

namespace gqe {

// The tokenizer's identity: the SHA-256 of each of its files in TokenizerFiles order (tokenizer.json, a
// SentencePiece .model, or vocab.json then merges.txt), space-separated; "bytes" for the byte tokenizer,
// which has no files. `gqe data prepare` records it in meta.json; shard readers, the ranks of a job and
// a resumed run compare it. Throws gqe::Error naming a file that cannot be read.
std::string tokenizer_sha256(const TokenizerFiles& files);

// "bytes", or the tokenizer's files joined by " + ", for messages.
std::string describe_tokenizer_files(const TokenizerFiles& files);

// The identity of data files (a training text, token shards), in order: the SHA-256 of a list with one
// entry per file. A gqe shard's entry is its 64-byte header, which holds a checksum of its tokens that
// opening the shard verifies (data/shard.h), so that start-up does not read a large corpus a second
// time; any other file's (a text, an llm.c shard, which has no checksum) is the SHA-256 of its bytes.
// Throws gqe::Error naming a file that cannot be read.
std::string data_sha256(const std::vector<std::string>& paths);

}  // namespace gqe
