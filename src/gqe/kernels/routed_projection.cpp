#include "gqe/kernels/routed_projection.h"

#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <vector>

#include "gqe/kernels/cpu_check.h"
#include "gqe/kernels/micro_gemm.h"
#include "gqe/kernels/parallel_items.h"

namespace gqe::kernels {
namespace {

// Slot entries bucketed by expert: entries [offsets[e], offsets[e+1]) belong to expert e = g*M + m.
// entry_token: the token (row of x) of each entry; entry_row: its row in the output [BT*G*k, d_h].
struct Buckets {
  std::vector<int64_t> offsets, entry_token, entry_row;
};

Buckets bucket_by_expert(const at::Tensor& selected, int64_t M) {  // selected: [BT, G, k] int64, contiguous
  const int64_t BT = selected.size(0), G = selected.size(1), k = selected.size(2);
  const int64_t* sel = selected.data_ptr<int64_t>();
  Buckets b;
  b.offsets.assign(G * M + 1, 0);
  for (int64_t i = 0; i < BT * G * k; ++i) {
    const int64_t g = (i / k) % G, m = sel[i];
    TORCH_CHECK(m >= 0 && m < M, "routed_query_projection: selected expert ", m, " outside 0..", M - 1);
    ++b.offsets[g * M + m + 1];
  }
  for (int64_t e = 0; e < G * M; ++e) b.offsets[e + 1] += b.offsets[e];
  std::vector<int64_t> fill(b.offsets.begin(), b.offsets.end() - 1);
  b.entry_token.resize(BT * G * k);
  b.entry_row.resize(BT * G * k);
  for (int64_t i = 0; i < BT * G * k; ++i) {  // token order within a bucket (stable)
    const int64_t e = ((i / k) % G) * M + sel[i];
    b.entry_token[fill[e]] = i / (G * k);
    b.entry_row[fill[e]++] = i;  // i = (bt*G + g)*k + r is exactly the output row
  }
  return b;
}

constexpr int64_t kEntriesPerItem = 64;  // work item: up to 64 entries of one expert

// Below this many multiply-adds a projection runs on the calling thread: waking the other intra-op threads
// costs more than it saves (a decode step's few entries).
constexpr int64_t kSerialFmas = int64_t(1) << 18;

// Work items: (expert, first entry of a chunk of up to kEntriesPerItem of its entries), handed out
// dynamically to the intra-op threads; body(expert, first, rows) runs each. fmas_per_entry sizes the work.
template <typename F>
void for_each_chunk(const Buckets& b, int64_t fmas_per_entry, F body) {
  const int64_t experts = int64_t(b.offsets.size()) - 1;
  std::vector<std::pair<int64_t, int64_t>> items;
  for (int64_t e = 0; e < experts; ++e)
    for (int64_t s = b.offsets[e]; s < b.offsets[e + 1]; s += kEntriesPerItem) items.emplace_back(e, s);
  auto run = [&](int64_t it, int64_t) {
    const auto [e, s] = items[it];
    body(e, s, std::min(b.offsets[e + 1], s + kEntriesPerItem) - s);
  };
  if (b.offsets.back() * fmas_per_entry < kSerialFmas) {
    for (int64_t it = 0; it < int64_t(items.size()); ++it) run(it, 0);
  } else {
    parallel_items(int64_t(items.size()), run);
  }
}

// C[i, 0:NV*kW] = sum_t x_i[t] * Wt[t, 0:NV*kW] for RB entries whose x rows are read in place (xr[i]).
// Like micro_tile, each element is one FMA chain over t = 0..d-1 from zero.
template <int RB, int NV>
inline void rows_tile(int64_t d, const float* const* xr, const float* wt, int64_t ldw, float* c, int64_t ldc) {
  using namespace simd;
  Vec acc[RB][NV];
  for (int i = 0; i < RB; ++i)
    for (int v = 0; v < NV; ++v) acc[i][v] = zero();
  for (int64_t t = 0; t < d; ++t) {
    Vec wv[NV];
    for (int v = 0; v < NV; ++v) wv[v] = load(wt + t * ldw + v * kW);
    for (int i = 0; i < RB; ++i) {
      const Vec xi = set1(xr[i][t]);
      for (int v = 0; v < NV; ++v) acc[i][v] = fma(xi, wv[v], acc[i][v]);
    }
  }
  for (int i = 0; i < RB; ++i)
    for (int v = 0; v < NV; ++v) store(c + i * ldc + v * kW, acc[i][v]);
}

// One expert's packed W^T (pack_transposed_weight's layout) times RB entries' x rows: C [RB, dhp].
template <int RB>
inline void rows_block(int64_t d, int64_t dhp, const float* const* xr, const float* wt, float* c) {
  constexpr int NV = detail::kVecBlock;
  constexpr int64_t step = NV * simd::kW;
  int64_t j = 0;
  for (; j + step <= dhp; j += step) rows_tile<RB, NV>(d, xr, wt + j * d, step, c + j, dhp);
  const int64_t w = dhp - j;  // the last, narrower panel [d, w]
  switch (w / simd::kW) {
    case 0: break;
    case 1: rows_tile<RB, 1>(d, xr, wt + j * d, w, c + j, dhp); break;
    case 2: rows_tile<RB, (NV > 2 ? 2 : 1)>(d, xr, wt + j * d, w, c + j, dhp); break;
    default: rows_tile<RB, (NV > 3 ? 3 : 1)>(d, xr, wt + j * d, w, c + j, dhp); break;
  }
}

// W^T of every expert from weight [E*d_h, d], in column panels: expert e's block of d*dhp floats holds
// panels of step = kVecBlock*kW columns (the last one narrower when dhp is not a multiple of step), each
// [d, width] row-major, so a register tile streams its panel contiguously; columns d_h..dhp are zero.
// A blocked transpose over the threads (ATen's copy of a transposed view runs at a few GB/s: 1.7 ms for
// the paper shape's 4 MB, a sixth of the products at 1k tokens).
at::Tensor pack_transposed_weight(const at::Tensor& weight, int64_t experts, int64_t dh, int64_t dhp) {
  const int64_t d = weight.size(1), step = detail::kVecBlock * simd::kW;
  constexpr int64_t kCols = 16;  // columns of W (rows of W^T) per work item: one cache line of each W row
  const int64_t blocks = (d + kCols - 1) / kCols;
  at::Tensor wt = at::empty({experts, d, dhp}, weight.options());
  const float* w = weight.data_ptr<float>();
  float* o = wt.data_ptr<float>();
  at::parallel_for(0, experts * blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t it = begin; it < end; ++it) {
      const int64_t e = it / blocks, t0 = (it % blocks) * kCols, t1 = std::min(d, t0 + kCols);
      float* expert = o + e * d * dhp;
      for (int64_t j0 = 0; j0 < dhp; j0 += step) {
        const int64_t width = std::min(step, dhp - j0);
        float* panel = expert + j0 * d;
        for (int64_t t = t0; t < t1; ++t)
          for (int64_t j = j0; j < j0 + width; ++j) panel[t * width + j - j0] = j < dh ? w[(e * dh + j) * d + t] : 0.f;
      }
    }
  });
  return wt;
}

