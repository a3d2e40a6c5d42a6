#include "gqe/kernels/gqe_decode.h"

#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "gqe/kernels/bf16_avx512.h"
#include "gqe/kernels/cpu_check.h"
#include "gqe/kernels/parallel_items.h"
#include "gqe/kernels/simd.h"

namespace gqe::kernels {
namespace {

constexpr int64_t kTile = 64;    // key positions per online-softmax step (a multiple of simd::kW)
constexpr int64_t kChunk = 256;  // key positions per work item (a multiple of kTile); fixed, so that the
                                 // merge order and hence the result bits do not depend on the thread count
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// a . b over n floats: whole vectors, then a scalar tail (d_h need not be a multiple of simd::kW).
inline float dot(const float* a, const float* b, int64_t n) {
  using namespace simd;
  Vec acc = zero();
  int64_t j = 0;
  for (; j + kW <= n; j += kW) acc = fma(load(a + j), load(b + j), acc);
  float s = hsum(acc);
  for (; j < n; ++j) s += a[j] * b[j];
  return s;
}

// y += a x over n floats.
inline void axpy(float a, const float* x, float* y, int64_t n) {
  using namespace simd;
  const Vec av = set1(a);
  int64_t j = 0;
  for (; j + kW <= n; j += kW) store(y + j, fma(av, load(x + j), load(y + j)));
  for (; j < n; ++j) y[j] += a * x[j];
}

// y *= a over n floats.
inline void scale(float a, float* y, int64_t n) {
  using namespace simd;
  const Vec av = set1(a);
  int64_t j = 0;
  for (; j + kW <= n; j += kW) store(y + j, mul(av, load(y + j)));
  for (; j < n; ++j) y[j] *= a;
}

// A [B, T, G, d_h] tensor read in place through its strides (d_h contiguous).
struct Strided {
  const float* p;
  int64_t sb, st, sg;
  const float* row(int64_t b, int64_t t, int64_t g) const { return p + b * sb + t * st + g * sg; }
};

Strided strided(const at::Tensor& x) { return {x.data_ptr<float>(), x.stride(0), x.stride(1), x.stride(2)}; }

void check_no_grad(const char* name, const at::Tensor& t) {
  TORCH_CHECK(!(t.defined() && t.requires_grad() && c10::GradMode::is_enabled()), "gqe_decode: forward only ",
              "(decode needs no gradient), but ", name, " requires grad; call it under torch::NoGradGuard");
}

// Merges each sequence's work items (chunks of keys, in chunk order): their unnormalised outputs PO
// [items][rows][dh] and running max and sum PML [items][2][rows], rows = Hq (+1 shared, last).
GqeDecodeOutput merge_items(const at::Tensor& q_in, bool shared, int64_t G, const std::vector<int64_t>& first_item,
                            const float* PO, const float* PML) {
  const int64_t B = q_in.size(0), Hq = q_in.size(2), dh = q_in.size(3), rows = Hq + (shared ? 1 : 0), srow = Hq;
  at::Tensor out = at::empty({B, 1, Hq, dh}, q_in.options());
  at::Tensor out_shared = shared ? at::empty({B, 1, 1, dh}, q_in.options()) : at::Tensor();
  float* OP = out.data_ptr<float>();
  float* SP = shared ? out_shared.data_ptr<float>() : nullptr;
  at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> acc(static_cast<size_t>(dh));
    for (int64_t b = begin; b < end; ++b)
      for (int64_t i = 0; i < rows; ++i) {
        const int64_t i0 = first_item[size_t(b)], i1 = first_item[size_t(b) + 1];
        float m_all = kNegInf;
        for (int64_t it = i0; it < i1; ++it) m_all = std::max(m_all, PML[it * 2 * rows + i]);
        std::fill(acc.begin(), acc.end(), 0.f);
        float l_all = 0.f;
        for (int64_t it = i0; it < i1; ++it) {
          const float w = std::exp(PML[it * 2 * rows + i] - m_all);
          l_all += w * PML[it * 2 * rows + rows + i];
          axpy(w, PO + (it * rows + i) * dh, acc.data(), dh);
        }
        const float inv = 1.f / (i == srow ? l_all * float(G) : l_all);
        float* dst = i == srow ? SP + b * dh : OP + (b * Hq + i) * dh;
        for (int64_t j = 0; j < dh; ++j) dst[j] = acc[size_t(j)] * inv;
      }
  });
  return {out, out_shared};
}

