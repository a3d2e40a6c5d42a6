// The C interface of libgqe_spm.so, the SentencePiece shim (src/spm_shim/gqe_spm.cpp).
//
// Why a separate library: Debian's libsentencepiece bundles (and exports) its own protobuf-lite, which
// clashes with the libprotobuf that libtorch loads; linking both into one process segfaults during
// protobuf's static initialisation. So neither `gqe` nor libgqe links SentencePiece: libgqe dlopen()s this
// shim with RTLD_LOCAL | RTLD_DEEPBIND, which makes the shim and its SentencePiece resolve their own
// protobuf symbols first. Only plain C types cross the boundary (no std::string, no protobuf).
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GQE_SPM_ABI_VERSION 2

typedef struct gqe_spm gqe_spm;  // a loaded SentencePiece model (opaque)

int gqe_spm_abi_version(void);

// Trains a model. `options` holds SentencePiece trainer flags as "key=value" lines separated by '\n'
// (input=..., model_prefix=..., vocab_size=..., model_type=bpe, ...). Returns 0 on success; otherwise
// non-zero with a message in err (NUL-terminated, truncated to err_cap).
int gqe_spm_train(const char* options, char* err, size_t err_cap);

// Loads a model from the bytes of a .model file (a serialized ModelProto); NULL on failure with a message
// in err. There is no load from a path: libgqe reads and checks the file (SentencePiece trusts offsets
// inside it), then hands the library exactly the bytes it checked.
gqe_spm* gqe_spm_load_bytes(const char* data, size_t len, char* err, size_t err_cap);
void gqe_spm_free(gqe_spm* m);

// Encodes `len` bytes of UTF-8 text into ids. Returns the number of ids; when it exceeds `cap` only the first
// `cap` were written and the caller retries with a larger buffer. Returns -1 on error (message in err).
int64_t gqe_spm_encode(const gqe_spm* m, const char* text, size_t len, int32_t* ids, int64_t cap, char* err,
                       size_t err_cap);

// Decodes ids into text. Returns the byte length; when it exceeds `cap` only `cap` bytes were written and the
// caller retries. Ids outside [0, piece_size) are an error (-1).
int64_t gqe_spm_decode(const gqe_spm* m, const int32_t* ids, size_t n, char* out, int64_t cap, char* err,
                       size_t err_cap);

int32_t gqe_spm_piece_size(const gqe_spm* m);
int32_t gqe_spm_eos_id(const gqe_spm* m);  // -1: none
int32_t gqe_spm_bos_id(const gqe_spm* m);
int32_t gqe_spm_unk_id(const gqe_spm* m);

#ifdef __cplusplus
}
#endif