// Many entries (prefill, training): W^T of every expert is packed once, [E, d, d_h_pad], and each chunk of
// entries reads its x rows in place: Out [rows, d_h] = X_rows W_e^T, register-blocked over entries.
void forward_packed_weight(const at::Tensor& x2, const at::Tensor& weight, const Buckets& b, int64_t dh, float* op) {
  const int64_t d = x2.size(1), experts = int64_t(b.offsets.size()) - 1;
  const int64_t dhp = (dh + simd::kW - 1) / simd::kW * simd::kW;
  at::Tensor wt = pack_transposed_weight(weight, experts, dh, dhp);
  const float *xp = x2.data_ptr<float>(), *wtp = wt.data_ptr<float>();
  constexpr int RB = detail::kRowBlock;
  for_each_chunk(b, d * dh, [&](int64_t e, int64_t s, int64_t rows) {
    float c[RB * 64 * 4];  // RB x dhp; dhp <= 256 (checked by the caller)
    const float* xr[RB];
    for (int64_t i0 = 0; i0 < rows; i0 += RB) {
      const int n = int(std::min<int64_t>(RB, rows - i0));
      for (int i = 0; i < n; ++i) xr[i] = xp + b.entry_token[s + i0 + i] * d;
      const float* w = wtp + e * d * dhp;
      detail::with_row_count<RB>(n, [&](auto rb) { rows_block<decltype(rb)::value>(d, dhp, xr, w, c); });
      for (int i = 0; i < n; ++i) std::copy_n(c + i * dhp, dh, op + b.entry_row[s + i0 + i] * dh);
    }
  });
}

