// CUDA RoI pooling family: RoIAlign (avg/max), RoIPool, deformable RoI pooling. One thread per
// output bin; backward passes scatter with atomicAdd. Sampling rules come from common.h, shared
// with the CPU kernels.
#include <limits>

#include "common.h"
#include "cuda_utils.cuh"
#include "ops.h"

namespace det_ops {
namespace {

// Sample (iy, ix) of bin (ph, pw), shifted by (dy, dx).
template <typename T>
__device__ __forceinline__ RoiCorners<T> bin_sample(const RoiGeom<T>& g, int ph, int pw, int iy, int ix, T dy, T dx,
                                                    int height, int width) {
  const T y = g.start_h + dy + ph * g.bin_h + ((T)iy + (T)0.5) * g.bin_h / (T)g.grid_h;
  const T x = g.start_w + dx + pw * g.bin_w + ((T)ix + (T)0.5) * g.bin_w / (T)g.grid_w;
  return roi_corners<T>(height, width, y, x);
}

template <typename T>
__device__ __forceinline__ void atomic_corners(T* plane, const RoiCorners<T>& s, T g) {
  if (!s.valid) return;
  atomicAdd(plane + s.p1, g * s.w1);
  atomicAdd(plane + s.p2, g * s.w2);
  atomicAdd(plane + s.p3, g * s.w3);
  atomicAdd(plane + s.p4, g * s.w4);
}

// Value of bin (ph, pw) of `plane`; for max mode also the winning sample (iy, ix) or -1.
template <typename T>
__device__ T pool_bin(const T* plane, const RoiGeom<T>& g, int ph, int pw, T dy, T dx, int height, int width,
                      bool use_max, int* arg_iy, int* arg_ix) {
  T acc = 0;
  bool any = false;
  *arg_iy = -1;
  *arg_ix = -1;
  for (int iy = 0; iy < g.grid_h; ++iy)
    for (int ix = 0; ix < g.grid_w; ++ix) {
      const T v = roi_sample(plane, bin_sample(g, ph, pw, iy, ix, dy, dx, height, width));
      if (use_max) {
        if (!any || v > acc) {
          acc = v;
          *arg_iy = iy;
          *arg_ix = ix;
        }
        any = true;
      } else {
        acc += v;
      }
    }
  return use_max ? acc : acc / g.count;
}

template <typename T>
__global__ void roi_align_fwd(int64_t total, const T* in, const T* rois, T* out, T scale, int channels, int height,
                              int width, int pooled_h, int pooled_w, int sampling, bool aligned, bool use_max) {
  DET_CUDA_LOOP(idx, total) {
    const int pw = idx % pooled_w, ph = (idx / pooled_w) % pooled_h;
    const int64_t c = (idx / pooled_w / pooled_h) % channels, k = idx / pooled_w / pooled_h / channels;
    const RoiGeom<T> g = roi_geometry<T>(rois + 5 * k, scale, aligned, pooled_h, pooled_w, sampling);
    int ay, ax;
    out[idx] = pool_bin(in + (g.batch * channels + c) * height * width, g, ph, pw, (T)0, (T)0, height, width,
                        use_max, &ay, &ax);
  }
}

template <typename T>
__global__ void roi_align_bwd(int64_t total, const T* grad, const T* in, const T* rois, T* grad_in, T scale,
                              int channels, int height, int width, int pooled_h, int pooled_w, int sampling,
                              bool aligned, bool use_max) {
  DET_CUDA_LOOP(idx, total) {
    const int pw = idx % pooled_w, ph = (idx / pooled_w) % pooled_h;
    const int64_t c = (idx / pooled_w / pooled_h) % channels, k = idx / pooled_w / pooled_h / channels;
    const RoiGeom<T> g = roi_geometry<T>(rois + 5 * k, scale, aligned, pooled_h, pooled_w, sampling);
    const int64_t plane_off = (g.batch * channels + c) * height * width;
    if (use_max) {
      int ay, ax;
      pool_bin(in + plane_off, g, ph, pw, (T)0, (T)0, height, width, true, &ay, &ax);
      if (ay >= 0) atomic_corners(grad_in + plane_off, bin_sample(g, ph, pw, ay, ax, (T)0, (T)0, height, width), grad[idx]);
    } else {
      const T gb = grad[idx] / g.count;
      for (int iy = 0; iy < g.grid_h; ++iy)
        for (int ix = 0; ix < g.grid_w; ++ix)
          atomic_corners(grad_in + plane_off, bin_sample(g, ph, pw, iy, ix, (T)0, (T)0, height, width), gb);
    }
  }
}

template <typename T>
__global__ void roi_pool_fwd(int64_t total, const T* in, const T* rois, T* out, int64_t* argmax, T scale,
                             int channels, int height, int width, int pooled_h, int pooled_w) {
  DET_CUDA_LOOP(idx, total) {
    const int pw = idx % pooled_w, ph = (idx / pooled_w) % pooled_h;
    const int64_t c = (idx / pooled_w / pooled_h) % channels, k = idx / pooled_w / pooled_h / channels;
    const T* roi = rois + 5 * k;
    const int64_t batch = (int64_t)roi[0];
    const int start_w = (int)round(roi[1] * scale), start_h = (int)round(roi[2] * scale);
    const int end_w = (int)round(roi[3] * scale), end_h = (int)round(roi[4] * scale);
    const int roi_w = max(end_w - start_w + 1, 1), roi_h = max(end_h - start_h + 1, 1);
    const T bin_h = (T)roi_h / (T)pooled_h, bin_w = (T)roi_w / (T)pooled_w;
    const int hstart = min(max((int)floor((T)ph * bin_h) + start_h, 0), height);
    const int hend = min(max((int)ceil((T)(ph + 1) * bin_h) + start_h, 0), height);
    const int wstart = min(max((int)floor((T)pw * bin_w) + start_w, 0), width);
    const int wend = min(max((int)ceil((T)(pw + 1) * bin_w) + start_w, 0), width);
    const bool empty = hend <= hstart || wend <= wstart;
    const T* plane = in + (batch * channels + c) * height * width;
    T best = empty ? (T)0 : std::numeric_limits<T>::lowest();
    int64_t best_idx = -1;
    for (int h = hstart; h < hend; ++h)
      for (int w = wstart; w < wend; ++w) {
        const int64_t i = (int64_t)h * width + w;
        if (plane[i] > best) {
          best = plane[i];
          best_idx = i;
        }
      }
    out[idx] = best;
    argmax[idx] = best_idx;
  }
}

template <typename T>
__global__ void roi_pool_bwd(int64_t total, const T* grad, const int64_t* argmax, const T* rois, T* grad_in,
                             int64_t channels, int64_t plane_size, int64_t bins) {
  DET_CUDA_LOOP(idx, total) {
    const int64_t c = (idx / bins) % channels, k = idx / bins / channels;
    const int64_t batch = (int64_t)rois[5 * k];
    if (argmax[idx] >= 0) atomicAdd(grad_in + (batch * channels + c) * plane_size + argmax[idx], grad[idx]);
  }
}

template <typename T>
__device__ __forceinline__ void bin_shift(const T* off, const RoiGeom<T>& g, int64_t k, int bin, int bins, T gamma,
                                          T* dy, T* dx) {
  *dx = off ? gamma * g.roi_w * off[(k * 2 + 0) * bins + bin] : (T)0;
  *dy = off ? gamma * g.roi_h * off[(k * 2 + 1) * bins + bin] : (T)0;
}

template <typename T>
__global__ void deform_roi_pool_fwd(int64_t total, const T* in, const T* rois, const T* off, T* out, T scale,
                                    int channels, int height, int width, int pooled_h, int pooled_w, int sampling,
                                    T gamma, bool aligned) {
  DET_CUDA_LOOP(idx, total) {
    const int pw = idx % pooled_w, ph = (idx / pooled_w) % pooled_h;
    const int64_t c = (idx / pooled_w / pooled_h) % channels, k = idx / pooled_w / pooled_h / channels;
    const RoiGeom<T> g = roi_geometry<T>(rois + 5 * k, scale, aligned, pooled_h, pooled_w, sampling);
    T dy, dx;
    bin_shift(off, g, k, ph * pooled_w + pw, pooled_h * pooled_w, gamma, &dy, &dx);
    int ay, ax;
    out[idx] = pool_bin(in + (g.batch * channels + c) * height * width, g, ph, pw, dy, dx, height, width, false,
                        &ay, &ax);
  }
}

template <typename T>
__global__ void deform_roi_pool_bwd(int64_t total, const T* grad, const T* in, const T* rois, const T* off,
                                    T* grad_in, T* grad_off, T scale, int channels, int height, int width,
                                    int pooled_h, int pooled_w, int sampling, T gamma, bool aligned) {
  DET_CUDA_LOOP(idx, total) {
    const int pw = idx % pooled_w, ph = (idx / pooled_w) % pooled_h;
    const int64_t c = (idx / pooled_w / pooled_h) % channels, k = idx / pooled_w / pooled_h / channels;
    const RoiGeom<T> g = roi_geometry<T>(rois + 5 * k, scale, aligned, pooled_h, pooled_w, sampling);
    const int bins = pooled_h * pooled_w, bin = ph * pooled_w + pw;
    T dy, dx;
    bin_shift(off, g, k, bin, bins, gamma, &dy, &dx);
    const int64_t plane_off = (g.batch * channels + c) * height * width;
    const T gb = grad[idx] / g.count;
    T gy = 0, gx = 0;
    for (int iy = 0; iy < g.grid_h; ++iy)
      for (int ix = 0; ix < g.grid_w; ++ix) {
        const RoiCorners<T> s = bin_sample(g, ph, pw, iy, ix, dy, dx, height, width);
        atomic_corners(grad_in + plane_off, s, gb);
        if (off) {
          T sy, sx;
          roi_sample_grad_pos(in + plane_off, s, &sy, &sx);
          gy += gb * sy;
          gx += gb * sx;
        }
      }
    if (off) {
      atomicAdd(grad_off + (k * 2 + 0) * bins + bin, gx * gamma * g.roi_w);
      atomicAdd(grad_off + (k * 2 + 1) * bins + bin, gy * gamma * g.roi_h);
    }
  }
}

void check_rois(const at::Tensor& input, const at::Tensor& rois) {
  TORCH_CHECK(input.dim() == 4, "input must be [N, C, H, W], got ", input.sizes());
  TORCH_CHECK(rois.dim() == 2 && rois.size(1) == 5, "rois must be [K, 5], got ", rois.sizes());
}

}  // namespace

at::Tensor roi_align_forward_cuda(const at::Tensor& input_in, const at::Tensor& rois_in, double spatial_scale,
                                  int64_t pooled_h, int64_t pooled_w, int64_t sampling_ratio, bool aligned,
                                  bool use_max) {
  check_rois(input_in, rois_in);
  c10::cuda::CUDAGuard guard(input_in.device());
  at::Tensor input = input_in.contiguous();
  at::Tensor rois = rois_in.to(input.scalar_type()).contiguous();
  at::Tensor output = at::zeros({rois.size(0), input.size(1), pooled_h, pooled_w}, input.options());
  const int64_t total = output.numel();
  if (total == 0) return output;
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "roi_align_forward_cuda", [&] {
    roi_align_fwd<scalar_t><<<blocks_for(total), kThreads, 0, stream()>>>(
        total, input.data_ptr<scalar_t>(), rois.data_ptr<scalar_t>(), output.data_ptr<scalar_t>(),
        (scalar_t)spatial_scale, input.size(1), input.size(2), input.size(3), pooled_h, pooled_w, sampling_ratio,
        aligned, use_max);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return output;
}

at::Tensor roi_align_backward_cuda(const at::Tensor& grad_in, const at::Tensor& input_in, const at::Tensor& rois_in,
                                   double spatial_scale, int64_t pooled_h, int64_t pooled_w, int64_t sampling_ratio,
                                   bool aligned, bool use_max) {
  check_rois(input_in, rois_in);
  c10::cuda::CUDAGuard guard(grad_in.device());
  at::Tensor input = input_in.contiguous();
  at::Tensor grad = grad_in.contiguous();
  at::Tensor rois = rois_in.to(input.scalar_type()).contiguous();
  at::Tensor grad_input = at::zeros_like(input);
  const int64_t total = grad.numel();
  if (total == 0 || input.numel() == 0) return grad_input;
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "roi_align_backward_cuda", [&] {
    roi_align_bwd<scalar_t><<<blocks_for(total), kThreads, 0, stream()>>>(
        total, grad.data_ptr<scalar_t>(), input.data_ptr<scalar_t>(), rois.data_ptr<scalar_t>(),
        grad_input.data_ptr<scalar_t>(), (scalar_t)spatial_scale, input.size(1), input.size(2), input.size(3),
        pooled_h, pooled_w, sampling_ratio, aligned, use_max);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return grad_input;
}

std::tuple<at::Tensor, at::Tensor> roi_pool_forward_cuda(const at::Tensor& input_in, const at::Tensor& rois_in,
                                                         double spatial_scale, int64_t pooled_h, int64_t pooled_w) {
  check_rois(input_in, rois_in);
  c10::cuda::CUDAGuard guard(input_in.device());
  at::Tensor input = input_in.contiguous();
  at::Tensor rois = rois_in.to(input.scalar_type()).contiguous();
  const int64_t num_rois = rois.size(0), channels = input.size(1);
  at::Tensor output = at::zeros({num_rois, channels, pooled_h, pooled_w}, input.options());
  at::Tensor argmax = at::full({num_rois, channels, pooled_h, pooled_w}, -1, input.options().dtype(at::kLong));
  const int64_t total = output.numel();
  if (total == 0) return std::make_tuple(output, argmax);
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "roi_pool_forward_cuda", [&] {
    roi_pool_fwd<scalar_t><<<blocks_for(total), kThreads, 0, stream()>>>(
        total, input.data_ptr<scalar_t>(), rois.data_ptr<scalar_t>(), output.data_ptr<scalar_t>(),
        argmax.data_ptr<int64_t>(), (scalar_t)spatial_scale, channels, input.size(2), input.size(3), pooled_h,
        pooled_w);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return std::make_tuple(output, argmax);
}

at::Tensor roi_pool_backward_cuda(const at::Tensor& grad_in, const at::Tensor& argmax_in, const at::Tensor& rois_in,
                                  int64_t batch, int64_t channels, int64_t height, int64_t width) {
  c10::cuda::CUDAGuard guard(grad_in.device());
  at::Tensor grad = grad_in.contiguous();
  at::Tensor argmax = argmax_in.contiguous();
  at::Tensor rois = rois_in.contiguous();
  at::Tensor grad_input = at::zeros({batch, channels, height, width}, grad.options());
  const int64_t total = grad.numel();
  if (total == 0) return grad_input;
  const int64_t bins = total / (rois.size(0) * channels);
  at::Tensor rois_t = rois.to(grad.scalar_type()).contiguous();
  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "roi_pool_backward_cuda", [&] {
    roi_pool_bwd<scalar_t><<<blocks_for(total), kThreads, 0, stream()>>>(
        total, grad.data_ptr<scalar_t>(), argmax.data_ptr<int64_t>(), rois_t.data_ptr<scalar_t>(),
        grad_input.data_ptr<scalar_t>(), channels, height * width, bins);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return grad_input;
}

at::Tensor deform_roi_pool_forward_cuda(const at::Tensor& input_in, const at::Tensor& rois_in,
                                        const at::Tensor& offset_in, bool use_offset, double spatial_scale,
                                        int64_t pooled_h, int64_t pooled_w, int64_t sampling_ratio, double gamma,
                                        bool aligned) {
  check_rois(input_in, rois_in);
  c10::cuda::CUDAGuard guard(input_in.device());
  at::Tensor input = input_in.contiguous();
  at::Tensor rois = rois_in.to(input.scalar_type()).contiguous();
  at::Tensor offset = use_offset ? offset_in.to(input.scalar_type()).contiguous() : offset_in;
  at::Tensor output = at::zeros({rois.size(0), input.size(1), pooled_h, pooled_w}, input.options());
  const int64_t total = output.numel();
  if (total == 0) return output;
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "deform_roi_pool_forward_cuda", [&] {
    deform_roi_pool_fwd<scalar_t><<<blocks_for(total), kThreads, 0, stream()>>>(
        total, input.data_ptr<scalar_t>(), rois.data_ptr<scalar_t>(),
        use_offset ? offset.data_ptr<scalar_t>() : nullptr, output.data_ptr<scalar_t>(), (scalar_t)spatial_scale,
        input.size(1), input.size(2), input.size(3), pooled_h, pooled_w, sampling_ratio, (scalar_t)gamma, aligned);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return output;
}

std::tuple<at::Tensor, at::Tensor> deform_roi_pool_backward_cuda(const at::Tensor& grad_in,
                                                                 const at::Tensor& input_in, const at::Tensor& rois_in,
                                                                 const at::Tensor& offset_in, bool use_offset,
                                                                 double spatial_scale, int64_t pooled_h,
                                                                 int64_t pooled_w, int64_t sampling_ratio,
                                                                 double gamma, bool aligned) {
  check_rois(input_in, rois_in);
  c10::cuda::CUDAGuard guard(grad_in.device());
  at::Tensor input = input_in.contiguous();
  at::Tensor grad = grad_in.contiguous();
  at::Tensor rois = rois_in.to(input.scalar_type()).contiguous();
  at::Tensor offset = use_offset ? offset_in.to(input.scalar_type()).contiguous() : offset_in;
  at::Tensor grad_input = at::zeros_like(input);
  at::Tensor grad_offset = use_offset ? at::zeros_like(offset) : at::Tensor();
  const int64_t total = grad.numel();
  if (total == 0 || input.numel() == 0) return std::make_tuple(grad_input, grad_offset);
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "deform_roi_pool_backward_cuda", [&] {
    deform_roi_pool_bwd<scalar_t><<<blocks_for(total), kThreads, 0, stream()>>>(
        total, grad.data_ptr<scalar_t>(), input.data_ptr<scalar_t>(), rois.data_ptr<scalar_t>(),
        use_offset ? offset.data_ptr<scalar_t>() : nullptr, grad_input.data_ptr<scalar_t>(),
        use_offset ? grad_offset.data_ptr<scalar_t>() : nullptr, (scalar_t)spatial_scale, input.size(1),
        input.size(2), input.size(3), pooled_h, pooled_w, sampling_ratio, (scalar_t)gamma, aligned);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return std::make_tuple(grad_input, grad_offset);
}

}  // namespace det_ops
