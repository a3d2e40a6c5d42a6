// KV cache for incremental decoding. Holds exactly GQA's K/V (G heads, post-RoPE), for GQE too:
// the shared head's mean K/V is recomputed from it, so GQE adds no cache memory.
#pragma once
#include <ATen/ATen.h>

#include <vector>

namespace gqe {

struct LayerKVCache {
  at::Tensor k;  // [B, T_cached, G, d_h], undefined while empty
  at::Tensor v;  // [B, T_cached, G, d_h]
  int64_t length() const { return k.defined() ? k.size(1) : 0; }
  // Appends this step's K/V and returns the full K/V to attend against.
  std::pair<at::Tensor, at::Tensor> append(const at::Tensor& k_new, const at::Tensor& v_new) {
    k = k.defined() ? at::cat({k, k_new}, 1) : k_new;
    v = v.defined() ? at::cat({v, v_new}, 1) : v_new;
    return {k, v};
  }
};

struct KVCache {
  std::vector<LayerKVCache> layers;
  explicit KVCache(int64_t num_layers = 0) : layers(num_layers) {}
  int64_t length() const { return layers.empty() ? 0 : layers[0].length(); }
};

}  // namespace gqe
