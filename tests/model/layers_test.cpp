// The MLP's chunked inference path (long inputs without autograd) against the all-rows computation.
#include "gqe/model/layers.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace gqe {
namespace {

TEST(MLP, ChunkedInferenceEqualsAllRowsAtOnce) {
  for (MlpType type : {MlpType::swiglu, MlpType::gelu}) {
    ModelConfig c = test::small_config("gqa", 4, 2);
    c.mlp_type = type;
    at::manual_seed(21);
    MLP mlp(c);
    at::Tensor x = at::randn({2, 2500, c.hidden_size});  // 5000 rows: three chunks, the last one partial
    at::Tensor whole = mlp.forward(x);                  // autograd on: all rows at once
    at::Tensor chunked;
    {
      torch::NoGradGuard g;
      chunked = mlp.forward(x);
    }
    ASSERT_EQ(chunked.sizes(), whole.sizes());
    EXPECT_LT(test::max_rel_diff(chunked, whole.detach()), 1e-6) << to_string(type);
  }
}

}  // namespace
}  // namespace gqe
