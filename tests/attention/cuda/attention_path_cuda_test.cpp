// The CUDA attention path at block and model level against the float64 reference on the CPU: every
// variant, k = 1 and 2, G = 1 and G = N, odd lengths; outputs and every gradient (input, each weight, the
// router) in fp32 (1e-5 / 1e-4) and under bf16 autocast (2e-2). Decoding with a KV cache equals prefill, a
// ragged batch generates what each prompt generates alone; a tiny model trains on the GPU and its loss falls.
// Everything but the GPU-only kernels also runs with the CUDA path on CPU tensors (AttentionPathOverride),
// in every CUDA build; a prefill on the GPU never waits for the host (CUDA's sync debug mode).
#include <gtest/gtest.h>
#include <c10/cuda/CUDAFunctions.h>
#include <torch/optim/adamw.h>

#include "cuda_test_util.h"
#include "gqe/attention/attention.h"
#include "gqe/attention/attention_path.h"
#include "gqe/core/autocast.h"
#include "gqe/generate/generate.h"
#include "gqe/model/transformer.h"
#include "test_util.h"

namespace gqe {
namespace {

TEST(AttentionPathGpu, CudaTensorsTakeTheCudaPath) {
  GQE_REQUIRE_GPU();
  AttentionConfig a;
  EXPECT_STREQ(attention_path_for(a, at::zeros({1}, at::kCUDA)).name(), "cuda");
  EXPECT_STREQ(attention_path_for(a, at::zeros({1}, at::TensorOptions(at::kCUDA).dtype(at::kBFloat16))).name(), "cuda");
  EXPECT_STREQ(attention_path_for(a, at::zeros({1}, at::TensorOptions(at::kCUDA).dtype(at::kDouble))).name(), "reference");
  a.implementation = AttentionImplementation::reference;
  EXPECT_STREQ(attention_path_for(a, at::zeros({1}, at::kCUDA)).name(), "reference");
}

void compare_block(const ModelConfig& c, int64_t T, bool bf16, at::Device device = at::kCUDA) {
  const std::string what = model_config_to_json(c, -1) + " T=" + std::to_string(T) + (bf16 ? " bf16" : " fp32");
  auto ref = make_attention(c);
  test::randomise_router_weights(*ref);
  ref->to(at::kDouble);
  auto gpu = make_attention(c);
  gpu->to(device);
  test::copy_parameters(*ref, *gpu);
  at::Tensor x = at::randn({2, T, c.hidden_size}, at::kDouble), probe = at::randn({2, T, c.hidden_size}, at::kDouble);
  at::Tensor xr = x.clone().requires_grad_(), xg = x.to(device, at::kFloat).requires_grad_();
  AttentionResult rr = ref->forward(xr, nullptr);
  AttentionResult rg;
  {
    CudaAutocastScope ac(bf16);
    rg = gpu->forward(xg, nullptr);
  }
  const double tol_out = bf16 ? 2e-2 : 1e-5, tol_grad = bf16 ? 2e-2 : 1e-4;
  EXPECT_LT(test::max_rel_diff(rg.y.to(at::kCPU, at::kDouble), rr.y), tol_out) << what;
  ((rr.y * probe).sum() + 0.5 * rr.aux_loss).backward();
  ((rg.y.to(at::kFloat) * probe.to(device, at::kFloat)).sum() + 0.5 * rg.aux_loss).backward();
  EXPECT_LT(test::max_rel_diff(xg.grad().to(at::kCPU, at::kDouble), xr.grad()), tol_grad) << "dx " << what;
  auto gr = ref->named_parameters();
  for (auto& p : gpu->named_parameters()) {
    const at::Tensor& want = gr[p.key()].grad();
    ASSERT_TRUE(p.value().grad().defined()) << p.key() << " " << what;
    if (want.abs().max().item<double>() == 0) continue;
    EXPECT_LT(test::max_rel_diff(p.value().grad().to(at::kCPU, at::kDouble), want), tol_grad) << p.key() << " " << what;
  }
}

TEST(AttentionPathGpu, BlocksMatchFloat64Reference) {
  GQE_REQUIRE_GPU();
  for (const ModelConfig& c : test::attention_test_configs()) {
    for (int64_t T : {37, 70}) {
      at::manual_seed(60 + T);
      compare_block(c, T, /*bf16=*/false);
      compare_block(c, T, /*bf16=*/true);
    }
  }
}

void check_decoding_equals_prefill(at::Device device) {
  for (const ModelConfig& c : test::attention_test_configs()) {
    at::manual_seed(71);
    auto a = make_attention(c);
    test::randomise_router_weights(*a);
    a->to(device);
    torch::NoGradGuard g;
    const int64_t T = 23;
    at::Tensor x = at::randn({2, T, c.hidden_size}, at::TensorOptions(device));
    at::Tensor full = a->forward(x, nullptr).y;
    LayerKVCache cache;
    std::vector<at::Tensor> parts = {a->forward(x.narrow(1, 0, 9), &cache).y};  // chunked prefill, then decode
    for (int64_t t = 9; t < T; ++t) parts.push_back(a->forward(x.narrow(1, t, 1), &cache).y);
    EXPECT_LT(test::max_rel_diff(at::cat(parts, 1), full), 1e-5) << model_config_to_json(c, -1);
  }
}

// generate_batch (a right-padded prefill, then ragged decode steps) gives each prompt what generate gives it
// alone, greedy.
void check_ragged_batch_equals_single(at::Device device) {
  ModelConfig c = test::small_config("gqe", 8, 4, 1, "gqe", 16, 64);
  at::manual_seed(72);
  LanguageModel model(c);
  test::randomise_router_weights(model);
  model.to(device);
  const std::vector<std::vector<int64_t>> prompts = {{1, 2, 3, 4, 5, 6, 7}, {9}, {4, 4, 8, 15}};
  SamplingOptions s;
  s.temperature = 0;
  s.max_new_tokens = 9;
  s.vocab_limit = c.vocab_size;
  const auto batch = generate_batch(model, prompts, s);
  for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(batch[i], generate(model, prompts[i], s)) << "prompt " << i;
}

TEST(AttentionPathGpu, DecodingWithKVCacheEqualsPrefill) {
  GQE_REQUIRE_GPU();
  check_decoding_equals_prefill(at::kCUDA);
}

TEST(AttentionPathGpu, RaggedBatchGeneratesAsEachPromptAlone) {
  GQE_REQUIRE_GPU();
  check_ragged_batch_equals_single(at::kCUDA);
}

// The CUDA path's code on CPU tensors: everything but the GPU-only top-k kernel, which its reference replaces.
TEST(AttentionPathCudaOnCpu, BlocksMatchFloat64Reference) {
  AttentionPathOverride cuda(cuda_attention_path());
  for (const ModelConfig& c : test::attention_test_configs()) {
    at::manual_seed(63);
    compare_block(c, 37, /*bf16=*/false, at::kCPU);
  }
}

TEST(AttentionPathCudaOnCpu, DecodingWithKVCacheEqualsPrefill) {
  AttentionPathOverride cuda(cuda_attention_path());
  check_decoding_equals_prefill(at::kCPU);
}

TEST(AttentionPathCudaOnCpu, RaggedBatchGeneratesAsEachPromptAlone) {
  AttentionPathOverride cuda(cuda_attention_path());
  check_ragged_batch_equals_single(at::kCPU);
}

// A GQE layer's prefill and training step on the GPU never wait for the host: CUDA's sync debug mode turns
// every synchronising call (a size read back, a .item(), a blocking copy) into an error.
TEST(AttentionPathGpu, GqeLayerNeverSynchronises) {
  GQE_REQUIRE_GPU();
  for (int64_t T : {64, 8192}) {  // the dense routed projection and the grouped GEMM (M / k = 4)
    ModelConfig c = test::small_config("gqe", 16, 4, 1, "gqe", 16, 128);
    c.max_position_embeddings = 8192;
    auto a = make_attention(c);
    test::randomise_router_weights(*a);
    a->to(at::kCUDA);
    at::Tensor x = at::randn({1, T, c.hidden_size}, at::kCUDA).requires_grad_();
    a->forward(x, nullptr);  // warm-up: tables, workspaces
    c10::cuda::warning_state().set_sync_debug_mode(c10::cuda::SyncDebugMode::L_ERROR);
    try {
      CudaAutocastScope ac(true);
      AttentionResult r = a->forward(x, nullptr);
      (r.y.sum() + r.aux_loss).backward();
    } catch (const std::exception& e) {
      ADD_FAILURE() << "T=" << T << ": " << e.what();
    }
    c10::cuda::warning_state().set_sync_debug_mode(c10::cuda::SyncDebugMode::L_DISABLED);
  }
}

TEST(AttentionPathGpu, TinyModelTrainsUnderBf16Autocast) {
  GQE_REQUIRE_GPU();
  at::manual_seed(81);
  ModelConfig c = test::small_config("gqe", 8, 4, 1, "gqe", 16, 64);
  LanguageModel model(c);
  model.to(at::kCUDA);
  torch::optim::AdamW opt(model.parameters(), torch::optim::AdamWOptions(3e-3));
  at::Tensor tok = at::randint(0, c.vocab_size, {4, 65}, at::TensorOptions(at::kCUDA).dtype(at::kLong));
  at::Tensor x = tok.narrow(1, 0, 64), y = tok.narrow(1, 1, 64);
  double first = 0, last = 0;
  for (int step = 0; step < 40; ++step) {
    opt.zero_grad();
    at::Tensor loss;
    {
      CudaAutocastScope ac(true);
      LMOutput o = model.forward(x);
      loss = LanguageModel::lm_loss(o.logits.to(at::kFloat), y) + c.attention.aux_loss_weight * o.aux_loss;
    }
    loss.backward();
    opt.step();
    (step == 0 ? first : last) = loss.item<double>();
  }
  EXPECT_LT(last, 0.5 * first) << "loss " << first << " -> " << last;
}

}  // namespace
}  // namespace gqe
