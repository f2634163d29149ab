# Finds what linearize needs and links it into a target. Used by the build tree and, installed,
# by linearizeConfig.cmake, so a consumer's find_package(linearize) finds the same things.
include(CMakeFindDependencyMacro)

# LibTorch: Debian's libtorch-dev, or one given by CMAKE_PREFIX_PATH (e.g. the one inside a
# PyTorch installation: python3 -c 'import torch; print(torch.utils.cmake_prefix_path)').
find_dependency(Torch)
find_dependency(Boost 1.71)        # header-only use: Boost.Hana
find_dependency(ZLIB)              # Fashion-MNIST's .gz files
find_dependency(JPEG)              # TinyImageNet's JPEG tree
find_dependency(Threads)
find_dependency(nlohmann_json 3.10)  # records, checkpoint state and result rows as JSON
find_dependency(fmt 9)               # numbers and durations in reports and progress lines
# PI export (io/onnx_export.hpp, io/pi_manifest.hpp): ONNX's protobuf classes (Debian's
# libonnx-dev; Debian's LibTorch links the same libonnx already). ONNX's package config needs
# protobuf's targets first.
find_dependency(Protobuf)
find_dependency(ONNX)
# at::parallel_for is inline code: in a translation unit built without OpenMP its
# `#pragma omp parallel` is ignored and the fused kernels run on one thread.
find_dependency(OpenMP)

# c10d's process groups (distributed/process_group.hpp) exist only where LibTorch was built with
# them, and their headers show them only with USE_C10D_GLOO / USE_C10D_NCCL defined: each is
# defined here where a program using it compiles and links against this LibTorch (Gloo also
# needs its headers, Debian's libgloo-dev; NCCL a CUDA build of LibTorch).
include(CheckCXXSourceCompiles)
if(NOT DEFINED LINEARIZE_C10D_GLOO OR NOT DEFINED LINEARIZE_C10D_NCCL)
  set(CMAKE_REQUIRED_LIBRARIES torch)
  set(CMAKE_REQUIRED_QUIET ON)
  set(CMAKE_REQUIRED_DEFINITIONS -DUSE_C10D_GLOO)
  check_cxx_source_compiles([[
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
int main() { return c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1") == nullptr; }
]] LINEARIZE_C10D_GLOO)
  set(CMAKE_REQUIRED_DEFINITIONS -DUSE_C10D_NCCL)
  check_cxx_source_compiles([[
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
int main() { return c10d::ProcessGroupNCCL::Options::create() == nullptr; }
]] LINEARIZE_C10D_NCCL)
  unset(CMAKE_REQUIRED_LIBRARIES)
  unset(CMAKE_REQUIRED_DEFINITIONS)
  unset(CMAKE_REQUIRED_QUIET)
  foreach(backend GLOO NCCL)
    if(LINEARIZE_C10D_${backend})
      message(STATUS "linearize: c10d ${backend}: yes")
    else()
      message(STATUS "linearize: c10d ${backend}: no")
    endif()
  endforeach()
endif()

function(linearize_link_dependencies target)
  target_link_libraries(${target} INTERFACE torch Boost::headers ZLIB::ZLIB JPEG::JPEG Threads::Threads
                        OpenMP::OpenMP_CXX onnx nlohmann_json::nlohmann_json fmt::fmt)
  if(LINEARIZE_C10D_GLOO)
    target_compile_definitions(${target} INTERFACE USE_C10D_GLOO)
  endif()
  if(LINEARIZE_C10D_NCCL)
    target_compile_definitions(${target} INTERFACE USE_C10D_NCCL)
  endif()
endfunction()
