// The projections of a decode step: a few rows of activations times a weight matrix, y = x W^T. With one
// to eight rows the work is reading W once from memory; a BLAS GEMM first packs W (a copy of it on every
// call), which triples the traffic. This kernel streams each row of W once for all rows of x, on
// libtorch's intra-op threads, and stays at the memory bandwidth.
#pragma once
#include <ATen/ATen.h>

namespace gqe::kernels {

// The most rows of x linear_rows takes; more rows are a GEMM's work (at::linear).
constexpr int64_t kLinearRowsMax = 8;

// x [..., K] float32 with at most kLinearRowsMax rows, w [N, K] float32 (any strides on x; w is made
// contiguous) -> [..., N] = at::linear(x, w). CPU tensors only; refuses other shapes and dtypes.
at::Tensor linear_rows(const at::Tensor& x, const at::Tensor& w);

// The twin: at::linear(x, w).
at::Tensor linear_rows_reference(const at::Tensor& x, const at::Tensor& w);

// One row x [..., K] (a single token) times the row blocks of w [N, K] that start at `starts` ([n] int64,
// `rows` rows each, inside w): [..., n * rows] = at::linear(x, w[starts[i] .. +rows] for each i, concatenated). The selected experts' query rows of a decode step, read in
// one pass over them. float32 CPU tensors.
at::Tensor linear_row_blocks(const at::Tensor& x, const at::Tensor& w, const at::Tensor& starts, int64_t rows);

// The twin: at::linear on the gathered rows.
at::Tensor linear_row_blocks_reference(const at::Tensor& x, const at::Tensor& w, const at::Tensor& starts, int64_t rows);

// Whether linear_rows takes (x, w): CPU float32 tensors, rows of x at most kLinearRowsMax, no gradient
// needed. The layers ask before calling it and run at::linear otherwise.
bool linear_rows_applies(const at::Tensor& x, const at::Tensor& w);

}  // namespace gqe::kernels