// Work items: (sequence, chunk of kChunk positions) for lengths len.
void plan_items(const std::vector<int64_t>& len, std::vector<int64_t>& item_b, std::vector<int64_t>& item_t0,
                std::vector<int64_t>& first_item) {
  first_item.assign(len.size() + 1, 0);
  for (size_t b = 0; b < len.size(); ++b) {
    for (int64_t t0 = 0; t0 < len[b]; t0 += kChunk) item_b.push_back(int64_t(b)), item_t0.push_back(t0);
    first_item[b + 1] = int64_t(item_b.size());
  }
}

// The decode step from bf16 K/V on a CPU with AVX512-BF16 (bf16_avx512.h): queries rounded to bf16 (after
// scaling), scores and outputs accumulated in fp32 by vdpbf16ps, probabilities rounded to bf16 for P V.
// Same work items, merge and shared-head algebra as the fp32 kernel.
GqeDecodeOutput decode_bf16(const at::Tensor& q_in, const at::Tensor& qs_in, const at::Tensor& k_in,
                            const at::Tensor& v_in, const std::vector<int64_t>& len) {
  const bool shared = qs_in.defined();
  const int64_t B = q_in.size(0), Hq = q_in.size(2), dh = q_in.size(3), G = k_in.size(2);
  const int64_t M = Hq / G, R = M + (shared ? 1 : 0), rows = Hq + (shared ? 1 : 0), dhp = bf16::padded_head_dim(dh);
  const at::Tensor k = k_in.stride(3) == 1 ? k_in : k_in.contiguous();
  const at::Tensor v = v_in.stride(3) == 1 ? v_in : v_in.contiguous();
  TORCH_CHECK(k.strides() == v.strides(), "gqe_decode: bf16 k and v must have the same strides (a cache's views)");
  const float sc = float(1.0 / std::sqrt(double(dh)));
  std::vector<uint16_t> qpack(size_t(B * G * R * dhp), 0);
  {
    const at::Tensor qc = q_in.contiguous(), qsc = shared ? qs_in.contiguous() : at::Tensor();
    const float* qp = qc.data_ptr<float>();
    const float* qsp = shared ? qsc.data_ptr<float>() : nullptr;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t g = 0; g < G; ++g) {
        uint16_t* dst = qpack.data() + (b * G + g) * R * dhp;
        for (int64_t r = 0; r < M; ++r)
          for (int64_t j = 0; j < dh; ++j) dst[r * dhp + j] = bf16::to_bf16(qp[(b * Hq + g * M + r) * dh + j] * sc);
        if (shared)
          for (int64_t j = 0; j < dh; ++j) dst[M * dhp + j] = bf16::to_bf16(qsp[b * dh + j] * (sc / float(G)));
      }
  }
  std::vector<int64_t> item_b, item_t0, first_item;
  plan_items(len, item_b, item_t0, first_item);
  const int64_t items = int64_t(item_b.size());
  const int64_t workers = std::max(1, at::get_num_threads()), scratch_floats = bf16::decode_scratch_floats(rows, dh);
  at::Tensor part_o = at::empty({items, rows, dh}, q_in.options());
  at::Tensor part_ml = at::empty({items, 2, rows}, q_in.options());
  at::Tensor scratch = at::empty({workers, scratch_floats}, q_in.options());
  float *PO = part_o.data_ptr<float>(), *PML = part_ml.data_ptr<float>(), *SC = scratch.data_ptr<float>();
  const auto* kp = reinterpret_cast<const uint16_t*>(k.data_ptr<at::BFloat16>());
  const auto* vp = reinterpret_cast<const uint16_t*>(v.data_ptr<at::BFloat16>());
  parallel_items(items, [&](int64_t item, int64_t slot) {
    const int64_t b = item_b[size_t(item)], c0 = item_t0[size_t(item)];
    bf16::DecodeChunk a;
    a.q = qpack.data() + b * G * R * dhp;
    a.k = kp + b * k.stride(0), a.v = vp + b * v.stride(0);
    a.st = k.stride(1), a.sg = k.stride(2);
    a.G = G, a.M = M, a.dh = dh, a.shared = shared;
    a.c0 = c0, a.c1 = std::min(c0 + kChunk, len[size_t(b)]), a.len = len[size_t(b)];
    float* m = PML + item * 2 * rows;
    bf16::decode_chunk(a, PO + item * rows * dh, m, m + rows, SC + slot * scratch_floats);
  });
  return merge_items(q_in, shared, G, first_item, PO, PML);
}

}  // namespace

