// CUDA kernels for deformable convolution, multi-scale deformable attention, corner pooling,
// sigmoid focal loss and CARAFE. Same decomposition as the CPU kernels (im2col + GEMM for deform
// conv); scatters use atomicAdd. Kept in one translation unit to limit compile time.
#include "common.h"
#include "cuda_utils.cuh"
#include "ops.h"

namespace det_ops {
namespace {

// ------------------------------------------------------------------------------------ deform conv

struct ConvDims {
  int64_t in_ch, height, width, kh, kw, out_h, out_w, offset_groups;
  int64_t sh, sw, ph, pw, dh, dw;
};

template <typename T>
__device__ __forceinline__ void tap_pos(const ConvDims& s, const T* goff, int64_t kidx, int64_t l, T* y, T* x) {
  const int64_t L = s.out_h * s.out_w;
  const int64_t i = kidx / s.kw, j = kidx % s.kw, oy = l / s.out_w, ox = l % s.out_w;
  *y = (T)(oy * s.sh - s.ph + i * s.dh) + goff[(2 * kidx) * L + l];
  *x = (T)(ox * s.sw - s.pw + j * s.dw) + goff[(2 * kidx + 1) * L + l];
}

template <typename T>
__global__ void im2col_kernel(ConvDims s, const T* in, const T* off, const T* mask, T* cols) {
  const int64_t kk = s.kh * s.kw, L = s.out_h * s.out_w, cpg = s.in_ch / s.offset_groups;
  DET_CUDA_LOOP(idx, s.in_ch * kk * L) {
    const int64_t l = idx % L, row = idx / L, kidx = row % kk, c = row / kk, g = c / cpg;
    T y, x;
    tap_pos(s, off + g * 2 * kk * L, kidx, l, &y, &x);
    T v = pad_sample(in + c * s.height * s.width, pad_corners<T>(s.height, s.width, y, x));
    cols[idx] = mask ? v * mask[(g * kk + kidx) * L + l] : v;
  }
}

template <typename T>
__global__ void col2im_kernel(ConvDims s, const T* gcols, const T* off, const T* mask, T* grad_in) {
  const int64_t kk = s.kh * s.kw, L = s.out_h * s.out_w, cpg = s.in_ch / s.offset_groups;
  DET_CUDA_LOOP(idx, s.in_ch * kk * L) {
    const int64_t l = idx % L, row = idx / L, kidx = row % kk, c = row / kk, g = c / cpg;
    T y, x;
    tap_pos(s, off + g * 2 * kk * L, kidx, l, &y, &x);
    PadCorners<T> pc = pad_corners<T>(s.height, s.width, y, x);
    if (!pc.any) continue;
    const T gv = mask ? gcols[idx] * mask[(g * kk + kidx) * L + l] : gcols[idx];
    T* plane = grad_in + c * s.height * s.width;
    if (pc.ok1) atomicAdd(plane + pc.p1, gv * pc.w1);
    if (pc.ok2) atomicAdd(plane + pc.p2, gv * pc.w2);
    if (pc.ok3) atomicAdd(plane + pc.p3, gv * pc.w3);
    if (pc.ok4) atomicAdd(plane + pc.p4, gv * pc.w4);
  }
}

template <typename T>
__global__ void coord_grad_kernel(ConvDims s, const T* gcols, const T* in, const T* off, const T* mask, T* grad_off,
                                  T* grad_mask) {
  const int64_t kk = s.kh * s.kw, L = s.out_h * s.out_w, cpg = s.in_ch / s.offset_groups;
  DET_CUDA_LOOP(idx, s.offset_groups * kk * L) {
    const int64_t l = idx % L, row = idx / L, kidx = row % kk, g = row / kk;
    T y, x;
    tap_pos(s, off + g * 2 * kk * L, kidx, l, &y, &x);
    PadCorners<T> pc = pad_corners<T>(s.height, s.width, y, x);
    T gy = 0, gx = 0, gm = 0;
    if (pc.any) {
      for (int64_t c = g * cpg; c < (g + 1) * cpg; ++c) {
        const T* plane = in + c * s.height * s.width;
        const T gc = gcols[(c * kk + kidx) * L + l];
        T dy, dx;
        pad_sample_grad_pos(plane, pc, &dy, &dx);
        gy += gc * dy;
        gx += gc * dx;
        if (grad_mask) gm += gc * pad_sample(plane, pc);
      }
    }
    const T m = mask ? mask[(g * kk + kidx) * L + l] : (T)1;
    grad_off[(g * 2 * kk + 2 * kidx) * L + l] = gy * m;
    grad_off[(g * 2 * kk + 2 * kidx + 1) * L + l] = gx * m;
    if (grad_mask) grad_mask[(g * kk + kidx) * L + l] = gm;
  }
}

ConvDims conv_dims(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& offset, int64_t sh, int64_t sw,
                   int64_t ph, int64_t pw, int64_t dh, int64_t dw) {
  TORCH_CHECK(input.dim() == 4 && weight.dim() == 4 && offset.dim() == 4, "deform_conv2d expects 4-D tensors");
  ConvDims s;
  s.in_ch = input.size(1);
  s.height = input.size(2);
  s.width = input.size(3);
  s.kh = weight.size(2);
  s.kw = weight.size(3);
  s.sh = sh;
  s.sw = sw;
  s.ph = ph;
  s.pw = pw;
  s.dh = dh;
  s.dw = dw;
  s.out_h = (s.height + 2 * ph - (dh * (s.kh - 1) + 1)) / sh + 1;
  s.out_w = (s.width + 2 * pw - (dw * (s.kw - 1) + 1)) / sw + 1;
  s.offset_groups = offset.size(1) / (2 * s.kh * s.kw);
  TORCH_CHECK(s.offset_groups > 0 && s.in_ch % s.offset_groups == 0, "invalid offset groups");
  TORCH_CHECK(weight.size(1) > 0 && s.in_ch % weight.size(1) == 0, "invalid weight groups");
  return s;
}

// ------------------------------------------------------------------------------------ MSDA

template <typename T>
__global__ void msda_fwd_kernel(int64_t total, const T* val, const int64_t* shapes, const int64_t* starts,
                                const T* loc, const T* attn, T* out, int64_t spatial, int64_t heads, int64_t channels,
                                int64_t queries, int64_t levels, int64_t points) {
  // one thread per (b, q, m, d)
  DET_CUDA_LOOP(idx, total) {
    const int64_t d = idx % channels, m = (idx / channels) % heads, bq = idx / channels / heads;
    const int64_t b = bq / queries, row = heads * channels;
    const int64_t base = (bq * heads + m) * levels * points;
    T acc = 0;
    for (int64_t l = 0; l < levels; ++l) {
      const int64_t h = shapes[2 * l], w = shapes[2 * l + 1];
      const T* vl = val + ((b * spatial + starts[l]) * heads + m) * channels + d;
      for (int64_t p = 0; p < points; ++p) {
        const int64_t i = base + l * points + p;
        const T x = loc[2 * i] * (T)w - (T)0.5, y = loc[2 * i + 1] * (T)h - (T)0.5;
        PadCorners<T> pc = pad_corners<T>(h, w, y, x);
        if (pc.any) acc += attn[i] * pad_sample(vl, pc, row);
      }
    }
    out[idx] = acc;
  }
}

template <typename T>
__global__ void msda_bwd_kernel(int64_t total, const T* grad, const T* val, const int64_t* shapes,
                                const int64_t* starts, const T* loc, const T* attn, T* grad_val, T* grad_loc,
                                T* grad_attn, int64_t spatial, int64_t heads, int64_t channels, int64_t queries,
                                int64_t levels, int64_t points) {
  // one thread per (b, q, m, l, p), looping over channels
  DET_CUDA_LOOP(i, total) {
    const int64_t l = (i / points) % levels, bqm = i / points / levels;
    const int64_t m = bqm % heads, bq = bqm / heads, b = bq / queries, row = heads * channels;
    const int64_t h = shapes[2 * l], w = shapes[2 * l + 1];
    const T x = loc[2 * i] * (T)w - (T)0.5, y = loc[2 * i + 1] * (T)h - (T)0.5;
    PadCorners<T> pc = pad_corners<T>(h, w, y, x);
    if (!pc.any) continue;
    const int64_t v_off = ((b * spatial + starts[l]) * heads + m) * channels;
    const T* g = grad + bq * row + m * channels;
    const T a = attn[i];
    T g_attn = 0, g_y = 0, g_x = 0;
    for (int64_t d = 0; d < channels; ++d) {
      const T* vd = val + v_off + d;
      T dy, dx;
      pad_sample_grad_pos(vd, pc, &dy, &dx, row);
      g_attn += g[d] * pad_sample(vd, pc, row);
      g_y += g[d] * dy;
      g_x += g[d] * dx;
      T* gv = grad_val + v_off + d;
      if (pc.ok1) atomicAdd(gv + pc.p1 * row, a * pc.w1 * g[d]);
      if (pc.ok2) atomicAdd(gv + pc.p2 * row, a * pc.w2 * g[d]);
      if (pc.ok3) atomicAdd(gv + pc.p3 * row, a * pc.w3 * g[d]);
      if (pc.ok4) atomicAdd(gv + pc.p4 * row, a * pc.w4 * g[d]);
    }
    grad_attn[i] = g_attn;
    grad_loc[2 * i] = g_x * a * (T)w;
    grad_loc[2 * i + 1] = g_y * a * (T)h;
  }
}

// ------------------------------------------------------------------------------------ corner pool

// One thread per scan line; `step` is the element stride along the line, `reverse` scans from the far end.
template <typename T>
__global__ void corner_fwd_kernel(int64_t total, const T* in, T* out, int64_t H, int64_t W, bool vertical,
                                  bool reverse) {
  const int64_t lines = vertical ? W : H, len = vertical ? H : W, step = vertical ? W : 1;
  DET_CUDA_LOOP(idx, total) {
    const int64_t p = idx / lines, line = idx % lines;
    const int64_t base = p * H * W + (vertical ? line : line * W);
    T cur = 0;
    for (int64_t k = 0; k < len; ++k) {
      const int64_t pos = base + (reverse ? len - 1 - k : k) * step;
      cur = (k == 0 || in[pos] > cur) ? in[pos] : cur;
      out[pos] = cur;
    }
  }
}

template <typename T>
__global__ void corner_bwd_kernel(int64_t total, const T* grad, const T* in, T* grad_in, int64_t H, int64_t W,
                                  bool vertical, bool reverse) {
  const int64_t lines = vertical ? W : H, len = vertical ? H : W, step = vertical ? W : 1;
  DET_CUDA_LOOP(idx, total) {
    const int64_t p = idx / lines, line = idx % lines;
    const int64_t base = p * H * W + (vertical ? line : line * W);
    int64_t arg = -1;
    T cur = 0;
    for (int64_t k = 0; k < len; ++k) {
      const int64_t pos = base + (reverse ? len - 1 - k : k) * step;
      if (arg < 0 || in[pos] >= cur) {  // ties: the latest scanned element (torch.cummax)
        cur = in[pos];
        arg = pos;
      }
      grad_in[arg] += grad[pos];
    }
  }
}

// ------------------------------------------------------------------------------------ focal loss

template <typename T>
__device__ __forceinline__ T focal_value(T x, bool positive, T gamma, T a_pos, T a_neg, bool want_grad) {
  const T p = (T)1 / ((T)1 + exp(-x));
  const T soft = log1p(exp(-fabs(x)));
  const T log_p = min(x, (T)0) - soft, log_1mp = min(-x, (T)0) - soft;
  if (positive) {
    const T f = pow((T)1 - p, gamma);
    return want_grad ? -a_pos * f * (((T)1 - p) - gamma * p * log_p) : -a_pos * f * log_p;
  }
  const T f = pow(p, gamma);
  return want_grad ? -a_neg * f * (gamma * ((T)1 - p) * log_1mp - p) : -a_neg * f * log_1mp;
}

template <typename T>
__global__ void focal_kernel(int64_t total, const T* pred, const int64_t* target, const T* grad, T* out,
                             int64_t classes, T gamma, T a_pos, T a_neg) {
  DET_CUDA_LOOP(idx, total) {
    const int64_t n = idx / classes, c = idx % classes;
    const T v = focal_value(pred[idx], target[n] == c, gamma, a_pos, a_neg, grad != nullptr);
    out[idx] = grad ? grad[idx] * v : v;
  }
}

// ------------------------------------------------------------------------------------ CARAFE

struct CarafeDims {
  int64_t N, C, H, W, Ho, Wo, k, G, s, r;
};

template <typename T>
__global__ void carafe_fwd_kernel(CarafeDims d, const T* f, const T* m, T* out) {
  const int64_t kk = d.k * d.k, HWo = d.Ho * d.Wo, cpg = d.C / d.G;
  DET_CUDA_LOOP(idx, d.N * d.C * HWo) {
    const int64_t x = idx % d.Wo, y = (idx / d.Wo) % d.Ho, nc = idx / HWo, n = nc / d.C, c = nc % d.C;
    const T* plane = f + nc * d.H * d.W;
    const T* mg = m + (n * d.G + c / cpg) * kk * HWo + y * d.Wo + x;
    T acc = 0;
    for (int64_t i = 0; i < d.k; ++i) {
      const int64_t yy = y / d.s + i - d.r;
      if (yy < 0 || yy >= d.H) continue;
      for (int64_t j = 0; j < d.k; ++j) {
        const int64_t xx = x / d.s + j - d.r;
        if (xx < 0 || xx >= d.W) continue;
        acc += plane[yy * d.W + xx] * mg[(i * d.k + j) * HWo];
      }
    }
    out[idx] = acc;
  }
}

template <typename T>
__global__ void carafe_bwd_feat_kernel(CarafeDims d, const T* grad, const T* m, T* gf) {
  const int64_t kk = d.k * d.k, HWo = d.Ho * d.Wo, cpg = d.C / d.G;
  DET_CUDA_LOOP(idx, d.N * d.C * HWo) {
    const int64_t x = idx % d.Wo, y = (idx / d.Wo) % d.Ho, nc = idx / HWo, n = nc / d.C, c = nc % d.C;
    T* plane = gf + nc * d.H * d.W;
    const T* mg = m + (n * d.G + c / cpg) * kk * HWo + y * d.Wo + x;
    const T g = grad[idx];
    for (int64_t i = 0; i < d.k; ++i) {
      const int64_t yy = y / d.s + i - d.r;
      if (yy < 0 || yy >= d.H) continue;
      for (int64_t j = 0; j < d.k; ++j) {
        const int64_t xx = x / d.s + j - d.r;
        if (xx < 0 || xx >= d.W) continue;
        atomicAdd(plane + yy * d.W + xx, g * mg[(i * d.k + j) * HWo]);
      }
    }
  }
}

template <typename T>
__global__ void carafe_bwd_mask_kernel(CarafeDims d, const T* grad, const T* f, T* gm) {
  const int64_t kk = d.k * d.k, HWo = d.Ho * d.Wo, cpg = d.C / d.G;
  DET_CUDA_LOOP(idx, d.N * d.G * kk * HWo) {
    const int64_t x = idx % d.Wo, y = (idx / d.Wo) % d.Ho, t = (idx / HWo) % kk, ng = idx / HWo / kk;
    const int64_t n = ng / d.G, g = ng % d.G;
    const int64_t yy = y / d.s + t / d.k - d.r, xx = x / d.s + t % d.k - d.r;
    T acc = 0;
    if (yy >= 0 && yy < d.H && xx >= 0 && xx < d.W) {
      for (int64_t c = g * cpg; c < (g + 1) * cpg; ++c)
        acc += grad[(n * d.C + c) * HWo + y * d.Wo + x] * f[(n * d.C + c) * d.H * d.W + yy * d.W + xx];
    }
    gm[idx] = acc;
  }
}

CarafeDims carafe_dims(const at::Tensor& f, const at::Tensor& m, int64_t k, int64_t G, int64_t s) {
  TORCH_CHECK(f.dim() == 4 && m.dim() == 4, "carafe expects 4-D features and masks");
  TORCH_CHECK(k % 2 == 1 && G > 0 && f.size(1) % G == 0, "invalid carafe kernel_size/group_size");
  TORCH_CHECK(m.size(1) == G * k * k && m.size(2) == f.size(2) * s && m.size(3) == f.size(3) * s,
              "masks must be [N, group_size*k*k, H*scale, W*scale]");
  return CarafeDims{f.size(0), f.size(1), f.size(2), f.size(3), m.size(2), m.size(3), k, G, s, (k - 1) / 2};
}

}  // namespace

at::Tensor deform_conv_forward_cuda(const at::Tensor& input_in, const at::Tensor& weight_in,
                                    const at::Tensor& offset_in, const at::Tensor& mask_in, bool use_mask,
                                    int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w, int64_t dil_h,
                                    int64_t dil_w) {
  c10::cuda::CUDAGuard guard(input_in.device());
  at::Tensor input = input_in.contiguous(), weight = weight_in.contiguous(), offset = offset_in.contiguous();
  at::Tensor mask = use_mask ? mask_in.contiguous() : mask_in;
  ConvDims s = conv_dims(input, weight, offset, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w);
  const int64_t batch = input.size(0), out_ch = weight.size(0), wg = s.in_ch / weight.size(1);
  const int64_t kk = s.kh * s.kw, L = s.out_h * s.out_w, rows = (s.in_ch / wg) * kk;
  at::Tensor output = at::zeros({batch, out_ch, s.out_h, s.out_w}, input.options());
  if (output.numel() == 0) return output;
  at::Tensor cols = at::empty({s.in_ch * kk, L}, input.options());
  at::Tensor w_g = weight.view({wg, out_ch / wg, rows});
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "deform_conv_forward_cuda", [&] {
    for (int64_t b = 0; b < batch; ++b) {
      im2col_kernel<scalar_t><<<blocks_for(cols.numel()), kThreads, 0, stream()>>>(
          s, input[b].data_ptr<scalar_t>(), offset[b].data_ptr<scalar_t>(),
          use_mask ? mask[b].data_ptr<scalar_t>() : nullptr, cols.data_ptr<scalar_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      at::Tensor out_b = output[b].view({wg, out_ch / wg, L});
      at::bmm_out(out_b, w_g, cols.view({wg, rows, L}));
    }
  });
  return output;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> deform_conv_backward_cuda(
    const at::Tensor& grad_in, const at::Tensor& input_in, const at::Tensor& weight_in, const at::Tensor& offset_in,
    const at::Tensor& mask_in, bool use_mask, int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w,
    int64_t dil_h, int64_t dil_w) {
  c10::cuda::CUDAGuard guard(grad_in.device());
  at::Tensor grad = grad_in.contiguous(), input = input_in.contiguous(), weight = weight_in.contiguous();
  at::Tensor offset = offset_in.contiguous();
  at::Tensor mask = use_mask ? mask_in.contiguous() : mask_in;
  ConvDims s = conv_dims(input, weight, offset, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w);
  const int64_t batch = input.size(0), out_ch = weight.size(0), wg = s.in_ch / weight.size(1);
  const int64_t kk = s.kh * s.kw, L = s.out_h * s.out_w, rows = (s.in_ch / wg) * kk;
  at::Tensor grad_input = at::zeros_like(input), grad_offset = at::zeros_like(offset);
  at::Tensor grad_mask = use_mask ? at::zeros_like(mask) : at::Tensor();
  at::Tensor grad_weight = at::zeros_like(weight);
  if (grad.numel() == 0 || input.numel() == 0) return std::make_tuple(grad_input, grad_offset, grad_mask, grad_weight);
  at::Tensor cols = at::empty({s.in_ch * kk, L}, input.options());
  at::Tensor gcols = at::empty({s.in_ch * kk, L}, input.options());
  at::Tensor w_g = weight.view({wg, out_ch / wg, rows});
  at::Tensor gw_g = grad_weight.view({wg, out_ch / wg, rows});
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "deform_conv_backward_cuda", [&] {
    for (int64_t b = 0; b < batch; ++b) {
      const scalar_t* in_b = input[b].data_ptr<scalar_t>();
      const scalar_t* off_b = offset[b].data_ptr<scalar_t>();
      const scalar_t* mask_b = use_mask ? mask[b].data_ptr<scalar_t>() : nullptr;
      at::Tensor go_b = grad[b].view({wg, out_ch / wg, L});
      at::Tensor gcols_g = gcols.view({wg, rows, L});
      at::bmm_out(gcols_g, w_g.transpose(1, 2), go_b);
      col2im_kernel<scalar_t><<<blocks_for(gcols.numel()), kThreads, 0, stream()>>>(
          s, gcols.data_ptr<scalar_t>(), off_b, mask_b, grad_input[b].data_ptr<scalar_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      coord_grad_kernel<scalar_t><<<blocks_for(s.offset_groups * kk * L), kThreads, 0, stream()>>>(
          s, gcols.data_ptr<scalar_t>(), in_b, off_b, mask_b, grad_offset[b].data_ptr<scalar_t>(),
          use_mask ? grad_mask[b].data_ptr<scalar_t>() : nullptr);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      im2col_kernel<scalar_t><<<blocks_for(cols.numel()), kThreads, 0, stream()>>>(s, in_b, off_b, mask_b,
                                                                                   cols.data_ptr<scalar_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      gw_g.baddbmm_(go_b, cols.view({wg, rows, L}).transpose(1, 2));
    }
  });
  return std::make_tuple(grad_input, grad_offset, grad_mask, grad_weight);
}

at::Tensor msda_forward_cuda(const at::Tensor& value_in, const at::Tensor& shapes_in, const at::Tensor& start_in,
                             const at::Tensor& loc_in, const at::Tensor& attn_in) {
  c10::cuda::CUDAGuard guard(value_in.device());
  at::Tensor value = value_in.contiguous();
  at::Tensor shapes = shapes_in.to(value.device(), at::kLong).contiguous();
  at::Tensor starts = start_in.to(value.device(), at::kLong).contiguous();
  at::Tensor loc = loc_in.to(value.scalar_type()).contiguous();
  at::Tensor attn = attn_in.to(value.scalar_type()).contiguous();
  const int64_t B = value.size(0), S = value.size(1), M = value.size(2), D = value.size(3);
  const int64_t Q = loc.size(1), L = loc.size(3), P = loc.size(4);
  at::Tensor output = at::zeros({B, Q, M * D}, value.options());
  const int64_t total = output.numel();
  if (total == 0) return output;
  AT_DISPATCH_FLOATING_TYPES(value.scalar_type(), "msda_forward_cuda", [&] {
    msda_fwd_kernel<scalar_t><<<blocks_for(total), kThreads, 0, stream()>>>(
        total, value.data_ptr<scalar_t>(), shapes.data_ptr<int64_t>(), starts.data_ptr<int64_t>(),
        loc.data_ptr<scalar_t>(), attn.data_ptr<scalar_t>(), output.data_ptr<scalar_t>(), S, M, D, Q, L, P);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return output;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> msda_backward_cuda(const at::Tensor& grad_in,
                                                                  const at::Tensor& value_in,
                                                                  const at::Tensor& shapes_in,
                                                                  const at::Tensor& start_in, const at::Tensor& loc_in,
                                                                  const at::Tensor& attn_in) {
  c10::cuda::CUDAGuard guard(grad_in.device());
  at::Tensor value = value_in.contiguous(), grad = grad_in.contiguous();
  at::Tensor shapes = shapes_in.to(value.device(), at::kLong).contiguous();
  at::Tensor starts = start_in.to(value.device(), at::kLong).contiguous();
  at::Tensor loc = loc_in.to(value.scalar_type()).contiguous();
  at::Tensor attn = attn_in.to(value.scalar_type()).contiguous();
  at::Tensor grad_value = at::zeros_like(value), grad_loc = at::zeros_like(loc), grad_attn = at::zeros_like(attn);
  const int64_t S = value.size(1), M = value.size(2), D = value.size(3);
  const int64_t Q = loc.size(1), L = loc.size(3), P = loc.size(4);
  const int64_t total = attn.numel();
  if (total == 0 || value.numel() == 0) return std::make_tuple(grad_value, grad_loc, grad_attn);
  AT_DISPATCH_FLOATING_TYPES(value.scalar_type(), "msda_backward_cuda", [&] {
    msda_bwd_kernel<scalar_t><<<blocks_for(total), kThreads, 0, stream()>>>(
        total, grad.data_ptr<scalar_t>(), value.data_ptr<scalar_t>(), shapes.data_ptr<int64_t>(),
        starts.data_ptr<int64_t>(), loc.data_ptr<scalar_t>(), attn.data_ptr<scalar_t>(),
        grad_value.data_ptr<scalar_t>(), grad_loc.data_ptr<scalar_t>(), grad_attn.data_ptr<scalar_t>(), S, M, D, Q,
        L, P);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return std::make_tuple(grad_value, grad_loc, grad_attn);
}

at::Tensor corner_pool_forward_cuda(const at::Tensor& input_in, int64_t mode) {
  TORCH_CHECK(input_in.dim() == 4 && mode >= kTop && mode <= kRight, "corner_pool: bad input or mode");
  c10::cuda::CUDAGuard guard(input_in.device());
  at::Tensor input = input_in.contiguous();
  at::Tensor output = at::empty_like(input);
  if (input.numel() == 0) return output;
  const int64_t H = input.size(2), W = input.size(3);
  const bool vertical = mode == kTop || mode == kBottom, reverse = mode == kTop || mode == kLeft;
  const int64_t total = input.size(0) * input.size(1) * (vertical ? W : H);
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "corner_pool_forward_cuda", [&] {
    corner_fwd_kernel<scalar_t><<<blocks_for(total), kThreads, 0, stream()>>>(
        total, input.data_ptr<scalar_t>(), output.data_ptr<scalar_t>(), H, W, vertical, reverse);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return output;
}

at::Tensor corner_pool_backward_cuda(const at::Tensor& grad_in, const at::Tensor& input_in, int64_t mode) {
  c10::cuda::CUDAGuard guard(grad_in.device());
  at::Tensor input = input_in.contiguous(), grad = grad_in.contiguous();
  at::Tensor grad_input = at::zeros_like(input);
  if (input.numel() == 0) return grad_input;
  const int64_t H = input.size(2), W = input.size(3);
  const bool vertical = mode == kTop || mode == kBottom, reverse = mode == kTop || mode == kLeft;
  const int64_t total = input.size(0) * input.size(1) * (vertical ? W : H);
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "corner_pool_backward_cuda", [&] {
    corner_bwd_kernel<scalar_t><<<blocks_for(total), kThreads, 0, stream()>>>(
        total, grad.data_ptr<scalar_t>(), input.data_ptr<scalar_t>(), grad_input.data_ptr<scalar_t>(), H, W,
        vertical, reverse);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return grad_input;
}

namespace {

at::Tensor focal_launch(const at::Tensor* grad_in, const at::Tensor& pred_in, const at::Tensor& target_in,
                        double gamma, double alpha) {
  TORCH_CHECK(pred_in.dim() == 2, "pred must be [N, C]");
  c10::cuda::CUDAGuard guard(pred_in.device());
  at::Tensor pred = pred_in.contiguous();
  at::Tensor target = target_in.to(at::kLong).contiguous();
  at::Tensor grad = grad_in ? grad_in->contiguous() : at::Tensor();
  at::Tensor out = at::empty_like(pred);
  const int64_t total = pred.numel();
  if (total == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(pred.scalar_type(), "focal_loss_cuda", [&] {
    const scalar_t a_pos = alpha >= 0 ? (scalar_t)alpha : (scalar_t)1;
    const scalar_t a_neg = alpha >= 0 ? (scalar_t)(1 - alpha) : (scalar_t)1;
    focal_kernel<scalar_t><<<blocks_for(total), kThreads, 0, stream()>>>(
        total, pred.data_ptr<scalar_t>(), target.data_ptr<int64_t>(), grad_in ? grad.data_ptr<scalar_t>() : nullptr,
        out.data_ptr<scalar_t>(), pred.size(1), (scalar_t)gamma, a_pos, a_neg);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace

at::Tensor focal_loss_forward_cuda(const at::Tensor& pred, const at::Tensor& target, double gamma, double alpha) {
  return focal_launch(nullptr, pred, target, gamma, alpha);
}

at::Tensor focal_loss_backward_cuda(const at::Tensor& grad, const at::Tensor& pred, const at::Tensor& target,
                                    double gamma, double alpha) {
  return focal_launch(&grad, pred, target, gamma, alpha);
}

at::Tensor carafe_forward_cuda(const at::Tensor& features_in, const at::Tensor& masks_in, int64_t kernel_size,
                               int64_t group_size, int64_t scale_factor) {
  c10::cuda::CUDAGuard guard(features_in.device());
  at::Tensor features = features_in.contiguous();
  at::Tensor masks = masks_in.to(features.scalar_type()).contiguous();
  CarafeDims d = carafe_dims(features, masks, kernel_size, group_size, scale_factor);
  at::Tensor output = at::zeros({d.N, d.C, d.Ho, d.Wo}, features.options());
  if (output.numel() == 0) return output;
  AT_DISPATCH_FLOATING_TYPES(features.scalar_type(), "carafe_forward_cuda", [&] {
    carafe_fwd_kernel<scalar_t><<<blocks_for(output.numel()), kThreads, 0, stream()>>>(
        d, features.data_ptr<scalar_t>(), masks.data_ptr<scalar_t>(), output.data_ptr<scalar_t>());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return output;
}

std::tuple<at::Tensor, at::Tensor> carafe_backward_cuda(const at::Tensor& grad_in, const at::Tensor& features_in,
                                                        const at::Tensor& masks_in, int64_t kernel_size,
                                                        int64_t group_size, int64_t scale_factor) {
  c10::cuda::CUDAGuard guard(grad_in.device());
  at::Tensor features = features_in.contiguous(), grad = grad_in.contiguous();
  at::Tensor masks = masks_in.to(features.scalar_type()).contiguous();
  CarafeDims d = carafe_dims(features, masks, kernel_size, group_size, scale_factor);
  at::Tensor grad_features = at::zeros_like(features), grad_masks = at::zeros_like(masks);
  if (grad.numel() == 0) return std::make_tuple(grad_features, grad_masks);
  AT_DISPATCH_FLOATING_TYPES(features.scalar_type(), "carafe_backward_cuda", [&] {
    carafe_bwd_feat_kernel<scalar_t><<<blocks_for(grad.numel()), kThreads, 0, stream()>>>(
        d, grad.data_ptr<scalar_t>(), masks.data_ptr<scalar_t>(), grad_features.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    carafe_bwd_mask_kernel<scalar_t><<<blocks_for(grad_masks.numel()), kThreads, 0, stream()>>>(
        d, grad.data_ptr<scalar_t>(), features.data_ptr<scalar_t>(), grad_masks.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return std::make_tuple(grad_features, grad_masks);
}

}  // namespace det_ops
