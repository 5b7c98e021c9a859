// CPU RoI pooling family: RoIAlign (avg/max), RoIPool and deformable RoI pooling.
// Forward passes parallelise over RoIs (bilinear corners computed once per RoI, reused for all
// channels); backward passes parallelise over channels so that scatter-adds never race.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <limits>
#include <vector>

#include "common.h"
#include "ops.h"

namespace det_ops {
namespace {

void check_rois(const at::Tensor& input, const at::Tensor& rois) {
  TORCH_CHECK(input.dim() == 4, "input must be [N, C, H, W], got ", input.sizes());
  TORCH_CHECK(rois.dim() == 2 && rois.size(1) == 5, "rois must be [K, 5], got ", rois.sizes());
}

// Sample corners of one RoI, optionally shifting each bin by (dy, dx) (deformable RoI pooling).
template <typename T>
void collect_samples(const RoiGeom<T>& g, int pooled_h, int pooled_w, int height, int width, const T* shift_y,
                     const T* shift_x, std::vector<RoiCorners<T>>& out) {
  const int gh = g.grid_h > 0 ? g.grid_h : 0, gw = g.grid_w > 0 ? g.grid_w : 0;
  out.resize((size_t)pooled_h * pooled_w * gh * gw);
  size_t idx = 0;
  for (int ph = 0; ph < pooled_h; ++ph) {
    for (int pw = 0; pw < pooled_w; ++pw) {
      const T dy = shift_y ? shift_y[ph * pooled_w + pw] : (T)0;
      const T dx = shift_x ? shift_x[ph * pooled_w + pw] : (T)0;
      for (int iy = 0; iy < gh; ++iy) {
        const T y = g.start_h + dy + ph * g.bin_h + ((T)iy + (T)0.5) * g.bin_h / (T)g.grid_h;
        for (int ix = 0; ix < gw; ++ix) {
          const T x = g.start_w + dx + pw * g.bin_w + ((T)ix + (T)0.5) * g.bin_w / (T)g.grid_w;
          out[idx++] = roi_corners<T>(height, width, y, x);
        }
      }
    }
  }
}

// Index (within a bin) of the first maximal sample, or -1 for an empty bin.
template <typename T>
inline int bin_argmax(const T* plane, const RoiCorners<T>* s, int n, T* best_val) {
  int best = -1;
  T best_v = 0;
  for (int k = 0; k < n; ++k) {
    T v = roi_sample(plane, s[k]);
    if (best < 0 || v > best_v) {
      best = k;
      best_v = v;
    }
  }
  *best_val = best_v;
  return best;
}

template <typename T>
void roi_align_fwd_kernel(const at::Tensor& input, const at::Tensor& rois, at::Tensor& output, T scale, int pooled_h,
                          int pooled_w, int sampling, bool aligned, bool use_max) {
  const int channels = input.size(1), height = input.size(2), width = input.size(3);
  const int64_t num_rois = rois.size(0);
  const T* in = input.data_ptr<T>();
  const T* r = rois.data_ptr<T>();
  T* out = output.data_ptr<T>();
  at::parallel_for(0, num_rois, 1, [&](int64_t k0, int64_t k1) {
    std::vector<RoiCorners<T>> samples;
    for (int64_t k = k0; k < k1; ++k) {
      RoiGeom<T> g = roi_geometry<T>(r + 5 * k, scale, aligned, pooled_h, pooled_w, sampling);
      collect_samples<T>(g, pooled_h, pooled_w, height, width, nullptr, nullptr, samples);
      const int per_bin = (g.grid_h > 0 ? g.grid_h : 0) * (g.grid_w > 0 ? g.grid_w : 0);
      for (int c = 0; c < channels; ++c) {
        const T* plane = in + (g.batch * channels + c) * (int64_t)height * width;
        T* o = out + (k * channels + c) * (int64_t)pooled_h * pooled_w;
        for (int b = 0; b < pooled_h * pooled_w; ++b) {
          const RoiCorners<T>* s = samples.data() + (size_t)b * per_bin;
          if (use_max) {
            T v;
            bin_argmax(plane, s, per_bin, &v);
            o[b] = v;
          } else {
            T acc = 0;
            for (int q = 0; q < per_bin; ++q) acc += roi_sample(plane, s[q]);
            o[b] = acc / g.count;
          }
        }
      }
    }
  });
}

template <typename T>
inline void scatter_corners(T* plane, const RoiCorners<T>& s, T g) {
  if (!s.valid) return;
  plane[s.p1] += g * s.w1;
  plane[s.p2] += g * s.w2;
  plane[s.p3] += g * s.w3;
  plane[s.p4] += g * s.w4;
}

template <typename T>
void roi_align_bwd_kernel(const at::Tensor& grad, const at::Tensor& input, const at::Tensor& rois,
                          at::Tensor& grad_input, T scale, int pooled_h, int pooled_w, int sampling, bool aligned,
                          bool use_max) {
  const int channels = input.size(1), height = input.size(2), width = input.size(3);
  const int64_t num_rois = rois.size(0);
  const T* in = input.data_ptr<T>();
  const T* r = rois.data_ptr<T>();
  const T* go = grad.data_ptr<T>();
  T* gi = grad_input.data_ptr<T>();
  at::parallel_for(0, channels, 1, [&](int64_t c0, int64_t c1) {
    std::vector<RoiCorners<T>> samples;
    for (int64_t k = 0; k < num_rois; ++k) {
      RoiGeom<T> g = roi_geometry<T>(r + 5 * k, scale, aligned, pooled_h, pooled_w, sampling);
      collect_samples<T>(g, pooled_h, pooled_w, height, width, nullptr, nullptr, samples);
      const int per_bin = (g.grid_h > 0 ? g.grid_h : 0) * (g.grid_w > 0 ? g.grid_w : 0);
      for (int64_t c = c0; c < c1; ++c) {
        const int64_t plane_off = (g.batch * channels + c) * (int64_t)height * width;
        const T* g_out = go + (k * channels + c) * (int64_t)pooled_h * pooled_w;
        T* g_plane = gi + plane_off;
        for (int b = 0; b < pooled_h * pooled_w; ++b) {
          const RoiCorners<T>* s = samples.data() + (size_t)b * per_bin;
          if (use_max) {
            T v;
            int best = bin_argmax(in + plane_off, s, per_bin, &v);
            if (best >= 0) scatter_corners(g_plane, s[best], g_out[b]);
          } else {
            const T gb = g_out[b] / g.count;
            for (int q = 0; q < per_bin; ++q) scatter_corners(g_plane, s[q], gb);
          }
        }
      }
    }
  });
}

// torchvision roi_pool bin boundaries for one RoI.
struct PoolBin {
  int hstart, hend, wstart, wend;
};

template <typename T>
inline PoolBin pool_bin(const T* roi, T scale, int ph, int pw, int pooled_h, int pooled_w, int height, int width) {
  const int start_w = (int)std::round(roi[1] * scale), start_h = (int)std::round(roi[2] * scale);
  const int end_w = (int)std::round(roi[3] * scale), end_h = (int)std::round(roi[4] * scale);
  const int roi_w = std::max(end_w - start_w + 1, 1), roi_h = std::max(end_h - start_h + 1, 1);
  const T bin_h = (T)roi_h / (T)pooled_h, bin_w = (T)roi_w / (T)pooled_w;
  PoolBin b;
  b.hstart = std::min(std::max((int)std::floor((T)ph * bin_h) + start_h, 0), height);
  b.hend = std::min(std::max((int)std::ceil((T)(ph + 1) * bin_h) + start_h, 0), height);
  b.wstart = std::min(std::max((int)std::floor((T)pw * bin_w) + start_w, 0), width);
  b.wend = std::min(std::max((int)std::ceil((T)(pw + 1) * bin_w) + start_w, 0), width);
  return b;
}

}  // namespace

at::Tensor roi_align_forward_cpu(const at::Tensor& input_in, const at::Tensor& rois_in, double spatial_scale,
                                 int64_t pooled_h, int64_t pooled_w, int64_t sampling_ratio, bool aligned,
                                 bool use_max) {
  check_rois(input_in, rois_in);
  at::Tensor input = input_in.contiguous();
  at::Tensor rois = rois_in.to(input.scalar_type()).contiguous();
  at::Tensor output = at::zeros({rois.size(0), input.size(1), pooled_h, pooled_w}, input.options());
  if (output.numel() == 0) return output;
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "roi_align_forward_cpu", [&] {
    roi_align_fwd_kernel<scalar_t>(input, rois, output, (scalar_t)spatial_scale, pooled_h, pooled_w, sampling_ratio,
                                   aligned, use_max);
  });
  return output;
}