GqeDecodeOutput gqe_decode(const at::Tensor& q_in, const at::Tensor& qs_in, const at::Tensor& k_in,
                           const at::Tensor& v_in, const at::Tensor& lengths_in) {
  const bool shared = qs_in.defined();
  check_on_cpu("gqe_decode", "q", q_in), check_on_cpu("gqe_decode", "k", k_in), check_on_cpu("gqe_decode", "v", v_in);
  if (shared) check_on_cpu("gqe_decode", "q_shared", qs_in);
  if (lengths_in.defined()) check_on_cpu("gqe_decode", "lengths", lengths_in);
  TORCH_CHECK(q_in.dim() == 4 && q_in.size(1) == 1,
              "gqe_decode: q must be [B, 1, Hq, d_h] (one query position per sequence), got ", q_in.sizes());
  TORCH_CHECK(k_in.dim() == 4 && k_in.sizes() == v_in.sizes(), "gqe_decode: k and v must both be [B, Tk, G, d_h], got ",
              k_in.sizes(), " and ", v_in.sizes());
  TORCH_CHECK(q_in.scalar_type() == at::kFloat && (!shared || qs_in.scalar_type() == at::kFloat),
              "gqe_decode: fp32 queries expected");
  TORCH_CHECK(k_in.scalar_type() == v_in.scalar_type() &&
                  (k_in.scalar_type() == at::kFloat || k_in.scalar_type() == at::kBFloat16),
              "gqe_decode: k and v must both be fp32 or both bf16, got ", k_in.scalar_type(), " and ", v_in.scalar_type());
  const int64_t B = q_in.size(0), Hq = q_in.size(2), dh = q_in.size(3), Tk = k_in.size(1), G = k_in.size(2);
  TORCH_CHECK(k_in.size(0) == B && k_in.size(3) == dh, "gqe_decode: q ", q_in.sizes(), " does not match k ", k_in.sizes());
  TORCH_CHECK(G > 0 && Hq % G == 0, "gqe_decode: query heads (", Hq, ") must be a multiple of KV heads (", G, ")");
  TORCH_CHECK(Tk >= 1, "gqe_decode: the cache holds no keys");
  if (shared) {
    TORCH_CHECK(qs_in.sizes() == (at::IntArrayRef{B, 1, 1, dh}), "gqe_decode: q_shared must be [B, 1, 1, d_h] = [", B,
                ", 1, 1, ", dh, "], got ", qs_in.sizes());
  }
  check_no_grad("q", q_in), check_no_grad("q_shared", qs_in), check_no_grad("k", k_in), check_no_grad("v", v_in);

  std::vector<int64_t> len(size_t(B), Tk);
  if (lengths_in.defined()) {
    TORCH_CHECK(lengths_in.scalar_type() == at::kLong && lengths_in.dim() == 1 && lengths_in.size(0) == B,
                "gqe_decode: lengths must be [B] = [", B, "] int64, got ", lengths_in.sizes(), " ",
                lengths_in.scalar_type());
    at::Tensor l = lengths_in.contiguous();
    for (int64_t b = 0; b < B; ++b) {
      len[size_t(b)] = l.data_ptr<int64_t>()[b];
      TORCH_CHECK(len[size_t(b)] >= 1 && len[size_t(b)] <= Tk, "gqe_decode: lengths[", b, "] = ", len[size_t(b)],
                  " outside 1..", Tk, " (the cached keys)");
    }
  }
  // bf16 K/V: the AVX512-BF16 kernel where the CPU has it; elsewhere widened to fp32 (exactly: every bf16
  // value is an fp32 value) for the fp32 kernel below.
  const bool bf16 = k_in.scalar_type() == at::kBFloat16;
  if (bf16 && bf16::cpu_has_avx512_bf16()) return decode_bf16(q_in, qs_in, k_in, v_in, len);
  // K/V are read in place (a cache view is strided over its capacity); only d_h must be contiguous.
  const at::Tensor k = bf16 ? k_in.to(at::kFloat) : k_in.stride(3) == 1 ? k_in : k_in.contiguous();
  const at::Tensor v = bf16 ? v_in.to(at::kFloat) : v_in.stride(3) == 1 ? v_in : v_in.contiguous();
  const Strided K = strided(k), V = strided(v);

  // Rows of the online softmax: slot head h = g*M + r is row h; the shared head is row G*M. Queries are
  // packed per (b, g) as R = M (+1 shared) rows of d_h, pre-scaled so that scores come out scaled; the
  // shared query is repeated in every group, scaled by 1/G so that its per-group dots sum to the dot with
  // the mean key.
  const int64_t M = Hq / G, R = M + (shared ? 1 : 0), rows = Hq + (shared ? 1 : 0), srow = Hq;
  const float sc = float(1.0 / std::sqrt(double(dh)));
  // Packed with plain loops: a short decode step is dominated by per-op overheads, not by these copies.
  std::vector<float> qpack(size_t(B * G * R * dh));
  {
    const at::Tensor qc = q_in.contiguous(), qsc = shared ? qs_in.contiguous() : at::Tensor();
    const float* qp = qc.data_ptr<float>();
    const float* qsp = shared ? qsc.data_ptr<float>() : nullptr;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t g = 0; g < G; ++g) {
        float* dst = qpack.data() + (b * G + g) * R * dh;
        for (int64_t j = 0; j < M * dh; ++j) dst[j] = qp[(b * Hq + g * M) * dh + j] * sc;
        if (shared)
          for (int64_t j = 0; j < dh; ++j) dst[M * dh + j] = qsp[b * dh + j] * (sc / float(G));
      }
  }
  const float* Q = qpack.data();

  // Work items: (sequence, chunk of kChunk positions); each keeps its own unnormalised output, running max
  // and running sum per row, merged per sequence below.
  std::vector<int64_t> item_b, item_t0, first_item;
  plan_items(len, item_b, item_t0, first_item);
  const int64_t items = int64_t(item_b.size());
  const int64_t workers = std::max(1, at::get_num_threads());
  at::Tensor part_o = at::empty({items, rows, dh}, q_in.options());
  at::Tensor part_ml = at::empty({items, 2, rows}, q_in.options());  // running max, running sum
  at::Tensor scores = at::empty({workers, rows, kTile}, q_in.options());
  float *PO = part_o.data_ptr<float>(), *PML = part_ml.data_ptr<float>(), *SC = scores.data_ptr<float>();

  parallel_items(items, [&](int64_t item, int64_t slot) {
    const int64_t b = item_b[size_t(item)], c0 = item_t0[size_t(item)];
    const int64_t c1 = std::min(c0 + kChunk, len[size_t(b)]);
    float* O = PO + item * rows * dh;  // [rows, dh]
    float* m = PML + item * 2 * rows;
    float* l = m + rows;
    float* S = SC + slot * rows * kTile;  // [rows, kTile]: this tile's scores, then probabilities
    std::fill(O, O + rows * dh, 0.f);
    std::fill(m, m + rows, kNegInf);
    std::fill(l, l + rows, 0.f);
    const float* Qb = Q + b * G * R * dh;
    for (int64_t t0 = c0; t0 < c1; t0 += kTile) {
      const int64_t nt = std::min(kTile, c1 - t0);
      // Scores: each key row is read once, for its group's slot heads and the shared head.
      if (shared) std::fill(S + srow * kTile, S + srow * kTile + nt, 0.f);
      for (int64_t t = 0; t < nt; ++t)
        for (int64_t g = 0; g < G; ++g) {
          const float* kr = K.row(b, t0 + t, g);
          const float* Qg = Qb + g * R * dh;
          for (int64_t r = 0; r < M; ++r) S[(g * M + r) * kTile + t] = dot(Qg + r * dh, kr, dh);
          if (shared) S[srow * kTile + t] += dot(Qg + M * dh, kr, dh);
        }
      // Online softmax over the tile, every row (positions past nt are masked).
      for (int64_t i = 0; i < rows; ++i) {
        float* s = S + i * kTile;
        std::fill(s + nt, s + kTile, kNegInf);
        simd::Vec mx = simd::set1(kNegInf);
        for (int64_t c = 0; c < kTile; c += simd::kW) mx = simd::vmax(mx, simd::load(s + c));
        const float m_new = std::max(m[i], simd::hmax(mx));
        const float alpha = m_new == m[i] ? 1.f : std::exp(m[i] - m_new);  // 0 on the first tile
        const simd::Vec mv = simd::set1(m_new);
        simd::Vec sum = simd::zero();
        for (int64_t c = 0; c < kTile; c += simd::kW) {
          const simd::Vec p = simd::exp(simd::sub(simd::load(s + c), mv));
          simd::store(s + c, p);
          sum = simd::add(sum, p);
        }
        l[i] = l[i] * alpha + simd::hsum(sum);
        m[i] = m_new;
        if (alpha != 1.f) scale(alpha, O + i * dh, dh);
      }
      // Outputs: each value row is read once, for its group's slot heads and the shared head (which sums
      // p_t v_{g,t} over the groups here and divides by G at the merge).
      for (int64_t t = 0; t < nt; ++t)
        for (int64_t g = 0; g < G; ++g) {
          const float* vr = V.row(b, t0 + t, g);
          for (int64_t r = 0; r < M; ++r) axpy(S[(g * M + r) * kTile + t], vr, O + (g * M + r) * dh, dh);
          if (shared) axpy(S[srow * kTile + t], vr, O + srow * dh, dh);
        }
    }
  });

  return merge_items(q_in, shared, G, first_item, PO, PML);
}

}  // namespace gqe::kernels
