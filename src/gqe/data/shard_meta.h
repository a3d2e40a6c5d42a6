// The meta.json `gqe data prepare` writes beside its shards, as the readers of shards see it: which
// tokenizer wrote them. Token ids mean something only to the tokenizer that made them: shards read with
// another one (or with the same file retrained in place, which keeps its path and often its vocabulary
// size) train and evaluate on garbage, and nothing else would notice.
#pragma once
#include <iostream>
#include <string>
#include <vector>

#include "gqe/tokenizers/run_tokenizer.h"

namespace gqe {

// Checks every path in `shard_paths` that the meta.json in its folder lists (field train.shards or
// val.shards) against the tokenizer `files`: the meta.json's field `tokenizer_sha256` must equal
// tokenizer_sha256(files) (data/content_identity.h). Throws gqe::Error naming the meta.json, the
// tokenizer it records, this tokenizer's files and what to do when they differ; gqe::FormatError naming
// the file and field when a meta.json is not valid JSON or a field has the wrong type. A meta.json
// without the field (written by a gqe from before it was recorded) is accepted with a one-line warning on
// `warn` (when not null). Shards that no meta.json lists (llm.c shards, files copied in) are not checked.
void check_shards_tokenizer(const std::vector<std::string>& shard_paths, const TokenizerFiles& files,
                            std::ostream* warn = &std::cerr);

// The tokenizer a set of gqe token shards was written with, from meta.json beside the first shard
// (`gqe data prepare` writes it); "" when there is none or its file no longer exists. meta.json records
// the path as `data prepare` was given it, often relative to the folder it ran in: a relative path is
// looked up from the working directory, then from the shards' folder and each folder above it, so a run
// started anywhere finds it. When meta.json names a tokenizer that none of these hold, *missing (when not
// null) gets the recorded name and the places searched.
std::string tokenizer_of_shards(const std::vector<std::string>& shard_paths, std::string* missing = nullptr);

}  // namespace gqe