at::Tensor roi_align_backward_cpu(const at::Tensor& grad_in, const at::Tensor& input_in, const at::Tensor& rois_in,
                                  double spatial_scale, int64_t pooled_h, int64_t pooled_w, int64_t sampling_ratio,
                                  bool aligned, bool use_max) {
  check_rois(input_in, rois_in);
  at::Tensor input = input_in.contiguous();
  at::Tensor grad = grad_in.contiguous();
  at::Tensor rois = rois_in.to(input.scalar_type()).contiguous();
  at::Tensor grad_input = at::zeros_like(input);
  if (grad.numel() == 0 || input.numel() == 0) return grad_input;
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "roi_align_backward_cpu", [&] {
    roi_align_bwd_kernel<scalar_t>(grad, input, rois, grad_input, (scalar_t)spatial_scale, pooled_h, pooled_w,
                                   sampling_ratio, aligned, use_max);
  });
  return grad_input;
}

std::tuple<at::Tensor, at::Tensor> roi_pool_forward_cpu(const at::Tensor& input_in, const at::Tensor& rois_in,
                                                        double spatial_scale, int64_t pooled_h, int64_t pooled_w) {
  check_rois(input_in, rois_in);
  at::Tensor input = input_in.contiguous();
  at::Tensor rois = rois_in.to(input.scalar_type()).contiguous();
  const int64_t num_rois = rois.size(0), channels = input.size(1);
  const int height = input.size(2), width = input.size(3);
  at::Tensor output = at::zeros({num_rois, channels, pooled_h, pooled_w}, input.options());
  at::Tensor argmax = at::full({num_rois, channels, pooled_h, pooled_w}, -1, input.options().dtype(at::kLong));
  if (output.numel() == 0) return std::make_tuple(output, argmax);
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "roi_pool_forward_cpu", [&] {
    const scalar_t* in = input.data_ptr<scalar_t>();
    const scalar_t* r = rois.data_ptr<scalar_t>();
    scalar_t* out = output.data_ptr<scalar_t>();
    int64_t* am = argmax.data_ptr<int64_t>();
    const scalar_t scale = (scalar_t)spatial_scale;
    at::parallel_for(0, num_rois, 1, [&](int64_t k0, int64_t k1) {
      for (int64_t k = k0; k < k1; ++k) {
        const int64_t batch = (int64_t)r[5 * k];
        for (int ph = 0; ph < pooled_h; ++ph) {
          for (int pw = 0; pw < pooled_w; ++pw) {
            PoolBin b = pool_bin(r + 5 * k, scale, ph, pw, pooled_h, pooled_w, height, width);
            const bool empty = b.hend <= b.hstart || b.wend <= b.wstart;
            for (int64_t c = 0; c < channels; ++c) {
              const scalar_t* plane = in + (batch * channels + c) * (int64_t)height * width;
              scalar_t best = empty ? (scalar_t)0 : std::numeric_limits<scalar_t>::lowest();
              int64_t best_idx = -1;
              for (int h = b.hstart; h < b.hend; ++h)
                for (int w = b.wstart; w < b.wend; ++w) {
                  const int64_t idx = (int64_t)h * width + w;
                  if (plane[idx] > best) {
                    best = plane[idx];
                    best_idx = idx;
                  }
                }
              const int64_t o = ((k * channels + c) * pooled_h + ph) * pooled_w + pw;
              out[o] = best;
              am[o] = best_idx;
            }
          }
        }
      }
    });
  });
  return std::make_tuple(output, argmax);
}

