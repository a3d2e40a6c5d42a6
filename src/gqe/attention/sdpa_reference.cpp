#include "gqe/attention/sdpa_reference.h"

#include <cmath>

namespace gqe {

at::Tensor causal_attention_reference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                      int64_t q_start) {
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, "attention: expected [B, T, H, d_h] tensors");
  TORCH_CHECK(k.size(1) == v.size(1) && q.size(2) == k.size(2) && q.size(3) == k.size(3),
              "attention: q/k/v shapes do not match");
  TORCH_CHECK(q_start + q.size(1) <= k.size(1), "attention: queries reach past the last key");
  const int64_t Tq = q.size(1), Tk = k.size(1);
  const double scale = 1.0 / std::sqrt(double(q.size(3)));
  at::Tensor qh = q.permute({0, 2, 1, 3});  // [B, H, Tq, d_h]
  at::Tensor kh = k.permute({0, 2, 1, 3});  // [B, H, Tk, d_h]
  at::Tensor vh = v.permute({0, 2, 1, 3});
  at::Tensor scores = at::matmul(qh, kh.transpose(-2, -1)) * scale;  // [B, H, Tq, Tk]
  at::Tensor qpos = at::arange(q_start, q_start + Tq, q.options().dtype(at::kLong)).unsqueeze(1);
  at::Tensor kpos = at::arange(0, Tk, q.options().dtype(at::kLong)).unsqueeze(0);
  at::Tensor future = kpos > qpos;  // [Tq, Tk]: key after the query's position
  scores = scores.masked_fill(future, -std::numeric_limits<double>::infinity());
  at::Tensor probs = at::softmax(scores, -1);
  return at::matmul(probs, vh).permute({0, 2, 1, 3});  // [B, Tq, H, d_h]
}

}  // namespace gqe
