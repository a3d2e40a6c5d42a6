#include "gqe/kernels/routed_projection.h"

#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

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

// Work items: (expert, first entry of a chunk of up to kEntriesPerItem of its entries), handed out
// dynamically to the intra-op threads; body(expert, first, rows) runs each.
template <typename F>
void for_each_chunk(const Buckets& b, F body) {
  const int64_t experts = int64_t(b.offsets.size()) - 1;
  std::vector<std::pair<int64_t, int64_t>> items;
  for (int64_t e = 0; e < experts; ++e)
    for (int64_t s = b.offsets[e]; s < b.offsets[e + 1]; s += kEntriesPerItem) items.emplace_back(e, s);
  parallel_items(int64_t(items.size()), [&](int64_t it, int64_t) {
    const auto [e, s] = items[it];
    body(e, s, std::min(b.offsets[e + 1], s + kEntriesPerItem) - s);
  });
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

template <int RB>
inline void rows_block(int64_t d, int64_t dhp, const float* const* xr, const float* wt, float* c) {
  constexpr int NV = detail::kVecBlock;
  constexpr int64_t step = NV * simd::kW;
  int64_t j = 0;
  for (; j + step <= dhp; j += step) rows_tile<RB, NV>(d, xr, wt + j, dhp, c + j, dhp);
  switch ((dhp - j) / simd::kW) {
    case 0: break;
    case 1: rows_tile<RB, 1>(d, xr, wt + j, dhp, c + j, dhp); break;
    case 2: rows_tile<RB, (NV > 2 ? 2 : 1)>(d, xr, wt + j, dhp, c + j, dhp); break;
    default: rows_tile<RB, (NV > 3 ? 3 : 1)>(d, xr, wt + j, dhp, c + j, dhp); break;
  }
}

// Many entries (prefill, training): W^T of every expert is packed once, [E, d, d_h_pad], and each chunk of
// entries reads its x rows in place: Out [rows, d_h] = X_rows W_e^T, register-blocked over entries.
void forward_packed_weight(const at::Tensor& x2, const at::Tensor& weight, const Buckets& b, int64_t dh, float* op) {
  const int64_t d = x2.size(1), experts = int64_t(b.offsets.size()) - 1;
  const int64_t dhp = (dh + simd::kW - 1) / simd::kW * simd::kW;
  at::Tensor wt = at::zeros({experts, d, dhp}, weight.options());
  wt.narrow(2, 0, dh).copy_(weight.view({experts, dh, d}).transpose(1, 2));
  const float *xp = x2.data_ptr<float>(), *wtp = wt.data_ptr<float>();
  constexpr int RB = detail::kRowBlock;
  for_each_chunk(b, [&](int64_t e, int64_t s, int64_t rows) {
    float c[RB * 64 * 4];  // RB x dhp; dhp <= 256 (checked by the caller)
    const float* xr[RB];
    for (int64_t i0 = 0; i0 < rows; i0 += RB) {
      const int n = int(std::min<int64_t>(RB, rows - i0));
      for (int i = 0; i < n; ++i) xr[i] = xp + b.entry_token[s + i0 + i] * d;
      const float* w = wtp + e * d * dhp;
      // The full block first: RB is 4 without AVX2, where a `case RB` would repeat `case 4`.
      if (n == RB) {
        rows_block<RB>(d, dhp, xr, w, c);
      } else {
        switch (n) {
          case 1: rows_block<1>(d, dhp, xr, w, c); break;
          case 2: rows_block<2>(d, dhp, xr, w, c); break;
          case 3: rows_block<3>(d, dhp, xr, w, c); break;
          case 4: rows_block<(RB > 4 ? 4 : 1)>(d, dhp, xr, w, c); break;
          default: rows_block<(RB > 5 ? 5 : 1)>(d, dhp, xr, w, c); break;
        }
      }
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
  for_each_chunk(b, [&](int64_t e, int64_t s, int64_t rows) {
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

  // Per expert: dX[tokens] += dQ_rows W_e and dW_e = dQ_rows^T X[tokens] (one matrix product each).
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &w = saved[1], &tok = saved[2], &row = saved[3];
    const int64_t dh = ctx->saved_data["dh"].toInt();
    const auto offsets = ctx->saved_data["offsets"].toIntList().vec();
    at::Tensor dout = grads[0].contiguous();  // [BT*G*k, d_h]
    at::Tensor dx = at::zeros_like(x), dw = at::zeros_like(w);
    for (int64_t e = 0; e + 1 < int64_t(offsets.size()); ++e) {
      const int64_t s = offsets[e], n = offsets[e + 1] - s;
      if (n == 0) continue;
      at::Tensor t = tok.narrow(0, s, n);
      at::Tensor dq = dout.index_select(0, row.narrow(0, s, n));  // [n, d_h]
      at::Tensor We = w.narrow(0, e * dh, dh);                    // [d_h, d]
      if (n == x.size(0)) {
        // Every token (a token is at most once per expert, and buckets keep token order): no gather/scatter.
        dx.addmm_(dq, We);
        dw.narrow(0, e * dh, dh).copy_(at::mm(dq.t(), x));
      } else {
        dx.index_add_(0, t, at::mm(dq, We));
        dw.narrow(0, e * dh, dh).copy_(at::mm(dq.t(), x.index_select(0, t)));
      }
    }
    return {dx, dw, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor routed_query_projection(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& selected,
                                   int64_t M, int64_t dh) {
  check_on_cpu("routed_query_projection", "x", x), check_on_cpu("routed_query_projection", "weight", weight);
  check_on_cpu("routed_query_projection", "selected", selected);
  TORCH_CHECK(x.dim() == 3 && selected.dim() == 4, "routed_query_projection: x [B,T,d], selected [B,T,G,k] expected");
  const int64_t B = x.size(0), T = x.size(1), d = x.size(2), G = selected.size(2), k = selected.size(3);
  TORCH_CHECK(weight.dim() == 2 && weight.size(0) == G * M * dh && weight.size(1) == d, "routed_query_projection: weight ",
              weight.sizes(), " is not [G*M*d_h, d] = [", G * M * dh, ", ", d, "]");
  TORCH_CHECK(x.scalar_type() == at::kFloat && weight.scalar_type() == at::kFloat,
              "routed_query_projection: fp32 x and weight expected");
  TORCH_CHECK(selected.scalar_type() == at::kLong, "routed_query_projection: selected must be int64");
  TORCH_CHECK(dh <= 256, "routed_query_projection: head_dim ", dh, " above the kernel's 256");
  at::Tensor out = RoutedProjectionFunction::apply(x.reshape({B * T, d}), weight,
                                                   selected.reshape({B * T, G, k}), M, dh);
  return out.view({B, T, G * k, dh});
}

at::Tensor narrow_projection(const at::Tensor& x, const at::Tensor& weight) {
  check_on_cpu("narrow_projection", "x", x), check_on_cpu("narrow_projection", "weight", weight);
  TORCH_CHECK(x.dim() == 3 && weight.dim() == 2, "narrow_projection: x [B,T,d] and weight [d_h, d] expected");
  const at::Tensor one_expert = at::zeros({x.size(0), x.size(1), 1, 1}, x.options().dtype(at::kLong));
  return routed_query_projection(x, weight, one_expert, 1, weight.size(0));
}

}  // namespace gqe::kernels