at::Tensor roi_pool_backward_cpu(const at::Tensor& grad_in, const at::Tensor& argmax_in, const at::Tensor& rois_in,
                                 int64_t batch, int64_t channels, int64_t height, int64_t width) {
  at::Tensor grad = grad_in.contiguous();
  at::Tensor argmax = argmax_in.contiguous();
  at::Tensor rois = rois_in.contiguous();
  at::Tensor grad_input = at::zeros({batch, channels, height, width}, grad.options());
  const int64_t num_rois = rois.size(0), bins = grad.numel() / std::max<int64_t>(num_rois * channels, 1);
  if (grad.numel() == 0) return grad_input;
  at::Tensor roi_batch = rois.select(1, 0).to(at::kLong).contiguous();
  const int64_t* rb = roi_batch.data_ptr<int64_t>();
  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "roi_pool_backward_cpu", [&] {
    const scalar_t* go = grad.data_ptr<scalar_t>();
    const int64_t* am = argmax.data_ptr<int64_t>();
    scalar_t* gi = grad_input.data_ptr<scalar_t>();
    at::parallel_for(0, channels, 1, [&](int64_t c0, int64_t c1) {
      for (int64_t k = 0; k < num_rois; ++k)
        for (int64_t c = c0; c < c1; ++c) {
          scalar_t* plane = gi + (rb[k] * channels + c) * height * width;
          const int64_t base = (k * channels + c) * bins;
          for (int64_t b = 0; b < bins; ++b)
            if (am[base + b] >= 0) plane[am[base + b]] += go[base + b];
        }
    });
  });
  return grad_input;
}

