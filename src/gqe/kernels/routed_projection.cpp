#include "gqe/kernels/routed_projection.h"

#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <atomic>
#include <vector>

#include "gqe/kernels/simd.h"

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

// out[row_i, j] = x[tok_i, :] . W[j, :] for RB entries x JB outputs, as dot products over d (W stays in its
// [d_h, d] layout: no transposed copy). Every output element is accumulated in the same order whatever
// the block shape, so a token's result never depends on which other tokens share its bucket.
template <int RB, int JB>
void dot_block(const float* x, const int64_t* tok, const int64_t* row, const float* W, int64_t j0, int64_t d,
               int64_t dh, float* out) {
  using namespace simd;
  const float* xr[RB];
  for (int i = 0; i < RB; ++i) xr[i] = x + tok[i] * d;
  const float* wr[JB];
  for (int j = 0; j < JB; ++j) wr[j] = W + (j0 + j) * d;
  Vec acc[RB][JB];
  for (int i = 0; i < RB; ++i)
    for (int j = 0; j < JB; ++j) acc[i][j] = zero();
  int64_t t = 0;
  for (; t + kW <= d; t += kW) {
    Vec wv[JB];
    for (int j = 0; j < JB; ++j) wv[j] = load(wr[j] + t);
    for (int i = 0; i < RB; ++i) {
      Vec xv = load(xr[i] + t);
      for (int j = 0; j < JB; ++j) acc[i][j] = fma(xv, wv[j], acc[i][j]);
    }
  }
  for (int i = 0; i < RB; ++i)
    for (int j = 0; j < JB; ++j) {
      float s = hsum(acc[i][j]);
      for (int64_t u = t; u < d; ++u) s += xr[i][u] * wr[j][u];
      out[row[i] * dh + j0 + j] = s;
    }
}

template <int RB>
void dot_rows(const float* x, const int64_t* tok, const int64_t* row, const float* W, int64_t d, int64_t dh,
              float* out) {
  int64_t j0 = 0;
  for (; j0 + 4 <= dh; j0 += 4) dot_block<RB, 4>(x, tok, row, W, j0, d, dh, out);
  switch (dh - j0) {
    case 1: dot_block<RB, 1>(x, tok, row, W, j0, d, dh, out); break;
    case 2: dot_block<RB, 2>(x, tok, row, W, j0, d, dh, out); break;
    case 3: dot_block<RB, 3>(x, tok, row, W, j0, d, dh, out); break;
    default: break;
  }
}

constexpr int64_t kEntriesPerItem = 36;  // work item: up to 36 entries of one expert
// Entries per register block: 6 x 4 outputs = 24 vector accumulators (AVX-512 has 32 registers; AVX2's 16
// would spill, so fewer there).
#if defined(__AVX512F__)
constexpr int kRows = 6;
#else
constexpr int kRows = 3;
#endif

at::Tensor routed_forward(const at::Tensor& x2, const at::Tensor& weight, const Buckets& b, int64_t rows_out,
                          int64_t dh) {
  const int64_t d = x2.size(1), experts = int64_t(b.offsets.size()) - 1;
  at::Tensor out = at::empty({rows_out, dh}, x2.options());
  const float *xp = x2.data_ptr<float>(), *wp = weight.data_ptr<float>();
  float* op = out.data_ptr<float>();
  // Items: (expert, chunk of its entries).
  std::vector<std::pair<int64_t, int64_t>> items;  // (expert, first entry)
  for (int64_t e = 0; e < experts; ++e)
    for (int64_t s = b.offsets[e]; s < b.offsets[e + 1]; s += kEntriesPerItem) items.emplace_back(e, s);
  std::atomic<int64_t> next{0};
  const int64_t n_items = int64_t(items.size());
  const int64_t workers = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), n_items));
  at::parallel_for(0, workers, 1, [&](int64_t, int64_t) {
    for (int64_t it = next++; it < n_items; it = next++) {
      const auto [e, s] = items[it];
      const int64_t end = std::min(b.offsets[e + 1], s + kEntriesPerItem);
      const float* W = wp + e * dh * d;  // expert e's rows of q_proj: [d_h, d]
      const int64_t* tok = b.entry_token.data();
      const int64_t* row = b.entry_row.data();
      int64_t i = s;
      for (; i + kRows <= end; i += kRows) dot_rows<kRows>(xp, tok + i, row + i, W, d, dh, op);
      switch (end - i) {
        case 1: dot_rows<1>(xp, tok + i, row + i, W, d, dh, op); break;
        case 2: dot_rows<2>(xp, tok + i, row + i, W, d, dh, op); break;
        case 3: dot_rows<3>(xp, tok + i, row + i, W, d, dh, op); break;
        case 4: dot_rows<(kRows > 4 ? 4 : 1)>(xp, tok + i, row + i, W, d, dh, op); break;
        case 5: dot_rows<(kRows > 5 ? 5 : 1)>(xp, tok + i, row + i, W, d, dh, op); break;
        default: break;
      }
    }
  });
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
      dx.index_add_(0, t, at::mm(dq, We));
      dw.narrow(0, e * dh, dh).copy_(at::mm(dq.t(), x.index_select(0, t)));
    }
    return {dx, dw, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor routed_query_projection(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& selected,
                                   int64_t M, int64_t dh) {
  TORCH_CHECK(x.dim() == 3 && selected.dim() == 4, "routed_query_projection: x [B,T,d], selected [B,T,G,k] expected");
  const int64_t B = x.size(0), T = x.size(1), d = x.size(2), G = selected.size(2), k = selected.size(3);
  TORCH_CHECK(weight.dim() == 2 && weight.size(0) == G * M * dh && weight.size(1) == d, "routed_query_projection: weight ",
              weight.sizes(), " is not [G*M*d_h, d] = [", G * M * dh, ", ", d, "]");
  TORCH_CHECK(x.scalar_type() == at::kFloat && weight.scalar_type() == at::kFloat,
              "routed_query_projection: fp32 x and weight expected");
  TORCH_CHECK(selected.scalar_type() == at::kLong, "routed_query_projection: selected must be int64");
  at::Tensor out = RoutedProjectionFunction::apply(x.reshape({B * T, d}), weight,
                                                   selected.reshape({B * T, G, k}), M, dh);
  return out.view({B, T, G * k, dh});
}

}  // namespace gqe::kernels
