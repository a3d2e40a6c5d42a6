// KV cache for incremental decoding. Holds exactly GQA's K/V (G heads, post-RoPE), for GQE too.
// Storage is preallocated and grows by doubling, so appending a token copies only that token's K/V
// (at::cat per token would copy the whole cache every step: O(L) per token, O(L^2) per generation).
// GQE's shared head attends against the mean over the G heads of K and V; mean_kv() keeps that mean
// cached too (1/G of the K/V memory) so that a decode step does not re-read the whole cache to average it.
// The CPU decode step does not ask for it (kernels/gqe_decode.h serves the shared head from the K/V
// tiles); CPU prefill against a cache and the CUDA path do.
#pragma once
#include <ATen/ATen.h>

#include <vector>

namespace gqe {

class LayerKVCache {
 public:
  int64_t length() const { return len_; }

  // k_new, v_new: [B, T, G, d_h] for the positions length()..length()+T-1.
  // Returns K and V of all cached positions, [B, length(), G, d_h] views of the storage.
  std::pair<at::Tensor, at::Tensor> append(const at::Tensor& k_new, const at::Tensor& v_new) {
    const int64_t T = k_new.size(1);
    reserve(k_new, len_ + T);
    k_.narrow(1, len_, T).copy_(k_new);
    v_.narrow(1, len_, T).copy_(v_new);
    len_ += T;
    return {keys(), values()};
  }

  // Mean over the G heads of the cached K and V: [B, length(), 1, d_h] each. Positions appended since the
  // last call are averaged now (the same at::mean per position as a full recomputation, so bit-equal).
  std::pair<at::Tensor, at::Tensor> mean_kv() {
    if (len_ == 0) return {};
    if (!k_mean_.defined() || k_mean_.size(1) < k_.size(1) || k_mean_.size(0) != k_.size(0)) {
      at::Tensor km = at::empty({k_.size(0), k_.size(1), 1, k_.size(3)}, k_.options()), vm = at::empty_like(km);
      if (mean_len_ > 0 && k_mean_.defined() && k_mean_.size(0) == k_.size(0)) {
        km.narrow(1, 0, mean_len_).copy_(k_mean_.narrow(1, 0, mean_len_));
        vm.narrow(1, 0, mean_len_).copy_(v_mean_.narrow(1, 0, mean_len_));
      } else {
        mean_len_ = 0;
      }
      k_mean_ = km, v_mean_ = vm;
    }
    if (mean_len_ < len_) {
      const int64_t n = len_ - mean_len_;
      k_mean_.narrow(1, mean_len_, n).copy_(k_.narrow(1, mean_len_, n).mean(2, true));
      v_mean_.narrow(1, mean_len_, n).copy_(v_.narrow(1, mean_len_, n).mean(2, true));
      mean_len_ = len_;
    }
    return {k_mean_.narrow(1, 0, len_), v_mean_.narrow(1, 0, len_)};
  }

  at::Tensor keys() const { return len_ ? k_.narrow(1, 0, len_) : at::Tensor(); }
  at::Tensor values() const { return len_ ? v_.narrow(1, 0, len_) : at::Tensor(); }

  // Forgets every position from n on (keeps the storage): rewinds a generation, or holds the context
  // length fixed in a benchmark.
  void truncate(int64_t n) {
    len_ = std::min(len_, std::max<int64_t>(n, 0));
    mean_len_ = std::min(mean_len_, len_);
  }

 private:
  // Ensures capacity for `need` positions, doubling; keeps the cached positions.
  void reserve(const at::Tensor& like, int64_t need) {
    if (k_.defined() && k_.size(1) >= need) return;
    const int64_t cap = std::max<int64_t>({need, k_.defined() ? 2 * k_.size(1) : 0, 16});
    at::Tensor k = at::empty({like.size(0), cap, like.size(2), like.size(3)}, like.options()), v = at::empty_like(k);
    if (len_ > 0) {
      k.narrow(1, 0, len_).copy_(k_.narrow(1, 0, len_));
      v.narrow(1, 0, len_).copy_(v_.narrow(1, 0, len_));
    }
    k_ = k, v_ = v;
  }

  at::Tensor k_, v_;            // [B, capacity, G, d_h]; positions [0, len_) are valid
  at::Tensor k_mean_, v_mean_;  // [B, capacity, 1, d_h]; positions [0, mean_len_) are valid
  int64_t len_ = 0, mean_len_ = 0;
};

struct KVCache {
  std::vector<LayerKVCache> layers;
  explicit KVCache(int64_t num_layers = 0) : layers(num_layers) {}
  int64_t length() const { return layers.empty() ? 0 : layers[0].length(); }
};

}  // namespace gqe
