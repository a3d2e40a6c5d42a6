// KV cache for incremental decoding. Holds exactly GQA's K/V (G heads, post-RoPE), for GQE too.
// Storage is preallocated and grows by doubling, so appending a token copies only that token's K/V
// (at::cat per token would copy the whole cache every step: O(L) per token, O(L^2) per generation).
// GQE's shared head attends against the mean over the G heads of K and V; mean_kv() keeps that mean
// cached too (1/G of the K/V memory) so that a decode step does not re-read the whole cache to average it.
// The CPU decode step does not ask for it (kernels/gqe_decode.h serves the shared head from the K/V
// tiles); CPU prefill against a cache and the CUDA path do.
//
// Storage is fp32, or bf16 when the process asks for it (attention_dtype.h): then keys() and values() are
// bf16 and the CPU kernels read them as such (kernels/gqe_decode.h, kernels/flash_attention.h).
//
// Sequences of unequal lengths (a right-padded batch): prefill the padded batch, then set_lengths() with each
// sequence's real length. From then on the cache is ragged: append() takes T positions per sequence and
// writes sequence b's at its own length onwards (over its padding), and attention masks each sequence's keys
// past its length (lengths_tensor() for a decode step of one position; a T-position call attends sequence by
// sequence). Causal attention never lets a real position see the padding after it, so the prefill needs no
// mask of its own.
#pragma once
#include <ATen/ATen.h>

#include <algorithm>
#include <vector>

#include "gqe/attention/attention_dtype.h"

namespace gqe {

class LayerKVCache {
 public:
  int64_t length() const { return len_; }

  // k_new, v_new: [B, T, G, d_h] for the positions length()..length()+T-1; ragged: sequence b's at positions
  // lengths()[b]..lengths()[b]+T-1.
  // Returns K and V of all cached positions, [B, length(), G, d_h] views of the storage.
  std::pair<at::Tensor, at::Tensor> append(const at::Tensor& k_new, const at::Tensor& v_new) {
    const int64_t T = k_new.size(1);
    if (ragged()) {
      TORCH_CHECK(k_new.size(0) == int64_t(lengths_.size()), "KV cache: a ragged batch of ", lengths_.size(),
                  " sequences appends positions for each sequence, got ", k_new.sizes());
      const int64_t longest = *std::max_element(lengths_.begin(), lengths_.end());
      reserve(k_new, std::max(len_, longest + T));
      if (T > 1) {  // several positions per sequence (scoring continuations after shared contexts)
        for (size_t b = 0; b < lengths_.size(); ++b) {
          k_.select(0, int64_t(b)).narrow(0, lengths_[b], T).copy_(k_new.select(0, int64_t(b)));
          v_.select(0, int64_t(b)).narrow(0, lengths_[b], T).copy_(v_new.select(0, int64_t(b)));
          mean_len_ = std::min(mean_len_, lengths_[b]);
          lengths_[b] += T;
        }
        len_ = std::max(len_, longest + T);
        return {keys(), values()};
      }
      if (!k_.is_cpu()) {
        // On a GPU one scatter per tensor, not two copies (two kernel launches) per sequence.
        // host: the positions, copied to the cache's device
        at::Tensor pos = at::tensor(at::ArrayRef<int64_t>(lengths_), at::kLong).to(k_.device());
        at::Tensor seq = at::arange(int64_t(lengths_.size()), pos.options());
        k_.index_put_({seq, pos}, k_new.select(1, 0).to(k_.scalar_type()));
        v_.index_put_({seq, pos}, v_new.select(1, 0).to(v_.scalar_type()));
        mean_len_ = std::min(mean_len_, *std::min_element(lengths_.begin(), lengths_.end()));  // now stale
        for (int64_t& l : lengths_) ++l;
        len_ = std::max(len_, longest + 1);
        return {keys(), values()};
      }
      for (size_t b = 0; b < lengths_.size(); ++b) {
        const int64_t pos = lengths_[b]++;
        k_.select(0, int64_t(b)).select(0, pos).copy_(k_new.select(0, int64_t(b)).select(0, 0));
        v_.select(0, int64_t(b)).select(0, pos).copy_(v_new.select(0, int64_t(b)).select(0, 0));
        mean_len_ = std::min(mean_len_, pos);  // that position's mean is stale
      }
      len_ = std::max(len_, longest + 1);
      return {keys(), values()};
    }
    reserve(k_new, len_ + T);
    k_.narrow(1, len_, T).copy_(k_new);
    v_.narrow(1, len_, T).copy_(v_new);
    len_ += T;
    return {keys(), values()};
  }