// Few entries (decode, short chunks): packing all of W^T would cost more than the products, so the
// product is computed transposed, Out^T [d_h, rows] = W_e [d_h, d] X_rows^T [d, rows]: the weight is read
// in place (micro_gemm broadcasts it) and only the chunk's x rows are gathered, transposed and zero-padded
// to whole vectors, into per-thread scratch. Each element is the same FMA chain as in the packed path
// (fma(w, x, acc) == fma(x, w, acc)), so both paths give identical bits.
void forward_transposed_x(const at::Tensor& x2, const at::Tensor& weight, const Buckets& b, int64_t dh, float* op) {
  const int64_t d = x2.size(1);
  const float *xp = x2.data_ptr<float>(), *wp = weight.data_ptr<float>();
  for_each_chunk(b, d * dh, [&](int64_t e, int64_t s, int64_t rows) {
    thread_local std::vector<float> xt, c;
    xt.resize(size_t(d * kEntriesPerItem)), c.resize(size_t(dh * kEntriesPerItem));
    const int64_t width = (rows + simd::kW - 1) / simd::kW * simd::kW;
    for (int64_t t = 0; t < d; ++t) std::fill_n(xt.data() + t * width + rows, width - rows, 0.f);
    for (int64_t i = 0; i < rows; ++i) {
      const float* xr = xp + b.entry_token[s + i] * d;
      for (int64_t t = 0; t < d; ++t) xt[t * width + i] = xr[t];
    }
    micro_gemm(dh, d, width, wp + e * dh * d, d, 1, xt.data(), width, c.data(), width, false);
    for (int64_t i = 0; i < rows; ++i) {
      float* o = op + b.entry_row[s + i] * dh;
      for (int64_t j = 0; j < dh; ++j) o[j] = c[j * width + i];
    }
  });
}

at::Tensor routed_forward(const at::Tensor& x2, const at::Tensor& weight, const Buckets& b, int64_t rows_out,
                          int64_t dh) {
  at::Tensor out = at::empty({rows_out, dh}, x2.options());
  const int64_t weight_rows = weight.size(0);
  // The transposed gather writes rows_out * d scattered floats; the packing copies weight_rows * d.
  if (rows_out * 8 > weight_rows)
    forward_packed_weight(x2, weight, b, dh, out.data_ptr<float>());
  else
    forward_transposed_x(x2, weight, b, dh, out.data_ptr<float>());
  return out;
}

