#include "gqe/kernels/flash_attention.h"

#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>

#include "gqe/kernels/bf16_avx512.h"
#include "gqe/kernels/cpu_check.h"
#include "gqe/kernels/micro_gemm.h"
#include "gqe/kernels/parallel_items.h"
#include "gqe/kernels/simd.h"

namespace gqe::kernels {
namespace {

constexpr int64_t kKeyTile = 64;        // keys per K/V tile (a multiple of simd::kW)
constexpr int64_t kRowsPerBlock = 128;  // target query rows (positions x heads of a group) per block
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// 64-byte aligned float scratch, owned by one worker.
struct Scratch {
  std::unique_ptr<float, decltype(&std::free)> mem{nullptr, &std::free};
  int64_t used = 0, cap = 0;
  explicit Scratch(int64_t floats) : cap(round_up(std::max<int64_t>(floats, 16), 16)) {
    mem.reset(static_cast<float*>(std::aligned_alloc(64, size_t(cap) * sizeof(float))));
    TORCH_CHECK(mem, "flash attention: cannot allocate ", cap * 4, " bytes of scratch");
  }
  float* take(int64_t n) {  // sub-buffers stay 64-byte aligned
    float* p = mem.get() + used;
    used += round_up(n, 16);
    TORCH_CHECK(used <= cap, "flash attention: scratch overflow");
    return p;
  }
};

struct Shape {
  int64_t B, Tq, Tk, Hq, G, M, dh, dhp, q_start, Br, nqb;
  float scale;
};

// bf16_kv: k and v may be bf16 (the forward's bf16 path); the backward takes fp32 only.
Shape check_shapes(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t q_start, bool bf16_kv = false) {
  check_on_cpu("flash_attention", "q", q), check_on_cpu("flash_attention", "k", k), check_on_cpu("flash_attention", "v", v);
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, "flash_attention: expected q [B,Tq,Hq,d_h], k/v [B,Tk,G,d_h]");
  const bool kv_ok = k.scalar_type() == v.scalar_type() &&
                     (k.scalar_type() == at::kFloat || (bf16_kv && k.scalar_type() == at::kBFloat16));
  TORCH_CHECK(q.scalar_type() == at::kFloat && kv_ok, "flash_attention: fp32 tensors expected",
              bf16_kv ? " (k and v: both fp32 or both bf16)" : "", ", got ", q.scalar_type(), ", ", k.scalar_type(),
              ", ", v.scalar_type());
  TORCH_CHECK(k.sizes() == v.sizes(), "flash_attention: k and v shapes differ: ", k.sizes(), " vs ", v.sizes());
  TORCH_CHECK(q.size(0) == k.size(0) && q.size(3) == k.size(3), "flash_attention: q ", q.sizes(), " does not match k ",
              k.sizes());
  TORCH_CHECK(k.size(2) > 0 && q.size(2) % k.size(2) == 0, "flash_attention: query heads (", q.size(2),
              ") must be a multiple of KV heads (", k.size(2), ")");
  TORCH_CHECK(q_start >= 0 && q_start + q.size(1) <= k.size(1), "flash_attention: queries at ", q_start, "..",
              q_start + q.size(1) - 1, " reach past the last key (", k.size(1), " keys)");
  Shape s;
  s.B = q.size(0), s.Tq = q.size(1), s.Tk = k.size(1), s.Hq = q.size(2), s.G = k.size(2);
  s.M = s.Hq / s.G, s.dh = q.size(3), s.dhp = round_up(s.dh, simd::kW), s.q_start = q_start;
  s.Br = std::max<int64_t>(1, kRowsPerBlock / s.M);
  s.nqb = (s.Tq + s.Br - 1) / s.Br;
  s.scale = float(1.0 / std::sqrt(double(s.dh)));
  return s;
}

// Copies rows of a (position, head) block of a [B, T, H, d_h] tensor into dst [rows x dhp], times `mul`,
// zero-padding columns d_h..dhp. Rows are position-major: row r = t * M + h, tensor head g*M + h.
void pack_rows(const float* src, const Shape& s, int64_t T, int64_t H, int64_t b, int64_t g, int64_t t0, int64_t nt,
               float mul, float* dst) {
  for (int64_t t = 0; t < nt; ++t) {
    const float* row = src + ((b * T + t0 + t) * H + g * s.M) * s.dh;
    for (int64_t h = 0; h < s.M; ++h) {
      float* d = dst + (t * s.M + h) * s.dhp;
      for (int64_t j = 0; j < s.dh; ++j) d[j] = row[h * s.dh + j] * mul;
      for (int64_t j = s.dh; j < s.dhp; ++j) d[j] = 0.f;
    }
  }
}

// Key tile [k0, k0+nk) of group g: transposed [d_h x kKeyTile] (for Q K^T) and/or row-major
// [kKeyTile x dhp] (for P V); columns/rows past nk are zero so that 0-probability entries stay 0.
void pack_kv_transposed(const float* src, const Shape& s, int64_t b, int64_t g, int64_t k0, int64_t nk, float* dst) {
  for (int64_t d = 0; d < s.dh; ++d) std::memset(dst + d * kKeyTile + nk, 0, sizeof(float) * (kKeyTile - nk));
  for (int64_t c = 0; c < nk; ++c) {
    const float* row = src + ((b * s.Tk + k0 + c) * s.G + g) * s.dh;
    for (int64_t d = 0; d < s.dh; ++d) dst[d * kKeyTile + c] = row[d];
  }
}
void pack_kv_rows(const float* src, const Shape& s, int64_t b, int64_t g, int64_t k0, int64_t nk, float* dst) {
  for (int64_t c = 0; c < kKeyTile; ++c) {
    float* d = dst + c * s.dhp;
    if (c < nk) {
      std::memcpy(d, src + ((b * s.Tk + k0 + c) * s.G + g) * s.dh, sizeof(float) * s.dh);
      std::memset(d + s.dh, 0, sizeof(float) * (s.dhp - s.dh));
    } else {
      std::memset(d, 0, sizeof(float) * s.dhp);
    }
  }
}

// Number of keys of tile k0 that a query at position pos may see (0..kKeyTile).
inline int64_t visible(int64_t pos, int64_t k0) { return std::clamp<int64_t>(pos + 1 - k0, 0, kKeyTile); }

inline void fill_masked(float* row, int64_t nv) {
  for (int64_t c = nv; c < kKeyTile; ++c) row[c] = kNegInf;
}

// The forward from bf16 K/V on a CPU with AVX512-BF16 (bf16_avx512.h): K and V of every (b, g) packed once
// into pair-interleaved tiles, queries rounded to bf16 after scaling, probabilities rounded to bf16 for P V,
// fp32 accumulation and softmax. Same blocks, causal bounds and work items as the fp32 forward.
FlashForward forward_bf16(const at::Tensor& q_in, const at::Tensor& k_in, const at::Tensor& v_in, int64_t q_start) {
  const Shape s = check_shapes(q_in, k_in, v_in, q_start, true);
  const at::Tensor q = q_in.contiguous(), k = k_in.contiguous(), v = v_in.contiguous();
  at::Tensor out = at::empty_like(q, at::MemoryFormat::Contiguous);
  at::Tensor lse = at::empty({s.B, s.Tq, s.Hq}, q.options());
  const int64_t dhp = bf16::padded_head_dim(s.dh), kT = bf16::kFlashKeyTile;
  const int64_t key_end_all = s.q_start + s.Tq, ntiles = (key_end_all + kT - 1) / kT;
  const int64_t kstride = bf16::flash_k_tile_elems(s.dh), vstride = bf16::flash_v_tile_elems(s.dh);
  at::Tensor kt_all = at::empty({s.B * s.G * ntiles * kstride}, q.options().dtype(at::kBFloat16));
  at::Tensor vt_all = at::empty({s.B * s.G * ntiles * vstride}, q.options().dtype(at::kBFloat16));
  const auto* kp = reinterpret_cast<const uint16_t*>(k.data_ptr<at::BFloat16>());
  const auto* vp = reinterpret_cast<const uint16_t*>(v.data_ptr<at::BFloat16>());
  auto* ktp = reinterpret_cast<uint16_t*>(kt_all.data_ptr<at::BFloat16>());
  auto* vtp = reinterpret_cast<uint16_t*>(vt_all.data_ptr<at::BFloat16>());
  at::parallel_for(0, s.B * s.G * ntiles, 1, [&](int64_t begin, int64_t end) {
    for (int64_t it = begin; it < end; ++it) {  // tile it = (b, g, tile)
      const int64_t bg = it / ntiles, k0 = (it % ntiles) * kT, b = bg / s.G, g = bg % s.G;
      const int64_t nk = std::min(kT, key_end_all - k0);
      uint16_t* kd = ktp + it * kstride;  // [dhp/2][kT][2]
      uint16_t* vd = vtp + it * vstride;  // [kT/2][dhp][2]
      std::fill(kd, kd + kstride, uint16_t(0));
      std::fill(vd, vd + vstride, uint16_t(0));
      for (int64_t c = 0; c < nk; ++c) {
        const uint16_t* kr = kp + ((b * s.Tk + k0 + c) * s.G + g) * s.dh;
        const uint16_t* vr = vp + ((b * s.Tk + k0 + c) * s.G + g) * s.dh;
        for (int64_t d = 0; d < s.dh; ++d) {
          kd[((d / 2) * kT + c) * 2 + d % 2] = kr[d];
          vd[((c / 2) * dhp + d) * 2 + c % 2] = vr[d];
        }
      }
    }
  });
  const int64_t rmax = s.Br * s.M;
  const int64_t scratch = rmax * dhp / 2 + rmax * dhp + 2 * rmax + bf16::flash_scratch_floats(rmax, s.dh) + 64;
  const float* qp = q.data_ptr<float>();
  float *op = out.data_ptr<float>(), *lp = lse.data_ptr<float>();
  const int64_t per_block = s.B * s.G;
  std::vector<std::unique_ptr<Scratch>> scratches(std::max(1, at::get_num_threads()));
  parallel_items(s.nqb * per_block, [&](int64_t item, int64_t slot) {
    auto& sc = scratches[slot];
    if (!sc) sc = std::make_unique<Scratch>(scratch);
    sc->used = 0;
    const int64_t qb = s.nqb - 1 - item / per_block, b = (item % per_block) / s.G, g = item % s.G;
    const int64_t t0 = qb * s.Br, nt = std::min(s.Br, s.Tq - t0), R = nt * s.M;
    auto* Q = reinterpret_cast<uint16_t*>(sc->take(rmax * dhp / 2));
    float* O = sc->take(rmax * dhp);
    float* m = sc->take(rmax);
    float* l = sc->take(rmax);
    float* work = sc->take(bf16::flash_scratch_floats(rmax, s.dh));
    for (int64_t t = 0; t < nt; ++t)
      for (int64_t h = 0; h < s.M; ++h) {
        const float* row = qp + ((b * s.Tq + t0 + t) * s.Hq + g * s.M + h) * s.dh;
        uint16_t* d = Q + (t * s.M + h) * dhp;
        for (int64_t j = 0; j < s.dh; ++j) d[j] = bf16::to_bf16(row[j] * s.scale);  // scores come out scaled
        for (int64_t j = s.dh; j < dhp; ++j) d[j] = 0;
      }
    bf16::FlashBlock a;
    a.q = Q, a.R = R, a.M = s.M, a.dh = s.dh, a.first_pos = s.q_start + t0;
    a.k_tiles = ktp + (b * s.G + g) * ntiles * kstride, a.k_tile_stride = kstride;
    a.v_tiles = vtp + (b * s.G + g) * ntiles * vstride, a.v_tile_stride = vstride;
    bf16::flash_block(a, O, m, l, work);
    for (int64_t r = 0; r < R; ++r) {
      const int64_t t = t0 + r / s.M, h = g * s.M + r % s.M;
      float* dst = op + ((b * s.Tq + t) * s.Hq + h) * s.dh;
      const float inv = 1.f / l[r];
      for (int64_t j = 0; j < s.dh; ++j) dst[j] = O[r * dhp + j] * inv;
      lp[(b * s.Tq + t) * s.Hq + h] = m[r] + std::log(l[r]);
    }
  });
  return {out, lse};
}

}  // namespace

