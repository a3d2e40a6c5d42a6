#include "gqe/kernels/cuda/gqe_attention.h"

#include "gqe/kernels/cuda/sdpa_attention.h"

namespace gqe::kernels::cuda {

SharedHeadLayout choose_shared_head_layout(int64_t G, int64_t k, int64_t Tq) {
  // A decode step (one position) would copy the whole cache to append the mean head: the copy costs more
  // than a second launch, in a step that only reads memory.
  if (Tq == 1) return SharedHeadLayout::two_calls;
  // Padding the shared head to k query heads wastes (k - 1) of k*(G + 1) heads' work; a second call costs a
  // launch and runs one head at a fraction of the GPU's occupancy. Up to a quarter wasted, one call.
  return 4 * (k - 1) <= k * (G + 1) ? SharedHeadLayout::one_call : SharedHeadLayout::two_calls;
}

std::pair<at::Tensor, at::Tensor> gqe_attention(const at::Tensor& q, const at::Tensor& q_shared, const at::Tensor& keys,
                                                const at::Tensor& values, const at::Tensor& k_mean,
                                                const at::Tensor& v_mean, int64_t q_start, SharedHeadLayout layout) {
  TORCH_CHECK(q.dim() == 4 && q_shared.dim() == 4 && keys.dim() == 4 && k_mean.dim() == 4,
              "gqe_attention: expected [B, T, H, d_h] tensors, got q ", q.sizes(), ", q_shared ", q_shared.sizes(),
              ", keys ", keys.sizes(), ", k_mean ", k_mean.sizes());
  const int64_t B = q.size(0), Tq = q.size(1), G = keys.size(2), dh = q.size(3);
  TORCH_CHECK(q.size(2) % G == 0 && q_shared.size(2) == 1 && q_shared.size(1) == Tq && k_mean.size(2) == 1 &&
                  k_mean.size(1) == keys.size(1) && v_mean.sizes() == k_mean.sizes(),
              "gqe_attention: q ", q.sizes(), ", q_shared ", q_shared.sizes(), " and k_mean ", k_mean.sizes(),
              " do not fit keys ", keys.sizes());
  const int64_t k = q.size(2) / G;
  if (layout == SharedHeadLayout::automatic) layout = choose_shared_head_layout(G, k, Tq);
  if (layout == SharedHeadLayout::two_calls)
    return {sdpa_attention(q, keys, values, q_start), sdpa_attention(q_shared, k_mean, v_mean, q_start)};
  // One call: KV heads 0..G-1 and the mean as head G; query heads g*k .. g*k+k-1 over KV head g as before, and
  // heads G*k .. G*k+k-1 (the shared query, k times) over head G.
  const at::ScalarType t = keys.scalar_type();
  at::Tensor k_all = at::cat({keys, k_mean.to(t)}, 2), v_all = at::cat({values, v_mean.to(t)}, 2);  // [B, Tk, G+1, d_h]
  at::Tensor shared_heads = k == 1 ? q_shared : q_shared.expand({B, Tq, k, dh});
  at::Tensor q_all = at::cat({q, shared_heads.to(q.scalar_type())}, 2);                          // [B, Tq, (G+1)k, d_h]
  at::Tensor o = sdpa_attention(q_all, k_all, v_all, q_start);
  return {o.narrow(2, 0, G * k), o.narrow(2, G * k, 1)};
}

}  // namespace gqe::kernels::cuda
