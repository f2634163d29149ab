include(CheckCXXCompilerFlag)
option(LINEARIZE_NATIVE "Build tests, examples and benchmarks with -march=native (SIMD kernels)" ON)
check_cxx_compiler_flag(-march=native LINEARIZE_HAS_MARCH_NATIVE)

# Warnings for the project's own programs (tests, examples, benchmarks). LibTorch's headers come
# in as system headers through the imported target, so these apply to our code only.
function(linearize_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wno-unused-parameter)
  # GCC 12 reports false -Wstringop-overflow / -Warray-bounds / -Wrestrict positives inside libstdc++'s
  # string code at -O2 and above.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    target_compile_options(${target} PRIVATE -Wno-stringop-overflow -Wno-array-bounds -Wno-restrict)
  endif()
  # The fused kernel uses at::vec's AVX2 code when the compiler targets AVX2 (see kernels.hpp).
  if(LINEARIZE_NATIVE AND LINEARIZE_HAS_MARCH_NATIVE)
    target_compile_options(${target} PRIVATE -march=native)
  endif()
endfunction()