FlashForward flash_attention_forward(const at::Tensor& q_in, const at::Tensor& k_in, const at::Tensor& v_in,
                                     int64_t q_start) {
  if (k_in.scalar_type() == at::kBFloat16 || v_in.scalar_type() == at::kBFloat16) {
    // bf16 K/V (a bf16 KV cache): the AVX512-BF16 kernel where the CPU has it, else the fp32 kernel on the
    // widened values (exact: every bf16 value is an fp32 value).
    check_shapes(q_in, k_in, v_in, q_start, true);
    if (bf16::cpu_has_avx512_bf16()) return forward_bf16(q_in, k_in, v_in, q_start);
    return flash_attention_forward(q_in, k_in.to(at::kFloat), v_in.to(at::kFloat), q_start);
  }
  const Shape s = check_shapes(q_in, k_in, v_in, q_start);
  at::Tensor q = q_in.contiguous(), k = k_in.contiguous(), v = v_in.contiguous();
  at::Tensor out = at::empty_like(q, at::MemoryFormat::Contiguous);
  at::Tensor lse = at::empty({s.B, s.Tq, s.Hq}, q.options());
  const float *qp = q.data_ptr<float>(), *kp = k.data_ptr<float>(), *vp = v.data_ptr<float>();
  float *op = out.data_ptr<float>(), *lp = lse.data_ptr<float>();
  const int64_t rmax = s.Br * s.M;
  const int64_t scratch = 3 * rmax * s.dhp + rmax * kKeyTile + s.dh * kKeyTile + kKeyTile * s.dhp + 64 * 16;

  // With several query blocks per group, K and V of every (b, g) are packed once and shared by all of them:
  // K tile by tile, each tile transposed [d_h x kKeyTile] and contiguous (one [d_h x Tkp] block would put
  // the product's inner steps Tkp floats apart: at 4k keys a 16 KB stride, every load in the same L1 set,
  // and Q K^T ran 25% slower than P V), V as rows [Tkp x dhp]; zero past the last visible key so that masked
  // products stay exactly 0. With one block (decode, short chunks) each tile is packed into the worker's
  // scratch instead: same copying, and no large fresh allocation (page faults cost more than the work).
  const bool prepack = s.nqb > 1;
  const int64_t key_end_all = s.q_start + s.Tq, Tkp = prepack ? round_up(key_end_all, kKeyTile) : 0;
  at::Tensor kt_all = at::empty({prepack ? s.B * s.G * s.dh * Tkp : 0}, q.options());
  at::Tensor vr_all = at::empty({prepack ? s.B * s.G * Tkp * s.dhp : 0}, q.options());
  float *ktp = kt_all.data_ptr<float>(), *vrp = vr_all.data_ptr<float>();
  const int64_t ntiles = Tkp / kKeyTile;
  if (prepack) at::parallel_for(0, s.B * s.G * ntiles, 1, [&](int64_t begin, int64_t end) {
    for (int64_t it = begin; it < end; ++it) {
      const int64_t bg = it / ntiles, k0 = (it % ntiles) * kKeyTile, b = bg / s.G, g = bg % s.G;
      const int64_t nk = std::min(kKeyTile, key_end_all - k0);
      pack_kv_transposed(kp, s, b, g, k0, nk, ktp + it * s.dh * kKeyTile);  // tile it = (b, g, k0)
      pack_kv_rows(vp, s, b, g, k0, nk, vrp + (bg * Tkp + k0) * s.dhp);
    }
  });

  // Items: (query block, b, g), last (longest) query blocks first.
  const int64_t per_block = s.B * s.G;
  std::vector<std::unique_ptr<Scratch>> scratches(std::max(1, at::get_num_threads()));
  parallel_items(s.nqb * per_block, [&](int64_t item, int64_t slot) {
    auto& sc = scratches[slot];
    if (!sc) sc = std::make_unique<Scratch>(scratch);
    sc->used = 0;
    const int64_t qb = s.nqb - 1 - item / per_block, b = (item % per_block) / s.G, g = item % s.G;
    const int64_t t0 = qb * s.Br, nt = std::min(s.Br, s.Tq - t0), R = nt * s.M;
    float* Q = sc->take(rmax * s.dhp);
    float* O = sc->take(rmax * s.dhp);
    float* S = sc->take(rmax * kKeyTile);
    float* Kt = sc->take(s.dh * kKeyTile);  // per-tile packing when !prepack
    float* Vr = sc->take(kKeyTile * s.dhp);
    float* m = sc->take(rmax);
    float* l = sc->take(rmax);
    pack_rows(qp, s, s.Tq, s.Hq, b, g, t0, nt, s.scale, Q);  // scores come out scaled
    std::fill(O, O + R * s.dhp, 0.f);
    std::fill(m, m + R, kNegInf);
    std::fill(l, l + R, 0.f);
    const int64_t first_pos = s.q_start + t0, key_end = first_pos + nt;  // keys [0, key_end) are visible to someone
    for (int64_t k0 = 0; k0 < key_end; k0 += kKeyTile) {
      const int64_t nk = std::min(kKeyTile, key_end - k0);
      const float *Kk, *Vk;  // this tile: K^T [d_h x kKeyTile] with row stride ldk, V [kKeyTile x dhp]
      int64_t ldk;
      if (prepack) {
        Kk = ktp + ((b * s.G + g) * ntiles + k0 / kKeyTile) * s.dh * kKeyTile, ldk = kKeyTile;
        Vk = vrp + ((b * s.G + g) * Tkp + k0) * s.dhp;
      } else {
        pack_kv_transposed(kp, s, b, g, k0, nk, Kt);
        pack_kv_rows(vp, s, b, g, k0, nk, Vr);
        Kk = Kt, ldk = kKeyTile, Vk = Vr;
      }
      // Rows before r_lo (positions < k0) see none of this tile: skip them (index arithmetic, not a mask).
      const int64_t r_lo = std::max<int64_t>(0, k0 - first_pos) * s.M;
      micro_gemm(R - r_lo, s.dh, kKeyTile, Q + r_lo * s.dhp, s.dhp, 1, Kk, ldk, S + r_lo * kKeyTile, kKeyTile,
                 false);  // S = Q K^T
      const bool diagonal = k0 + kKeyTile > first_pos + 1;
      for (int64_t r = r_lo; r < R; ++r) {
        float* srow = S + r * kKeyTile;
        const int64_t nv = diagonal ? visible(first_pos + r / s.M, k0) : kKeyTile;
        fill_masked(srow, nv);
        simd::Vec mx = simd::set1(kNegInf);
        for (int64_t c = 0; c < kKeyTile; c += simd::kW) mx = simd::vmax(mx, simd::load(srow + c));
        const float m_new = std::max(m[r], simd::hmax(mx));
        // Rescale of the running sum/output: 0 on the first visible tile, 1 (no work) when the max holds.
        const float alpha = m_new == m[r] ? 1.f : std::exp(m[r] - m_new);
        const simd::Vec mv = simd::set1(m_new);
        simd::Vec sum = simd::zero();
        for (int64_t c = 0; c < kKeyTile; c += simd::kW) {
          simd::Vec p = simd::exp(simd::sub(simd::load(srow + c), mv));
          simd::store(srow + c, p);
          sum = simd::add(sum, p);
        }
        l[r] = l[r] * alpha + simd::hsum(sum);
        m[r] = m_new;
        if (alpha != 1.f) {
          float* orow = O + r * s.dhp;
          const simd::Vec av = simd::set1(alpha);
          for (int64_t j = 0; j < s.dhp; j += simd::kW) simd::store(orow + j, simd::mul(simd::load(orow + j), av));
        }
      }
      micro_gemm(R - r_lo, nk, s.dhp, S + r_lo * kKeyTile, kKeyTile, 1, Vk, s.dhp, O + r_lo * s.dhp, s.dhp,
                 true);  // O += P V
    }
    for (int64_t r = 0; r < R; ++r) {
      const int64_t t = t0 + r / s.M, h = g * s.M + r % s.M;
      float* dst = op + ((b * s.Tq + t) * s.Hq + h) * s.dh;
      const float inv = 1.f / l[r];
      for (int64_t j = 0; j < s.dh; ++j) dst[j] = O[r * s.dhp + j] * inv;
      lp[(b * s.Tq + t) * s.Hq + h] = m[r] + std::log(l[r]);
    }
  });
  return {out, lse};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> flash_attention_backward(const at::Tensor& q_in, const at::Tensor& k_in,
                                                                        const at::Tensor& v_in, const at::Tensor& out,
                                                                        const at::Tensor& lse_in,
                                                                        const at::Tensor& dout_in, int64_t q_start) {
  const Shape s = check_shapes(q_in, k_in, v_in, q_start);
  TORCH_CHECK(out.sizes() == q_in.sizes() && dout_in.sizes() == q_in.sizes(), "flash_attention_backward: out/dout must be shaped like q");
  TORCH_CHECK(lse_in.dim() == 3 && lse_in.size(0) == s.B && lse_in.size(1) == s.Tq && lse_in.size(2) == s.Hq,
              "flash_attention_backward: lse must be [B, Tq, Hq]");
  at::Tensor q = q_in.contiguous(), k = k_in.contiguous(), v = v_in.contiguous();
  at::Tensor dout = dout_in.to(at::kFloat).contiguous(), lse = lse_in.contiguous();
  // D_r = dO_r . O_r, the softmax-backward row term.
  at::Tensor delta = (dout * out.to(at::kFloat)).sum(-1).contiguous();  // [B, Tq, Hq]
  const int workers = std::max(1, at::get_num_threads());
  // dQ gathers contributions from every key tile: one private accumulator per worker, summed at the end.
  at::Tensor dq_parts = at::zeros({workers, s.B, s.Tq, s.Hq, s.dh}, q.options());
  at::Tensor dk = at::zeros_like(k), dv = at::zeros_like(v);
  const float *qp = q.data_ptr<float>(), *kp = k.data_ptr<float>(), *vp = v.data_ptr<float>();
  const float *dop = dout.data_ptr<float>(), *lp = lse.data_ptr<float>(), *Dp = delta.data_ptr<float>();
  float *dkp = dk.data_ptr<float>(), *dvp = dv.data_ptr<float>(), *dqp = dq_parts.data_ptr<float>();
  const int64_t rmax = s.Br * s.M, q_numel = s.B * s.Tq * s.Hq * s.dh;
  const int64_t scratch = 3 * rmax * s.dhp + 2 * rmax * kKeyTile + 2 * s.dh * kKeyTile + 3 * kKeyTile * s.dhp +
                          3 * rmax + 64 * 16;

  const int64_t key_end = s.q_start + s.Tq;  // keys at or after this are seen by no query
  const int64_t nkb = (key_end + kKeyTile - 1) / kKeyTile, per_tile = s.B * s.G;
  std::vector<std::unique_ptr<Scratch>> scratches(workers);
  // Items: (key tile, b, g). Each worker sums dQ in its own order, so for bit-reproducible gradients (a
  // resumed run must retrace the uninterrupted one) items go to workers by a fixed plan, not first-come:
  // longest first (early key tiles are seen by the most queries), each to the least-loaded worker.
  auto tile_cost = [&](int64_t item) { return double(key_end - (item / per_tile) * kKeyTile); };
  parallel_items_static(nkb * per_tile, workers, tile_cost, [&](int64_t item, int64_t slot) {
    auto& sc = scratches[slot];
    if (!sc) sc = std::make_unique<Scratch>(scratch);
    sc->used = 0;
    float* dq = dqp + slot * q_numel;
    const int64_t kb = item / per_tile, b = (item % per_tile) / s.G, g = item % s.G;
    const int64_t k0 = kb * kKeyTile, nk = std::min(kKeyTile, key_end - k0);
    float* Q = sc->take(rmax * s.dhp);
    float* dO = sc->take(rmax * s.dhp);
    float* dQb = sc->take(rmax * s.dhp);
    float* P = sc->take(rmax * kKeyTile);
    float* dS = sc->take(rmax * kKeyTile);
    float* Kt = sc->take(s.dh * kKeyTile);
    float* Vt = sc->take(s.dh * kKeyTile);
    float* Kr = sc->take(kKeyTile * s.dhp);
    float* dK = sc->take(kKeyTile * s.dhp);
    float* dV = sc->take(kKeyTile * s.dhp);
    float* lse_r = sc->take(rmax);
    float* D_r = sc->take(rmax);
    pack_kv_transposed(kp, s, b, g, k0, nk, Kt);
    pack_kv_transposed(vp, s, b, g, k0, nk, Vt);
    pack_kv_rows(kp, s, b, g, k0, nk, Kr);
    std::fill(dK, dK + kKeyTile * s.dhp, 0.f);
    std::fill(dV, dV + kKeyTile * s.dhp, 0.f);
    // Query blocks holding a position >= k0: t >= k0 - q_start.
    const int64_t qb_first = std::max<int64_t>(0, k0 - s.q_start) / s.Br;
    for (int64_t qb = qb_first; qb < s.nqb; ++qb) {
      const int64_t t0 = qb * s.Br, nt = std::min(s.Br, s.Tq - t0), R = nt * s.M;
      const int64_t first_pos = s.q_start + t0;
      pack_rows(qp, s, s.Tq, s.Hq, b, g, t0, nt, s.scale, Q);
      pack_rows(dop, s, s.Tq, s.Hq, b, g, t0, nt, 1.f, dO);
      for (int64_t r = 0; r < R; ++r) {
        const int64_t idx = (b * s.Tq + t0 + r / s.M) * s.Hq + g * s.M + r % s.M;
        lse_r[r] = lp[idx];
        D_r[r] = Dp[idx];
      }
      // Rows before r_lo (positions < k0) see none of this tile and contribute nothing: skipped.
      const int64_t r_lo = std::max<int64_t>(0, k0 - first_pos) * s.M, Rv = R - r_lo;
      float *Qv = Q + r_lo * s.dhp, *dOv = dO + r_lo * s.dhp, *Pv = P + r_lo * kKeyTile, *dSv = dS + r_lo * kKeyTile;
      micro_gemm(Rv, s.dh, kKeyTile, Qv, s.dhp, 1, Kt, kKeyTile, Pv, kKeyTile, false);   // S = Q K^T (scaled)
      micro_gemm(Rv, s.dh, kKeyTile, dOv, s.dhp, 1, Vt, kKeyTile, dSv, kKeyTile, false);  // dP = dO V^T
      const bool diagonal = k0 + kKeyTile > first_pos + 1;
      for (int64_t r = r_lo; r < R; ++r) {
        float* prow = P + r * kKeyTile;
        float* dsrow = dS + r * kKeyTile;
        if (diagonal) fill_masked(prow, visible(first_pos + r / s.M, k0));
        const simd::Vec lv = simd::set1(lse_r[r]), dv_ = simd::set1(D_r[r]);
        for (int64_t c = 0; c < kKeyTile; c += simd::kW) {
          simd::Vec p = simd::exp(simd::sub(simd::load(prow + c), lv));  // P recomputed; masked -> 0
          simd::store(prow + c, p);
          simd::store(dsrow + c, simd::mul(p, simd::sub(simd::load(dsrow + c), dv_)));  // dS = P (dP - D)
        }
      }
      micro_gemm(nk, Rv, s.dhp, Pv, 1, kKeyTile, dOv, s.dhp, dV, s.dhp, true);   // dV += P^T dO
      micro_gemm(nk, Rv, s.dhp, dSv, 1, kKeyTile, Qv, s.dhp, dK, s.dhp, true);   // dK += dS^T (scale Q)
      micro_gemm(Rv, nk, s.dhp, dSv, kKeyTile, 1, Kr, s.dhp, dQb + r_lo * s.dhp, s.dhp, false);  // dQ_blk = dS K
      for (int64_t r = r_lo; r < R; ++r) {
        float* dst = dq + ((b * s.Tq + t0 + r / s.M) * s.Hq + g * s.M + r % s.M) * s.dh;
        const float* src = dQb + r * s.dhp;
        for (int64_t j = 0; j < s.dh; ++j) dst[j] += src[j] * s.scale;
      }
    }
    for (int64_t c = 0; c < nk; ++c) {
      const int64_t off = ((b * s.Tk + k0 + c) * s.G + g) * s.dh;
      std::memcpy(dkp + off, dK + c * s.dhp, sizeof(float) * s.dh);
      std::memcpy(dvp + off, dV + c * s.dhp, sizeof(float) * s.dh);
    }
  });
  at::Tensor dq = workers == 1 ? dq_parts[0] : dq_parts.sum(0);
  return {dq, dk, dv};
}

namespace {

class FlashAttentionFunction : public torch::autograd::Function<FlashAttentionFunction> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& q, const at::Tensor& k,
                            const at::Tensor& v, int64_t q_start) {
    FlashForward f = flash_attention_forward(q, k, v, q_start);
    ctx->save_for_backward({q, k, v, f.out, f.lse});
    ctx->saved_data["q_start"] = q_start;
    return f.out;
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    auto saved = ctx->get_saved_variables();
    auto [dq, dk, dv] = flash_attention_backward(saved[0], saved[1], saved[2], saved[3], saved[4], grads[0],
                                                 ctx->saved_data["q_start"].toInt());
    return {dq, dk, dv, at::Tensor()};
  }
};

}  // namespace

at::Tensor flash_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t q_start) {
  return FlashAttentionFunction::apply(q, k, v, q_start);
}

}  // namespace gqe::kernels