at::Tensor deform_roi_pool_forward_cpu(const at::Tensor& input_in, const at::Tensor& rois_in,
                                       const at::Tensor& offset_in, bool use_offset, double spatial_scale,
                                       int64_t pooled_h, int64_t pooled_w, int64_t sampling_ratio, double gamma,
                                       bool aligned) {
  check_rois(input_in, rois_in);
  at::Tensor input = input_in.contiguous();
  at::Tensor rois = rois_in.to(input.scalar_type()).contiguous();
  at::Tensor offset = use_offset ? offset_in.to(input.scalar_type()).contiguous() : offset_in;
  const int64_t num_rois = rois.size(0), channels = input.size(1);
  const int height = input.size(2), width = input.size(3);
  at::Tensor output = at::zeros({num_rois, channels, pooled_h, pooled_w}, input.options());
  if (output.numel() == 0) return output;
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "deform_roi_pool_forward_cpu", [&] {
    const scalar_t* in = input.data_ptr<scalar_t>();
    const scalar_t* r = rois.data_ptr<scalar_t>();
    const scalar_t* off = use_offset ? offset.data_ptr<scalar_t>() : nullptr;
    scalar_t* out = output.data_ptr<scalar_t>();
    const int bins = pooled_h * pooled_w;
    at::parallel_for(0, num_rois, 1, [&](int64_t k0, int64_t k1) {
      std::vector<RoiCorners<scalar_t>> samples;
      std::vector<scalar_t> sy(bins, 0), sx(bins, 0);
      for (int64_t k = k0; k < k1; ++k) {
        RoiGeom<scalar_t> g = roi_geometry<scalar_t>(r + 5 * k, (scalar_t)spatial_scale, aligned, pooled_h, pooled_w,
                                                     sampling_ratio);
        if (off) {
          for (int b = 0; b < bins; ++b) {
            sx[b] = (scalar_t)gamma * g.roi_w * off[(k * 2 + 0) * bins + b];
            sy[b] = (scalar_t)gamma * g.roi_h * off[(k * 2 + 1) * bins + b];
          }
        }
        collect_samples<scalar_t>(g, pooled_h, pooled_w, height, width, sy.data(), sx.data(), samples);
        const int per_bin = g.grid_h * g.grid_w;
        for (int64_t c = 0; c < channels; ++c) {
          const scalar_t* plane = in + (g.batch * channels + c) * (int64_t)height * width;
          scalar_t* o = out + (k * channels + c) * bins;
          for (int b = 0; b < bins; ++b) {
            scalar_t acc = 0;
            for (int q = 0; q < per_bin; ++q) acc += roi_sample(plane, samples[(size_t)b * per_bin + q]);
            o[b] = acc / g.count;
          }
        }
      }
    });
  });
  return output;
}

