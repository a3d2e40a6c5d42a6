# The portable build of the PyTorch ops library (GQE_TORCH_OPS_ISAS, included from CMakeLists.txt): one ops
# library per instruction set, libgqe_torch_ops_<isa>.so, each linking its own copy of gqe_nn compiled from
# the same sources with that set's flags. python/gqe/_library.py loads exactly one of them, the best the CPU
# runs. The hand-written kernels pick their vector width from the compiler's flags (src/gqe/kernels/simd.h,
# micro_gemm.h), so a copy per instruction set is how one wheel carries all widths.

# The flags of each instruction set: the same as scripts/test-portable.sh, whose kernel tests cover each.
#   scalar  any x86-64 (or other) CPU: width 1, what the compiler auto-vectorises with its baseline
#   avx2    AVX2 + FMA (width 8)
#   avx512  AVX-512F (width 16), with AVX2 + FMA
set(GQE_ISA_FLAGS_scalar "")
set(GQE_ISA_FLAGS_avx2 -mavx2 -mfma)
set(GQE_ISA_FLAGS_avx512 -mavx512f -mavx2 -mfma)
set(GQE_KNOWN_ISAS avx512 avx2 scalar)

# gqe_copy_target(<new> <base> <flags...>): a static library <new> from <base>'s sources with <base>'s own
# settings and usage requirements (include folders, definitions, options, links, precompiled header), plus
# <flags>. Copied from the target rather than restated, so a change to gqe_nn in CMakeLists.txt reaches
# every copy.
function(gqe_copy_target new base)
  get_target_property(_sources ${base} SOURCES)
  add_library(${new} STATIC ${_sources})
  foreach(_prop INCLUDE_DIRECTORIES INTERFACE_INCLUDE_DIRECTORIES COMPILE_DEFINITIONS
                INTERFACE_COMPILE_DEFINITIONS COMPILE_OPTIONS INTERFACE_COMPILE_OPTIONS COMPILE_FEATURES
                INTERFACE_COMPILE_FEATURES LINK_LIBRARIES INTERFACE_LINK_LIBRARIES PRECOMPILE_HEADERS
                POSITION_INDEPENDENT_CODE)
    get_target_property(_value ${base} ${_prop})
    if(_value)
      set_property(TARGET ${new} PROPERTY ${_prop} "${_value}")
    endif()
  endforeach()
  target_compile_options(${new} PRIVATE ${ARGN})
endfunction()

# gqe_torch_ops_for_isas(<isa>...): the targets gqe_nn_<isa> and gqe_torch_ops_<isa> (installed into the
# package), and gqe_torch_ops, which builds them all (the target pyproject.toml names).
function(gqe_torch_ops_for_isas)
  include(CheckCXXCompilerFlag)
  foreach(isa ${ARGN})
    if(NOT isa IN_LIST GQE_KNOWN_ISAS)
      message(FATAL_ERROR "GQE_TORCH_OPS_ISAS: unknown instruction set '${isa}' (known: ${GQE_KNOWN_ISAS})")
    endif()
  endforeach()
  # -march=native (GQE_NATIVE, an add_compile_options for every target) or an instruction set in the
  # global flags would be compiled into every copy, and the scalar library would not be portable.
  get_directory_property(_dir_options COMPILE_OPTIONS)
  if(_dir_options MATCHES "-march=" OR CMAKE_CXX_FLAGS MATCHES "-march=|-mavx|-mfma"
     OR CMAKE_CXX_FLAGS_RELEASE MATCHES "-march=|-mavx|-mfma")
    message(FATAL_ERROR "GQE_TORCH_OPS_ISAS: the global compile flags name an instruction set "
                        "('${_dir_options}' '${CMAKE_CXX_FLAGS}'); a portable build needs GQE_NATIVE=OFF and none")
  endif()
  add_custom_target(gqe_torch_ops)
  foreach(isa ${ARGN})
    set(_flags ${GQE_ISA_FLAGS_${isa}})
    if(_flags)
      string(REPLACE ";" " " _flag_string "${_flags}")
      check_cxx_compiler_flag("${_flag_string}" GQE_COMPILER_HAS_${isa})
      if(NOT GQE_COMPILER_HAS_${isa})
        message(FATAL_ERROR "GQE_TORCH_OPS_ISAS: the compiler does not accept ${isa}'s flags (${_flag_string})")
      endif()
    endif()
    # Each library carries a private copy of the kernels, all under the same C++ names with different
    # bodies (simd::Vec is 16, 8 or 1 float wide). Hidden visibility, and no export of what the static
    # archive brings (--exclude-libs), keep each copy's symbols inside its own .so: nothing of one variant
    # can bind to another's, even if a process had two of them mapped. The ops library exports nothing
    # anyway; TORCH_LIBRARY registers the ops from a static initialiser when it is loaded.
    set(_hidden -fvisibility=hidden -fvisibility-inlines-hidden)
    # Host C++ only: a CUDA build's .cu files (nvcc) take neither.
    set(_cxx_flags $<$<COMPILE_LANGUAGE:CXX>:${_flags};${_hidden}>)
    gqe_copy_target(gqe_nn_${isa} gqe_nn "${_cxx_flags}")
    add_library(gqe_torch_ops_${isa} SHARED ${GQE_TORCH_OPS_SOURCES})
    target_link_libraries(gqe_torch_ops_${isa} PRIVATE gqe_nn_${isa})
    # The same flags as its gqe_nn copy: the kernels' inline functions in the headers ops.cpp includes
    # must have one body within the library.
    target_compile_options(gqe_torch_ops_${isa} PRIVATE -Wall -Wextra -Wno-unused-parameter "${_cxx_flags}")
    target_link_options(gqe_torch_ops_${isa} PRIVATE -Wl,--exclude-libs,ALL)
    target_precompile_headers(gqe_torch_ops_${isa} REUSE_FROM gqe_nn_${isa})
    add_dependencies(gqe_torch_ops gqe_torch_ops_${isa})
    if(SKBUILD)
      install(TARGETS gqe_torch_ops_${isa} LIBRARY DESTINATION gqe)
    endif()
  endforeach()
  message(STATUS "gqe: portable ops libraries for ${ARGN} (python/gqe/_library.py loads the best one the CPU runs)")
endfunction()
