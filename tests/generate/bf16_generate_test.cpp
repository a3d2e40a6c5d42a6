// A small language model decoding with bf16 attention (attention_dtype.h: a bf16 KV cache and the bf16
// kernels) against the same model in fp32: the logits of every step, and greedy tokens step by step on the
// same (fp32-greedy) sequence. The bounds are from the measured differences (docs/kernels.md): logits about
// 3x above the largest seen, greedy tokens below the share seen (270 of 272 steps).
#include <gtest/gtest.h>

#include <iostream>

#include "gqe/attention/attention_dtype.h"
#include "gqe/generate/generate.h"
#include "test_util.h"

namespace gqe {
namespace {

TEST(Bf16Generate, LogitsAndGreedyTokensFollowFp32) {
  double worst = 0;
  int64_t steps = 0, equal = 0;
  for (const char* kind : {"gqe", "gqa"}) {
    ModelConfig c = test::small_config(kind, 16, 8, 1, "gqe", 64, 128);
    c.vocab_size = 256;
    at::manual_seed(3);
    LanguageModel model(c);
    test::randomise_routers(model);
    torch::NoGradGuard g;
    SamplingOptions greedy;
    greedy.temperature = 0.0;
    greedy.max_new_tokens = 96;
    std::vector<int64_t> prompt;
    for (int64_t i = 0; i < 40; ++i) prompt.push_back((i * 37 + 11) % c.vocab_size);
    const std::vector<int64_t> out = generate(model, prompt, greedy);
    std::vector<int64_t> seq = prompt;
    seq.insert(seq.end(), out.begin(), out.end());
    // Teacher-forced over the same tokens: prefill the prompt, then one token at a time.
    auto logits = [&](at::ScalarType dtype) {
      CpuAttentionDtypeScope scope(dtype);
      KVCache cache = model.make_cache();
      const at::Tensor ids = at::tensor(seq, at::kLong).unsqueeze(0);
      std::vector<at::Tensor> parts = {model.forward(ids.narrow(1, 0, int64_t(prompt.size())), &cache).logits};
      for (size_t t = prompt.size(); t < seq.size(); ++t) parts.push_back(model.forward(ids.narrow(1, int64_t(t), 1), &cache).logits);
      return at::cat(parts, 1)[0];
    };
    const at::Tensor l32 = logits(at::kFloat), l16 = logits(at::kBFloat16);
    worst = std::max(worst, test::max_rel_diff(l16, l32));
    const at::Tensor same = l16.argmax(-1).eq(l32.argmax(-1));
    steps += same.numel(), equal += same.sum().item<int64_t>();
  }
  const double share = double(equal) / double(steps);
  std::cout << "bf16 attention, small LM: logits within " << worst << " of fp32 (relative to the largest), greedy "
            << "token equal on " << equal << " of " << steps << " steps ("
            << (cpu_has_bf16_attention() ? "AVX512-BF16" : "fp32 fallback") << ")\n";
  EXPECT_LT(worst, 5e-3);
  EXPECT_GE(share, 0.97);
}

}  // namespace
}  // namespace gqe
