// Launch helpers shared by the CUDA kernels: grid-stride loops, launch sizes and stream access.
// Only c10/cuda headers are used (not ATen/cuda/CUDAContext.h), so the build needs nothing beyond
// the CUDA runtime headers (no cuBLAS/cuSPARSE/cuSOLVER development headers).
#pragma once

#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <cstdint>

namespace det_ops {

constexpr int kThreads = 256;

// Blocks for `n` grid-stride work items (capped: kernels loop over the rest).
inline int blocks_for(int64_t n) {
  return (int)std::max<int64_t>(1, std::min<int64_t>((n + kThreads - 1) / kThreads, 4096));
}

inline cudaStream_t stream() { return c10::cuda::getCurrentCUDAStream(); }

}  // namespace det_ops

#define DET_CUDA_LOOP(i, n) \
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (int64_t)blockDim.x * gridDim.x)
