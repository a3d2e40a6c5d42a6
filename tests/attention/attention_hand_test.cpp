// The attention blocks against the method computed by hand, element by element, on tiny examples.
// W_O is set to the identity so that the output *is* the slot vector.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "gqe/attention/attention.h"
#include "test_util.h"

namespace gqe {
namespace {

using Vec = std::vector<double>;

Vec matvec(const at::Tensor& W, int64_t row0, int64_t rows, const at::Tensor& x) {  // W [*, d], x [d]
  Vec out(rows, 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < x.size(0); ++c) out[r] += W[row0 + r][c].item<double>() * x[c].item<double>();
  return out;
}

// Causal softmax attention of one query at position i against keys/values 0..i.
Vec attend(const Vec& q, const std::vector<Vec>& K, const std::vector<Vec>& V, int64_t i) {
  const double scale = 1.0 / std::sqrt(double(q.size()));
  Vec s(i + 1);
  double mx = -1e300, z = 0;
  for (int64_t j = 0; j <= i; ++j) {
    s[j] = 0;
    for (size_t c = 0; c < q.size(); ++c) s[j] += q[c] * K[j][c] * scale;
    mx = std::max(mx, s[j]);
  }
  for (auto& v : s) z += (v = std::exp(v - mx));
  Vec o(q.size(), 0.0);
  for (int64_t j = 0; j <= i; ++j)
    for (size_t c = 0; c < q.size(); ++c) o[c] += s[j] / z * V[j][c];
  return o;
}

struct Tiny {
  ModelConfig cfg;
  std::shared_ptr<AttentionBlock> block;
  at::Tensor x;  // [1, T, d]
};

Tiny make_tiny(const std::string& kind, int64_t N, int64_t G, const std::string& variant) {
  Tiny t;
  t.cfg = test::small_config(kind, N, G, 1, variant, /*head_dim=*/2, /*d=*/0);
  t.cfg.position_embedding = PositionEmbedding::none;
  t.cfg.hidden_size = t.cfg.attention.num_slots() * 2;
  at::manual_seed(11);
  t.block = make_attention(t.cfg);
  t.block->to(at::kDouble);
  torch::NoGradGuard g;
  for (auto& p : t.block->named_parameters())
    if (p.key() != "o_proj.weight") p.value().normal_(0.0, 0.7);  // includes the router
  for (auto& p : t.block->named_parameters())
    if (p.key() == "o_proj.weight") p.value().copy_(at::eye(t.cfg.hidden_size, at::kDouble));
  t.x = at::randn({1, 5, t.cfg.hidden_size}, at::kDouble);
  return t;
}

at::Tensor param(const AttentionBlock& b, const std::string& name) {
  for (const auto& p : b.named_parameters())
    if (p.key() == name) return p.value().detach();
  throw std::runtime_error("no parameter " + name);
}

TEST(GQEAttentionByHand, HardWeightedAndSharedSlots) {
  for (const char* variant : {"gqe", "hard_concat", "weighted_concat"}) {
    Tiny t = make_tiny("gqe", 4, 2, variant);
    const int64_t G = 2, M = 2, dh = 2, T = t.x.size(1);
    at::Tensor y = t.block->forward(t.x, nullptr).y.detach()[0];  // [T, slots*dh]
    at::Tensor Wq = param(*t.block, "q_proj.weight"), Wk = param(*t.block, "k_proj.weight"),
               Wv = param(*t.block, "v_proj.weight"), Wr = param(*t.block, "router.weight");
    std::vector<std::vector<Vec>> K(G), V(G);
    std::vector<Vec> Kmean(T, Vec(dh, 0.0)), Vmean(T, Vec(dh, 0.0));
    for (int64_t g = 0; g < G; ++g)
      for (int64_t j = 0; j < T; ++j) {
        K[g].push_back(matvec(Wk, g * dh, dh, t.x[0][j]));
        V[g].push_back(matvec(Wv, g * dh, dh, t.x[0][j]));
        for (int64_t c = 0; c < dh; ++c) {
          Kmean[j][c] += K[g][j][c] / G;
          Vmean[j][c] += V[g][j][c] / G;
        }
      }
    for (int64_t i = 0; i < T; ++i) {
      Vec logits = matvec(Wr, 0, G * M, t.x[0][i]);
      std::vector<Vec> o_sel(G);
      Vec p_sel(G);
      for (int64_t g = 0; g < G; ++g) {
        const double e0 = std::exp(logits[g * M]), e1 = std::exp(logits[g * M + 1]);
        const int64_t m = e1 > e0 ? 1 : 0;  // top-1 of the group's softmax
        p_sel[g] = (m ? e1 : e0) / (e0 + e1);
        o_sel[g] = attend(matvec(Wq, (g * M + m) * dh, dh, t.x[0][i]), K[g], V[g], i);
      }
      int64_t col = 0;
      const double scale_sum = p_sel[0] + p_sel[1];
      for (int64_t g = 0; g < G; ++g)
        for (int64_t c = 0; c < dh; ++c, ++col) {
          const double want = std::string(variant) == "weighted_concat" ? p_sel[g] * o_sel[g][c] : o_sel[g][c];
          EXPECT_NEAR(y[i][col].item<double>(), want, 1e-10) << variant << " hard slot " << g << " token " << i;
        }
      if (std::string(variant) != "gqe") {
        EXPECT_EQ(col, y.size(1));
        continue;
      }
      for (int64_t c = 0; c < dh; ++c, ++col) {  // the renormalised weighted-sum slot
        const double want = (p_sel[0] * o_sel[0][c] + p_sel[1] * o_sel[1][c]) / scale_sum;
        EXPECT_NEAR(y[i][col].item<double>(), want, 1e-10) << "weighted slot, token " << i;
      }
      Vec s = attend(matvec(param(*t.block, "shared_q_proj.weight"), 0, dh, t.x[0][i]), Kmean, Vmean, i);
      for (int64_t c = 0; c < dh; ++c, ++col)
        EXPECT_NEAR(y[i][col].item<double>(), s[c], 1e-10) << "shared head, token " << i;
    }
  }
}

TEST(GQAAttentionByHand, MultiHeadAndGroupedHeads) {
  for (int64_t G : {4, 2, 1}) {  // MHA, GQA, MQA
    Tiny t = make_tiny("gqa", 4, G, "gqe");
    const int64_t N = 4, M = N / G, dh = 2, T = t.x.size(1);
    at::Tensor y = t.block->forward(t.x, nullptr).y.detach()[0];
    at::Tensor Wq = param(*t.block, "q_proj.weight"), Wk = param(*t.block, "k_proj.weight"),
               Wv = param(*t.block, "v_proj.weight");
    for (int64_t h = 0; h < N; ++h) {
      std::vector<Vec> K, V;
      for (int64_t j = 0; j < T; ++j) {
        K.push_back(matvec(Wk, (h / M) * dh, dh, t.x[0][j]));  // head h reads KV head h / M
        V.push_back(matvec(Wv, (h / M) * dh, dh, t.x[0][j]));
      }
      for (int64_t i = 0; i < T; ++i) {
        Vec o = attend(matvec(Wq, h * dh, dh, t.x[0][i]), K, V, i);
        for (int64_t c = 0; c < dh; ++c) EXPECT_NEAR(y[i][h * dh + c].item<double>(), o[c], 1e-10) << "G=" << G;
      }
    }
  }
}

}  // namespace
}  // namespace gqe