  // Makes the cache ragged: sequence b holds positions [0, lengths[b]) (1 <= lengths[b] <= length()); the
  // positions after it are padding that its next appends overwrite.
  void set_lengths(const std::vector<int64_t>& lengths) {
    TORCH_CHECK(k_.defined() && int64_t(lengths.size()) == k_.size(0), "KV cache: set_lengths needs one length per ",
                "cached sequence (", k_.defined() ? k_.size(0) : 0, "), got ", lengths.size());
    for (int64_t l : lengths)
      TORCH_CHECK(l >= 1 && l <= len_, "KV cache: sequence length ", l, " outside 1..", len_,
                  " (the cached positions)");
    lengths_ = lengths;
  }
  bool ragged() const { return !lengths_.empty(); }
  // Each sequence's length (ragged only).
  const std::vector<int64_t>& lengths() const { return lengths_; }
  // The same as a [B] int64 tensor (kernels/gqe_decode.h's lengths).
  at::Tensor lengths_tensor() const {
    return at::tensor(at::ArrayRef<int64_t>(lengths_), at::TensorOptions().dtype(at::kLong));  // host: by contract
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
    for (int64_t& l : lengths_) l = std::min(l, len_);
  }

 private:
  // Ensures capacity for `need` positions, doubling; keeps the cached positions.
  void reserve(const at::Tensor& like, int64_t need) {
    if (k_.defined() && k_.size(1) >= need) return;
    const int64_t cap = std::max<int64_t>({need, k_.defined() ? 2 * k_.size(1) : 0, 16});
    // The storage dtype is chosen once, at the first allocation: for fp32 CPU inputs the process's setting
    // (attention_dtype.h; bf16 rounds each appended value to nearest even), else the input's.
    const at::ScalarType dtype = k_.defined()                                            ? k_.scalar_type()
                                 : like.is_cpu() && like.scalar_type() == at::kFloat ? cpu_attention_dtype()
                                                                                      : like.scalar_type();
    // Zeros, not uninitialised memory: in a ragged batch a sequence's keys past its length are read by a
    // masked attention call (and averaged into the mean K/V), and a NaN there would survive its zero weight.
    at::Tensor k = at::zeros({like.size(0), cap, like.size(2), like.size(3)}, like.options().dtype(dtype)),
               v = at::zeros_like(k);
    if (len_ > 0) {
      k.narrow(1, 0, len_).copy_(k_.narrow(1, 0, len_));
      v.narrow(1, 0, len_).copy_(v_.narrow(1, 0, len_));
    }
    k_ = k, v_ = v;
  }

  at::Tensor k_, v_;            // [B, capacity, G, d_h]; positions [0, len_) are valid
  at::Tensor k_mean_, v_mean_;  // [B, capacity, 1, d_h]; positions [0, mean_len_) are valid
  int64_t len_ = 0, mean_len_ = 0;
  std::vector<int64_t> lengths_;  // ragged: each sequence's length; empty: every sequence has len_
};

struct KVCache {
  std::vector<LayerKVCache> layers;
  explicit KVCache(int64_t num_layers = 0) : layers(num_layers) {}
  int64_t length() const { return layers.empty() ? 0 : layers[0].length(); }
  // Every layer's LayerKVCache::set_lengths.
  void set_lengths(const std::vector<int64_t>& lengths) {
    for (LayerKVCache& l : layers) l.set_lengths(lengths);
  }
};

}  // namespace gqe
