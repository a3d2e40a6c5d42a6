# Included right after project() in a pip build (CMAKE_PROJECT_TOP_LEVEL_INCLUDES, set in pyproject.toml):
# puts the installed torch's CMake prefix first in CMAKE_PREFIX_PATH, so that the ops library is compiled
# against the torch that will load it, and not against another libtorch on the system (Debian's
# libtorch-dev 1.13, say, which find_package would otherwise find in the system paths).
set(_gqe_python "${Python_EXECUTABLE}")
if(NOT _gqe_python)
  find_program(_gqe_python NAMES python3 python REQUIRED)
endif()
execute_process(COMMAND "${_gqe_python}" -c "import torch.utils; print(torch.utils.cmake_prefix_path)"
                OUTPUT_VARIABLE _gqe_torch_prefix OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _gqe_rc)
if(NOT _gqe_rc EQUAL 0 OR NOT _gqe_torch_prefix)
  message(FATAL_ERROR "gqe: ${_gqe_python} cannot import torch: install torch first, then build with "
                      "pip install --no-build-isolation (the ops library is built against the installed torch)")
endif()
list(PREPEND CMAKE_PREFIX_PATH "${_gqe_torch_prefix}")
message(STATUS "gqe: building the ops library against the torch at ${_gqe_torch_prefix}")
