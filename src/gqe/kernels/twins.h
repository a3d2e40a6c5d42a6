// The one list of the fast kernels and their reference twins. Each fast kernel (CPU in src/gqe/kernels/,
// CUDA in src/gqe/kernels/cuda/) computes what its twin computes in plain libtorch ops, and a test compares
// the two. tests/kernels/twins_test.cpp keeps this list true: every row's header declares its kernel, the
// twin's header declares the twin, the test file calls both, every header under src/gqe/kernels/ is either a
// kernel's here or named in kKernelSupportHeaders, and docs/kernels.md's table shows exactly these rows.
// Torch-free, so that the check needs no kernel compiled (the CUDA rows are checked in CPU builds too).
#pragma once

namespace gqe::kernels {

enum class KernelDevice { cpu, cuda };

struct KernelTwin {
  const char* kernel;            // the fast kernel, qualified from namespace gqe
  const char* header;            // where it is declared, from the source root
  const char* reference;         // its twin: one function, or the composition of several ("a, b")
  const char* reference_header;  // where the twin is declared
  const char* test;              // the test that compares the two
  KernelDevice device;           // the tensors the kernel runs on
};

inline constexpr KernelTwin kKernelTwins[] = {
    {"kernels::flash_attention", "src/gqe/kernels/flash_attention.h", "kernels::flash_attention_reference",
     "src/gqe/kernels/reference.h", "tests/kernels/flash_attention_test.cpp", KernelDevice::cpu},
    {"kernels::gqe_decode", "src/gqe/kernels/gqe_decode.h", "kernels::gqe_decode_reference",
     "src/gqe/kernels/reference.h", "tests/kernels/gqe_decode_test.cpp", KernelDevice::cpu},
    {"kernels::routed_query_projection", "src/gqe/kernels/routed_projection.h",
     "kernels::routed_query_projection_reference", "src/gqe/kernels/reference.h",
     "tests/kernels/routed_projection_test.cpp", KernelDevice::cpu},
    {"kernels::narrow_projection", "src/gqe/kernels/routed_projection.h", "kernels::narrow_projection_reference",
     "src/gqe/kernels/reference.h", "tests/kernels/routed_projection_test.cpp", KernelDevice::cpu},
    {"kernels::rope", "src/gqe/kernels/rope.h", "kernels::rope_reference", "src/gqe/kernels/reference.h",
     "tests/kernels/rope_test.cpp", KernelDevice::cpu},
    {"kernels::route_top_k", "src/gqe/kernels/route_top_k.h", "kernels::top_k_reference",
     "src/gqe/kernels/reference.h", "tests/kernels/route_top_k_test.cpp", KernelDevice::cpu},
    // The method itself is the twin here: routing as the plain composition the attention blocks used first.
    {"kernels::fused_routing", "src/gqe/kernels/fused_routing.h", "route_tokens, weigh_routing",
     "src/gqe/attention/router.h", "tests/kernels/fused_routing_test.cpp", KernelDevice::cpu},
    // One to eight rows times a weight matrix, reading it once (the decode step's projections); the twin is
    // at::linear, named in the same header.
    {"kernels::linear_rows", "src/gqe/kernels/gemv.h", "kernels::linear_rows_reference", "src/gqe/kernels/gemv.h",
     "tests/kernels/gemv_test.cpp", KernelDevice::cpu},
    {"kernels::linear_row_blocks", "src/gqe/kernels/gemv.h", "kernels::linear_row_blocks_reference",
     "src/gqe/kernels/gemv.h", "tests/kernels/gemv_test.cpp", KernelDevice::cpu},
    {"kernels::gqe_slots", "src/gqe/kernels/gqe_slots.h", "kernels::gqe_slots_reference",
     "src/gqe/kernels/reference.h", "tests/kernels/gqe_slots_test.cpp", KernelDevice::cpu},
    {"kernels::cuda::sdpa_attention", "src/gqe/kernels/cuda/sdpa_attention.h", "kernels::flash_attention_reference",
     "src/gqe/kernels/reference.h", "tests/kernels/cuda/sdpa_attention_test.cpp", KernelDevice::cuda},
    {"kernels::cuda::sdpa_decode_ragged", "src/gqe/kernels/cuda/sdpa_attention.h", "kernels::gqe_decode_reference",
     "src/gqe/kernels/reference.h", "tests/kernels/cuda/sdpa_attention_test.cpp", KernelDevice::cuda},
    // Slot heads and shared head in one call; the twin attends twice (slot heads, then the shared head).
    {"kernels::cuda::gqe_attention", "src/gqe/kernels/cuda/gqe_attention.h", "kernels::flash_attention_reference",
     "src/gqe/kernels/reference.h", "tests/kernels/cuda/gqe_attention_test.cpp", KernelDevice::cuda},
    {"kernels::cuda::grouped_query_projection", "src/gqe/kernels/cuda/grouped_query_projection.h",
     "kernels::routed_query_projection_reference", "src/gqe/kernels/reference.h",
     "tests/kernels/cuda/grouped_query_projection_test.cpp", KernelDevice::cuda},
    {"kernels::cuda::rope_cached", "src/gqe/kernels/cuda/rope_table.h", "kernels::rope_reference",
     "src/gqe/kernels/reference.h", "tests/kernels/cuda/rope_table_test.cpp", KernelDevice::cuda},
    {"kernels::cuda::rope_cached_at", "src/gqe/kernels/cuda/rope_table.h", "kernels::rope_reference",
     "src/gqe/kernels/reference.h", "tests/kernels/cuda/rope_table_test.cpp", KernelDevice::cuda},
    {"kernels::cuda::route_top_k", "src/gqe/kernels/cuda/route_top_k.h", "kernels::top_k_reference",
     "src/gqe/kernels/reference.h", "tests/kernels/cuda/route_top_k_test.cpp", KernelDevice::cuda},
};

// The headers under src/gqe/kernels/ that declare no kernel of their own: the twins, the pieces the kernels
// are built from, and this list. A new header belongs either here or in a row of kKernelTwins.
inline constexpr const char* kKernelSupportHeaders[] = {
    "src/gqe/kernels/reference.h",     // the reference twins
    "src/gqe/kernels/twins.h",         // this list
    "src/gqe/kernels/cpu_check.h",     // the CPU kernels' device check
    "src/gqe/kernels/micro_gemm.h",    // the register-blocked product the CPU kernels share
    "src/gqe/kernels/simd.h",          // the vector layer under micro_gemm.h
    "src/gqe/kernels/parallel_items.h",  // work items over the threads
    "src/gqe/kernels/fma_peak.h",      // the machine's FMA peak, for the benchmark's percentages
    "src/gqe/kernels/bf16_avx512.h",   // the AVX512-BF16 inner loops of the kernels' bf16 paths, the CPU check
};

}  // namespace gqe::kernels