// Out[j, c0:c0+NV*kW] = sum_i A[i*lda + j] * x_i[c0:...] for RB rows j: A is an expert's dQ [n, d_h] read
// transposed, the x_i rows are read in place through pointers (the expert's tokens).
template <int RB, int NV>
inline void gathered_rows_tile(int64_t n, const float* A, int64_t lda, const float* const* xr, int64_t c0, float* out,
                               int64_t ldo) {
  using namespace simd;
  Vec acc[RB][NV];
  for (int r = 0; r < RB; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = zero();
  for (int64_t i = 0; i < n; ++i) {
    Vec xv[NV];
    for (int v = 0; v < NV; ++v) xv[v] = load(xr[i] + c0 + v * kW);
    for (int r = 0; r < RB; ++r) {
      const Vec a = set1(A[i * lda + r]);
      for (int v = 0; v < NV; ++v) acc[r][v] = fma(a, xv[v], acc[r][v]);
    }
  }
  for (int r = 0; r < RB; ++r)
    for (int v = 0; v < NV; ++v) store(out + r * ldo + c0 + v * kW, acc[r][v]);
}

// dX [BT, d] and dW [E*d_h, d] of the routed projection, given dOut [rows_out, d_h] and the buckets:
//   dW_e = dQ_e^T X_e      items (expert, panel of kPanel columns of d): each writes its own block of dW
//   dX_i = sum_e dq_{i,e} W_e   items (chunk of kTokensPerItem tokens): each expert's entries for those tokens
//                          are a contiguous part of its bucket (buckets keep token order); the chunk's dX rows
//                          are summed over the experts in expert order
// No item writes what another writes, and every sum runs in a fixed order: the same bits for any thread count.
std::pair<at::Tensor, at::Tensor> routed_backward(const at::Tensor& x, const at::Tensor& w, const Buckets& b,
                                                  const at::Tensor& dout, int64_t dh) {
  constexpr int64_t kPanel = 64, kTokensPerItem = 64;
  const int64_t BT = x.size(0), d = x.size(1), experts = int64_t(b.offsets.size()) - 1;
  const int64_t entries = b.offsets.back(), dvec = d / simd::kW * simd::kW;  // d's whole vectors
  const float *xp = x.data_ptr<float>(), *wp = w.data_ptr<float>(), *gp = dout.data_ptr<float>();
  // dQ in bucket order: expert e's rows are [offsets[e], offsets[e+1]).
  at::Tensor dq = at::empty({entries, dh}, x.options());
  float* dqp = dq.data_ptr<float>();
  at::parallel_for(0, entries, 256, [&](int64_t begin, int64_t end) {
    for (int64_t s = begin; s < end; ++s) std::copy_n(gp + b.entry_row[s] * dh, dh, dqp + s * dh);
  });
  at::Tensor dx = at::empty({BT, d}, x.options()), dw = at::empty({experts * dh, d}, x.options());
  float *dxp = dx.data_ptr<float>(), *dwp = dw.data_ptr<float>();

  const int64_t panels = (d + kPanel - 1) / kPanel;
  at::parallel_for(0, experts * panels, 1, [&](int64_t begin, int64_t end) {
    std::vector<const float*> xr;
    for (int64_t it = begin; it < end; ++it) {
      const int64_t e = it / panels, c0 = (it % panels) * kPanel, c1 = std::min(d, c0 + kPanel);
      const int64_t s0 = b.offsets[e], n = b.offsets[e + 1] - s0;
      float* dwe = dwp + e * dh * d;
      xr.resize(size_t(n));
      for (int64_t i = 0; i < n; ++i) xr[size_t(i)] = xp + b.entry_token[s0 + i] * d;
      const float* A = dqp + s0 * dh;
      const int64_t v1 = std::min(c1, dvec);  // [c0, v1) in whole vectors, [max(c0, v1), c1) scalar
      for (int64_t j0 = 0; j0 < dh; j0 += detail::kRowBlock) {
        const int rb = int(std::min<int64_t>(detail::kRowBlock, dh - j0));
        detail::with_row_count<detail::kRowBlock>(rb, [&](auto r) {
          constexpr int RB = decltype(r)::value;
          int64_t c = c0;
          for (; c + 2 * simd::kW <= v1; c += 2 * simd::kW)
            gathered_rows_tile<RB, 2>(n, A + j0, dh, xr.data(), c, dwe + j0 * d, d);
          for (; c + simd::kW <= v1; c += simd::kW) gathered_rows_tile<RB, 1>(n, A + j0, dh, xr.data(), c, dwe + j0 * d, d);
        });
      }
      for (int64_t j = 0; j < dh; ++j)
        for (int64_t c = std::max(c0, v1); c < c1; ++c) {
          float acc = 0.f;
          for (int64_t i = 0; i < n; ++i) acc += A[i * dh + j] * xr[size_t(i)][c];
          dwe[j * d + c] = acc;
        }
    }
  });

  const int64_t chunks = (BT + kTokensPerItem - 1) / kTokensPerItem;
  at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> tmp(size_t(kTokensPerItem * std::max<int64_t>(dvec, simd::kW)));
    for (int64_t ch = begin; ch < end; ++ch) {
      const int64_t t0 = ch * kTokensPerItem, t1 = std::min(BT, t0 + kTokensPerItem);
      std::fill(dxp + t0 * d, dxp + t1 * d, 0.f);
      for (int64_t e = 0; e < experts; ++e) {
        const int64_t* tok = b.entry_token.data();
        const int64_t s0 = std::lower_bound(tok + b.offsets[e], tok + b.offsets[e + 1], t0) - tok;
        const int64_t s1 = std::lower_bound(tok + s0, tok + b.offsets[e + 1], t1) - tok;
        if (s1 == s0) continue;
        const float* We = wp + e * dh * d;  // [d_h, d]
        if (dvec > 0) micro_gemm(s1 - s0, dh, dvec, dqp + s0 * dh, dh, 1, We, d, tmp.data(), dvec, false);
        for (int64_t s = s0; s < s1; ++s) {
          float* o = dxp + tok[s] * d;
          const float* q = dqp + s * dh;
          const float* t = tmp.data() + (s - s0) * dvec;
          for (int64_t c = 0; c < dvec; ++c) o[c] += t[c];
          for (int64_t c = dvec; c < d; ++c) {
            float acc = 0.f;
            for (int64_t j = 0; j < dh; ++j) acc += q[j] * We[j * d + c];
            o[c] += acc;
          }
        }
      }
    }
  });
  return {dx, dw};
}

