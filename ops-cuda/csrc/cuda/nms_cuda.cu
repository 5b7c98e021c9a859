// CUDA NMS family. Hard NMS (optionally class-aware): a kernel fills a suppression bitmask between
// 64-box tiles of the score-sorted boxes, the greedy pass over the bitmask runs on the host.
// Soft-NMS is inherently sequential: one block selects (block-wide argmax) and rescores per step.
#include <vector>

#include "cuda_utils.cuh"
#include "ops.h"

namespace det_ops {
namespace {

constexpr int kTile = 64;

template <typename T>
__device__ __forceinline__ T iou_dev(const T* a, const T* b) {
  T w = fminf(a[2], b[2]) - fmaxf(a[0], b[0]);
  T h = fminf(a[3], b[3]) - fmaxf(a[1], b[1]);
  w = w > 0 ? w : 0;
  h = h > 0 ? h : 0;
  T inter = w * h;
  T area_a = (a[2] - a[0]) * (a[3] - a[1]);
  T area_b = (b[2] - b[0]) * (b[3] - b[1]);
  return inter / (area_a + area_b - inter);
}

template <>
__device__ __forceinline__ double iou_dev<double>(const double* a, const double* b) {
  double w = fmin(a[2], b[2]) - fmax(a[0], b[0]);
  double h = fmin(a[3], b[3]) - fmax(a[1], b[1]);
  w = w > 0 ? w : 0;
  h = h > 0 ? h : 0;
  double inter = w * h;
  double area_a = (a[2] - a[0]) * (a[3] - a[1]);
  double area_b = (b[2] - b[0]) * (b[3] - b[1]);
  return inter / (area_a + area_b - inter);
}

// mask[i, col_tile] bit t set when sorted box i suppresses sorted box col_tile*64+t (j > i).
template <typename T>
__global__ void nms_mask_kernel(int64_t n, T threshold, const T* boxes, const int64_t* classes, uint64_t* mask) {
  const int64_t row_tile = blockIdx.y, col_tile = blockIdx.x;
  if (row_tile > col_tile) return;
  const int64_t row_size = min((int64_t)kTile, n - row_tile * kTile);
  const int64_t col_size = min((int64_t)kTile, n - col_tile * kTile);
  __shared__ T tile[kTile * 4];
  __shared__ int64_t tile_cls[kTile];
  if (threadIdx.x < col_size) {
    for (int c = 0; c < 4; ++c) tile[threadIdx.x * 4 + c] = boxes[(col_tile * kTile + threadIdx.x) * 4 + c];
    tile_cls[threadIdx.x] = classes ? classes[col_tile * kTile + threadIdx.x] : 0;
  }
  __syncthreads();
  if (threadIdx.x >= row_size) return;
  const int64_t i = row_tile * kTile + threadIdx.x;
  const T* bi = boxes + i * 4;
  const int64_t ci = classes ? classes[i] : 0;
  uint64_t bits = 0;
  const int start = row_tile == col_tile ? threadIdx.x + 1 : 0;
  for (int t = start; t < col_size; ++t)
    if (tile_cls[t] == ci && iou_dev(bi, tile + t * 4) > threshold) bits |= 1ULL << t;
  mask[i * gridDim.x + col_tile] = bits;
}

at::Tensor nms_impl(const at::Tensor& boxes, const at::Tensor& scores, const at::Tensor* idxs, double thr) {
  TORCH_CHECK(boxes.dim() == 2 && boxes.size(1) == 4, "boxes must be [N, 4]");
  const int64_t n = boxes.size(0);
  if (n == 0) return at::empty({0}, boxes.options().dtype(at::kLong));
  c10::cuda::CUDAGuard guard(boxes.device());
  at::Tensor order = std::get<1>(scores.sort(/*stable=*/true, 0, /*descending=*/true));
  at::Tensor sorted = boxes.index_select(0, order).contiguous();
  at::Tensor classes = idxs ? idxs->to(at::kLong).index_select(0, order).contiguous() : at::Tensor();
  const int64_t tiles = (n + kTile - 1) / kTile;
  at::Tensor mask = at::empty({n, tiles}, boxes.options().dtype(at::kLong));
  dim3 grid(tiles, tiles);
  AT_DISPATCH_FLOATING_TYPES(boxes.scalar_type(), "nms_cuda", [&] {
    nms_mask_kernel<scalar_t><<<grid, kTile, 0, stream()>>>(
        n, (scalar_t)thr, sorted.data_ptr<scalar_t>(), idxs ? classes.data_ptr<int64_t>() : nullptr,
        reinterpret_cast<uint64_t*>(mask.data_ptr<int64_t>()));
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  at::Tensor mask_cpu = mask.cpu();
  const uint64_t* m = reinterpret_cast<const uint64_t*>(mask_cpu.data_ptr<int64_t>());
  std::vector<uint64_t> removed(tiles, 0);
  std::vector<int64_t> keep;
  for (int64_t i = 0; i < n; ++i) {
    if (removed[i / kTile] & (1ULL << (i % kTile))) continue;
    keep.push_back(i);
    for (int64_t t = i / kTile; t < tiles; ++t) removed[t] |= m[i * tiles + t];
  }
  at::Tensor keep_t = at::tensor(keep, at::TensorOptions().dtype(at::kLong)).to(boxes.device());
  return order.index_select(0, keep_t);
}

// Soft-NMS on one block; `alive` and `s` are scratch arrays of length n.
template <typename T>
__global__ void soft_nms_kernel(int64_t n, const T* boxes, T* s, uint8_t* alive, T thr, T sigma, T min_score,
                                int64_t method, T* dets, int64_t* inds, int64_t* count) {
  __shared__ T best_val[kThreads];
  __shared__ int64_t best_idx[kThreads];
  __shared__ int64_t out;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) alive[j] = s[j] >= min_score;
  if (threadIdx.x == 0) out = 0;
  __syncthreads();
  while (true) {
    // block-wide argmax over live boxes (ties: lowest index)
    T bv = 0;
    int64_t bi = -1;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
      if (alive[j] && (bi < 0 || s[j] > bv)) {
        bv = s[j];
        bi = j;
      }
    best_val[threadIdx.x] = bv;
    best_idx[threadIdx.x] = bi;
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride >>= 1) {
      if (threadIdx.x < stride) {
        const int64_t oi = best_idx[threadIdx.x + stride];
        const T ov = best_val[threadIdx.x + stride];
        const int64_t mi = best_idx[threadIdx.x];
        if (oi >= 0 && (mi < 0 || ov > best_val[threadIdx.x] || (ov == best_val[threadIdx.x] && oi < mi))) {
          best_idx[threadIdx.x] = oi;
          best_val[threadIdx.x] = ov;
        }
      }
      __syncthreads();
    }
    const int64_t i = best_idx[0];
    if (i < 0) break;
    if (threadIdx.x == 0) {
      for (int c = 0; c < 4; ++c) dets[out * 5 + c] = boxes[i * 4 + c];
      dets[out * 5 + 4] = s[i];
      inds[out] = i;
      out += 1;
      alive[i] = 0;
    }
    __syncthreads();
    const T* bi_box = boxes + i * 4;
    const T area_i = (bi_box[2] - bi_box[0]) * (bi_box[3] - bi_box[1]);
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
      if (!alive[j]) continue;
      const T* bj = boxes + j * 4;
      T w = min(bi_box[2], bj[2]) - max(bi_box[0], bj[0]);
      T h = min(bi_box[3], bj[3]) - max(bi_box[1], bj[1]);
      w = w > 0 ? w : 0;
      h = h > 0 ? h : 0;
      const T inter = w * h;
      const T uni = area_i + (bj[2] - bj[0]) * (bj[3] - bj[1]) - inter;
      const T iou = uni > 0 ? inter / uni : (T)0;
      T weight = 1;
      if (method == kSoftLinear) {
        weight = iou > thr ? (T)1 - iou : (T)1;
      } else if (method == kSoftGaussian) {
        weight = exp(-(iou * iou) / sigma);
      } else {
        weight = iou > thr ? (T)0 : (T)1;
      }
      s[j] *= weight;
      if (!(s[j] >= min_score)) alive[j] = 0;
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) *count = out;
}

}  // namespace

at::Tensor nms_cuda(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold) {
  return nms_impl(boxes, scores, nullptr, iou_threshold);
}

at::Tensor batched_nms_cuda(const at::Tensor& boxes, const at::Tensor& scores, const at::Tensor& idxs,
                            double iou_threshold) {
  return nms_impl(boxes, scores, &idxs, iou_threshold);
}

std::tuple<at::Tensor, at::Tensor> soft_nms_cuda(const at::Tensor& boxes_in, const at::Tensor& scores_in,
                                                 double iou_threshold, double sigma, double min_score,
                                                 int64_t method) {
  TORCH_CHECK(boxes_in.dim() == 2 && boxes_in.size(1) == 4, "boxes must be [N, 4]");
  c10::cuda::CUDAGuard guard(boxes_in.device());
  at::Tensor boxes = boxes_in.contiguous();
  at::Tensor s = scores_in.to(boxes.scalar_type()).contiguous().clone();
  const int64_t n = boxes.size(0);
  at::Tensor dets = at::empty({n, 5}, boxes.options());
  at::Tensor inds = at::empty({n}, boxes.options().dtype(at::kLong));
  if (n == 0) return std::make_tuple(dets, inds);
  at::Tensor alive = at::empty({n}, boxes.options().dtype(at::kByte));
  at::Tensor count = at::zeros({1}, boxes.options().dtype(at::kLong));
  AT_DISPATCH_FLOATING_TYPES(boxes.scalar_type(), "soft_nms_cuda", [&] {
    soft_nms_kernel<scalar_t><<<1, kThreads, 0, stream()>>>(
        n, boxes.data_ptr<scalar_t>(), s.data_ptr<scalar_t>(), alive.data_ptr<uint8_t>(), (scalar_t)iou_threshold,
        (scalar_t)sigma, (scalar_t)min_score, method, dets.data_ptr<scalar_t>(), inds.data_ptr<int64_t>(),
        count.data_ptr<int64_t>());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  const int64_t k = count.item<int64_t>();
  return std::make_tuple(dets.narrow(0, 0, k).clone(), inds.narrow(0, 0, k).clone());
}

}  // namespace det_ops