std::tuple<at::Tensor, at::Tensor> deform_roi_pool_backward_cpu(const at::Tensor& grad_in, const at::Tensor& input_in,
                                                                const at::Tensor& rois_in, const at::Tensor& offset_in,
                                                                bool use_offset, double spatial_scale,
                                                                int64_t pooled_h, int64_t pooled_w,
                                                                int64_t sampling_ratio, double gamma, bool aligned) {
  check_rois(input_in, rois_in);
  at::Tensor input = input_in.contiguous();
  at::Tensor grad = grad_in.contiguous();
  at::Tensor rois = rois_in.to(input.scalar_type()).contiguous();
  at::Tensor offset = use_offset ? offset_in.to(input.scalar_type()).contiguous() : offset_in;
  const int64_t num_rois = rois.size(0), channels = input.size(1);
  const int height = input.size(2), width = input.size(3);
  at::Tensor grad_input = at::zeros_like(input);
  at::Tensor grad_offset = use_offset ? at::zeros_like(offset) : at::Tensor();
  if (grad.numel() == 0 || input.numel() == 0) return std::make_tuple(grad_input, grad_offset);
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "deform_roi_pool_backward_cpu", [&] {
    const scalar_t* in = input.data_ptr<scalar_t>();
    const scalar_t* r = rois.data_ptr<scalar_t>();
    const scalar_t* off = use_offset ? offset.data_ptr<scalar_t>() : nullptr;
    const scalar_t* go = grad.data_ptr<scalar_t>();
    scalar_t* gi = grad_input.data_ptr<scalar_t>();
    scalar_t* goff = use_offset ? grad_offset.data_ptr<scalar_t>() : nullptr;
    const int bins = pooled_h * pooled_w;
    const scalar_t scale = (scalar_t)spatial_scale, gam = (scalar_t)gamma;
    // Samples of RoI k (with its offsets applied); also returns its geometry.
    auto roi_state = [&](int64_t k, std::vector<RoiCorners<scalar_t>>& samples, std::vector<scalar_t>& sy,
                         std::vector<scalar_t>& sx) {
      RoiGeom<scalar_t> g = roi_geometry<scalar_t>(r + 5 * k, scale, aligned, pooled_h, pooled_w, sampling_ratio);
      if (off) {
        for (int b = 0; b < bins; ++b) {
          sx[b] = gam * g.roi_w * off[(k * 2 + 0) * bins + b];
          sy[b] = gam * g.roi_h * off[(k * 2 + 1) * bins + b];
        }
      }
      collect_samples<scalar_t>(g, pooled_h, pooled_w, height, width, sy.data(), sx.data(), samples);
      return g;
    };
    // Pass 1: gradient w.r.t. the input, channels split across threads.
    at::parallel_for(0, channels, 1, [&](int64_t c0, int64_t c1) {
      std::vector<RoiCorners<scalar_t>> samples;
      std::vector<scalar_t> sy(bins, 0), sx(bins, 0);
      for (int64_t k = 0; k < num_rois; ++k) {
        RoiGeom<scalar_t> g = roi_state(k, samples, sy, sx);
        const int per_bin = g.grid_h * g.grid_w;
        for (int64_t c = c0; c < c1; ++c) {
          scalar_t* plane = gi + (g.batch * channels + c) * (int64_t)height * width;
          const scalar_t* g_out = go + (k * channels + c) * bins;
          for (int b = 0; b < bins; ++b) {
            const scalar_t gb = g_out[b] / g.count;
            for (int q = 0; q < per_bin; ++q) scatter_corners(plane, samples[(size_t)b * per_bin + q], gb);
          }
        }
      }
    });
    if (!off) return;
    // Pass 2: gradient w.r.t. the offsets, RoIs split across threads.
    at::parallel_for(0, num_rois, 1, [&](int64_t k0, int64_t k1) {
      std::vector<RoiCorners<scalar_t>> samples;
      std::vector<scalar_t> sy(bins, 0), sx(bins, 0);
      for (int64_t k = k0; k < k1; ++k) {
        RoiGeom<scalar_t> g = roi_state(k, samples, sy, sx);
        const int per_bin = g.grid_h * g.grid_w;
        for (int b = 0; b < bins; ++b) {
          scalar_t gy = 0, gx = 0;
          for (int64_t c = 0; c < channels; ++c) {
            const scalar_t* plane = in + (g.batch * channels + c) * (int64_t)height * width;
            const scalar_t gb = go[(k * channels + c) * bins + b] / g.count;
            for (int q = 0; q < per_bin; ++q) {
              scalar_t dy, dx;
              roi_sample_grad_pos(plane, samples[(size_t)b * per_bin + q], &dy, &dx);
              gy += gb * dy;
              gx += gb * dx;
            }
          }
          goff[(k * 2 + 0) * bins + b] = gx * gam * g.roi_w;
          goff[(k * 2 + 1) * bins + b] = gy * gam * g.roi_h;
        }
      }
    });
  });
  return std::make_tuple(grad_input, grad_offset);
}

}  // namespace det_ops