class RoutedProjectionFunction : public torch::autograd::Function<RoutedProjectionFunction> {
 public:
  // x2: [BT, d], weight: [G*M*d_h, d], selected: [BT, G, k] -> [BT*G*k, d_h]
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x2, const at::Tensor& weight,
                            const at::Tensor& selected, int64_t M, int64_t dh) {
    at::Tensor xc = x2.contiguous(), wc = weight.contiguous(), sel = selected.contiguous();
    Buckets b = bucket_by_expert(sel, M);
    at::Tensor out = routed_forward(xc, wc, b, sel.numel(), dh);
    auto as_tensor = [](const std::vector<int64_t>& v) {
      return at::from_blob(const_cast<int64_t*>(v.data()), {int64_t(v.size())}, at::kLong).clone();
    };
    ctx->save_for_backward({xc, wc, as_tensor(b.entry_token), as_tensor(b.entry_row)});
    ctx->saved_data["offsets"] = c10::IValue(c10::List<int64_t>(b.offsets));
    ctx->saved_data["dh"] = dh;
    return out;
  }

  // dX and dW by routed_backward (below), from the saved buckets.
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    auto saved = ctx->get_saved_variables();
    Buckets b;
    b.offsets = ctx->saved_data["offsets"].toIntList().vec();
    auto as_vector = [](const at::Tensor& t) {
      return std::vector<int64_t>(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
    };
    b.entry_token = as_vector(saved[2]);
    b.entry_row = as_vector(saved[3]);
    auto [dx, dw] = routed_backward(saved[0], saved[1], b, grads[0].contiguous(), ctx->saved_data["dh"].toInt());
    return {dx, dw, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

void check_routed_inputs(const char* kernel, const at::Tensor& x, const at::Tensor& weight, const at::Tensor& selected,
                         int64_t M, int64_t dh) {
  check_on_cpu(kernel, "x", x), check_on_cpu(kernel, "weight", weight), check_on_cpu(kernel, "selected", selected);
  TORCH_CHECK(x.dim() == 3 && selected.dim() == 4, kernel, ": x [B,T,d], selected [B,T,G,k] expected");
  const int64_t d = x.size(2), G = selected.size(2);
  TORCH_CHECK(weight.dim() == 2 && weight.size(0) == G * M * dh && weight.size(1) == d, kernel, ": weight ",
              weight.sizes(), " is not [G*M*d_h, d] = [", G * M * dh, ", ", d, "]");
  TORCH_CHECK(x.scalar_type() == at::kFloat && weight.scalar_type() == at::kFloat, kernel, ": fp32 x and weight expected");
  TORCH_CHECK(selected.scalar_type() == at::kLong, kernel, ": selected must be int64");
  TORCH_CHECK(dh <= 256, kernel, ": head_dim ", dh, " above the kernel's 256");
}

}  // namespace

at::Tensor routed_query_projection(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& selected,
                                   int64_t M, int64_t dh) {
  check_routed_inputs("routed_query_projection", x, weight, selected, M, dh);
  const int64_t B = x.size(0), T = x.size(1), d = x.size(2), G = selected.size(2), k = selected.size(3);
  at::Tensor out;
  if (c10::GradMode::is_enabled() && (x.requires_grad() || weight.requires_grad())) {
    out = RoutedProjectionFunction::apply(x.reshape({B * T, d}), weight, selected.reshape({B * T, G, k}), M, dh);
  } else {  // no gradient wanted (decode, evaluation): no autograd node, nothing saved
    const at::Tensor sel = selected.reshape({B * T, G, k}).contiguous();
    out = routed_forward(x.reshape({B * T, d}).contiguous(), weight.contiguous(), bucket_by_expert(sel, M), sel.numel(), dh);
  }
  return out.view({B, T, G * k, dh});
}

std::pair<at::Tensor, at::Tensor> routed_query_projection_backward(const at::Tensor& x, const at::Tensor& weight,
                                                                   const at::Tensor& selected, int64_t M, int64_t dh,
                                                                   const at::Tensor& grad_out) {
  check_routed_inputs("routed_query_projection_backward", x, weight, selected, M, dh);
  const int64_t B = x.size(0), T = x.size(1), d = x.size(2), G = selected.size(2), k = selected.size(3);
  TORCH_CHECK(grad_out.sizes() == at::IntArrayRef({B, T, G * k, dh}) && grad_out.scalar_type() == at::kFloat,
              "routed_query_projection_backward: grad_out must be fp32 [B, T, G*k, d_h] = [", B, ", ", T, ", ", G * k,
              ", ", dh, "], got ", grad_out.sizes());
  const at::Tensor sel = selected.reshape({B * T, G, k}).contiguous();
  auto [dx, dw] = routed_backward(x.reshape({B * T, d}).contiguous(), weight.contiguous(), bucket_by_expert(sel, M),
                                  grad_out.reshape({B * T * G * k, dh}).contiguous(), dh);
  return {dx.view({B, T, d}), dw};
}

namespace {

at::Tensor one_expert_for(const char* kernel, const at::Tensor& x, const at::Tensor& weight) {
  check_on_cpu(kernel, "x", x), check_on_cpu(kernel, "weight", weight);
  TORCH_CHECK(x.dim() == 3 && weight.dim() == 2, kernel, ": x [B,T,d] and weight [d_h, d] expected");
  return at::zeros({x.size(0), x.size(1), 1, 1}, x.options().dtype(at::kLong));
}

}  // namespace

at::Tensor narrow_projection(const at::Tensor& x, const at::Tensor& weight) {
  return routed_query_projection(x, weight, one_expert_for("narrow_projection", x, weight), 1, weight.size(0));
}

std::pair<at::Tensor, at::Tensor> narrow_projection_backward(const at::Tensor& x, const at::Tensor& weight,
                                                             const at::Tensor& grad_out) {
  return routed_query_projection_backward(x, weight, one_expert_for("narrow_projection_backward", x, weight), 1,
                                          weight.size(0), grad_out);
}

}  // namespace gqe::kernels
