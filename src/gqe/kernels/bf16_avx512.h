// The bf16 attention kernels' inner loops for CPUs with AVX512-BF16 (`vdpbf16ps`: 32 bf16 products summed
// pairwise into 16 fp32 lanes), and the CPU check that guards them.
//
// Torch-free on purpose: bf16_avx512.cpp compiles these functions for AVX-512 + BF16 through per-function
// target attributes, whatever the build's -march, so that a portable build carries them too. Any inline
// function or template it shared with the rest of the program (ATen's headers, the standard library) could
// be emitted there with AVX-512 instructions and picked by the linker for every caller, which would fault on
// a CPU without them; so that file includes nothing but the intrinsics and this header.
//
// Callers (gqe_decode.cpp, flash_attention.cpp) call them only when cpu_has_avx512_bf16() says so; elsewhere
// bf16 K/V are widened to fp32 and the fp32 kernels run.
//
// bf16 values are uint16_t bit patterns. Rounding from fp32 is to nearest, ties to even, everywhere
// (to_bf16 below, libtorch's conversions, and `vcvtne2ps2bf16` for the probabilities).
#pragma once
#include <cstdint>
#include <cstring>

namespace gqe::kernels::bf16 {

// Whether this CPU and OS run AVX512F/BW/VL + AVX512-BF16 code (cpuid and the OS's saved register state).
// GQE_CPU_BF16=0 in the environment makes it answer false, so that the fp32 fallback and the refusal of an
// explicit bf16 request can be tested on a machine that has the instructions. Read once per process.
bool cpu_has_avx512_bf16();

// fp32 -> bf16, round to nearest even (NaN stays a quiet NaN).
inline uint16_t to_bf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40u);
  return uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
inline float from_bf16(uint16_t h) {
  const uint32_t u = uint32_t(h) << 16;
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}

// d_h rounded up to whole 32-element bf16 vectors (the padding the packed queries carry, as zeros).
inline int64_t padded_head_dim(int64_t dh) { return (dh + 31) / 32 * 32; }

// One work item of the decode step (gqe_decode.h): keys [c0, c1) of one sequence, at most 256 of them.
struct DecodeChunk {
  const uint16_t* q;  // [G][R][padded_head_dim(dh)] bf16 queries, pre-scaled; zero past d_h. R = M + shared
  const uint16_t* k;  // this sequence's keys: position t, head g at k + t*st + g*sg, d_h contiguous
  const uint16_t* v;  // values, same strides
  int64_t st, sg;
  int64_t G, M, dh;
  bool shared;  // row G*M is the shared head: its scores summed over the groups, its output too
  int64_t c0, c1;
  int64_t len;  // the sequence's keys (c1 <= len): rows up to here may be prefetched
};

// Floats of scratch decode_chunk needs (64-byte aligned, one per worker).
int64_t decode_scratch_floats(int64_t rows, int64_t dh);

// The chunk's online softmax: O [rows][dh] unnormalised output, m [rows] running max, l [rows] running sum
// (of the bf16-rounded probabilities), rows = G*M (+1 shared). Scores come from the pre-scaled queries.
void decode_chunk(const DecodeChunk& a, float* O, float* m, float* l, float* scratch);

// One query block of causal flash attention (flash_attention.h) from bf16 K/V: R rows (positions x the M
// heads of one group, position-major: row r at position first_pos + r / M) against the keys [0, first_pos +
// R / M) of packed tiles of kFlashKeyTile keys. Layouts, chosen so that one `vdpbf16ps` with a broadcast
// 32-bit pair multiplies 16 outputs at once:
//   q:  [R][padded d_h] bf16, pre-scaled, zero past d_h         (pairs along d_h)
//   K tile: [padded d_h / 2][kFlashKeyTile][2]: element (j, t, e) = k_t[2j + e]   (Q K^T: lanes are keys)
//   V tile: [kFlashKeyTile / 2][padded d_h][2]: element (u, d, e) = v_{2u+e}[d]  (P V: lanes are dims)
// Keys past the last one and dims past d_h are packed as zeros.
constexpr int64_t kFlashKeyTile = 64;
inline int64_t flash_k_tile_elems(int64_t dh) { return padded_head_dim(dh) * kFlashKeyTile; }
inline int64_t flash_v_tile_elems(int64_t dh) { return padded_head_dim(dh) * kFlashKeyTile; }

struct FlashBlock {
  const uint16_t* q;
  const uint16_t* k_tiles;  // tile i (keys [i * kFlashKeyTile, ...)) at k_tiles + i * k_tile_stride
  const uint16_t* v_tiles;  // tile i at v_tiles + i * v_tile_stride
  int64_t k_tile_stride, v_tile_stride;
  int64_t R, M, dh, first_pos;
};

int64_t flash_scratch_floats(int64_t R, int64_t dh);

// O [R][padded d_h] unnormalised output, m [R] row max, l [R] row sum (of the bf16-rounded probabilities).
void flash_block(const FlashBlock& a, float* O, float* m, float* l, float* scratch);

}  // namespace gqe::kernels::bf16
