// CPU deformable convolution (v1, and v2 when a modulation mask is given), torchvision
// deform_conv2d semantics: deformable im2col per image (parallel over column rows) + batched GEMM
// per weight group. Backward: col2im (parallel over channels), coordinate gradients (parallel over
// offset-group kernel taps) and a GEMM for the weight gradient.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "common.h"
#include "ops.h"

namespace det_ops {
namespace {

struct ConvShape {
  int64_t batch, in_ch, height, width, out_ch, kh, kw, out_h, out_w, weight_groups, offset_groups;
  int64_t sh, sw, ph, pw, dh, dw;
  int64_t taps() const { return kh * kw; }
  int64_t locs() const { return out_h * out_w; }
};

ConvShape conv_shape(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& offset, int64_t sh,
                     int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw) {
  TORCH_CHECK(input.dim() == 4 && weight.dim() == 4 && offset.dim() == 4, "deform_conv2d expects 4-D tensors");
  ConvShape s;
  s.batch = input.size(0);
  s.in_ch = input.size(1);
  s.height = input.size(2);
  s.width = input.size(3);
  s.out_ch = weight.size(0);
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
  TORCH_CHECK(weight.size(1) > 0 && s.in_ch % weight.size(1) == 0, "input channels must be a multiple of weight.size(1)");
  s.weight_groups = s.in_ch / weight.size(1);
  TORCH_CHECK(offset.size(1) % (2 * s.taps()) == 0, "offset channels must be a multiple of 2*kh*kw");
  s.offset_groups = offset.size(1) / (2 * s.taps());
  TORCH_CHECK(s.offset_groups > 0 && s.in_ch % s.offset_groups == 0, "input channels must be a multiple of offset groups");
  TORCH_CHECK(offset.size(2) == s.out_h && offset.size(3) == s.out_w, "offset spatial size must be the output size (",
              s.out_h, ", ", s.out_w, ")");
  return s;
}

// Sampling position of tap (i, j) at output location l.
template <typename T>
inline void tap_position(const ConvShape& s, const T* off, int64_t kidx, int64_t l, T* y, T* x) {
  const int64_t i = kidx / s.kw, j = kidx % s.kw, oy = l / s.out_w, ox = l % s.out_w;
  const int64_t L = s.locs();
  *y = (T)(oy * s.sh - s.ph + i * s.dh) + off[(2 * kidx) * L + l];
  *x = (T)(ox * s.sw - s.pw + j * s.dw) + off[(2 * kidx + 1) * L + l];
}

// columns[c*kk + k, l] = mask * bilinear(input[c], position of tap k at l). Sampling corners depend only
// on (offset group, tap, l): they are computed once per task and reused for a chunk of channels.
template <typename T>
void deform_im2col(const ConvShape& s, const T* in, const T* off, const T* mask, T* cols) {
  const int64_t kk = s.taps(), L = s.locs(), ch_per_group = s.in_ch / s.offset_groups;
  const int64_t chunk = 32, chunks = (ch_per_group + chunk - 1) / chunk;
  at::parallel_for(0, s.offset_groups * kk * chunks, 1, [&](int64_t t0, int64_t t1) {
    std::vector<PadCorners<T>> corners(L);
    int64_t cached = -1;
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t row = t / chunks, part = t % chunks;  // row = g * kk + kidx
      const int64_t g = row / kk, kidx = row % kk;
      if (row != cached) {
        const T* goff = off + g * 2 * kk * L;
        const T* m = mask ? mask + row * L : nullptr;
        for (int64_t l = 0; l < L; ++l) {
          T y, x;
          tap_position(s, goff, kidx, l, &y, &x);
          PadCorners<T> pc = pad_corners<T>(s.height, s.width, y, x);
          if (m) {  // fold the modulation into the bilinear weights
            pc.w1 *= m[l];
            pc.w2 *= m[l];
            pc.w3 *= m[l];
            pc.w4 *= m[l];
          }
          corners[l] = pc;
        }
        cached = row;
      }
      const int64_t c_end = std::min((g + 1) * ch_per_group, g * ch_per_group + (part + 1) * chunk);
      for (int64_t c = g * ch_per_group + part * chunk; c < c_end; ++c) {
        const T* plane = in + c * s.height * s.width;
        T* out = cols + (c * kk + kidx) * L;
        for (int64_t l = 0; l < L; ++l) out[l] = pad_sample(plane, corners[l]);
      }
    }
  });
}

// grad_input[c] += scatter of grad_cols rows of channel c (channels split across threads).
template <typename T>
void deform_col2im(const ConvShape& s, const T* gcols, const T* off, const T* mask, T* grad_in) {
  const int64_t kk = s.taps(), L = s.locs(), ch_per_group = s.in_ch / s.offset_groups;
  at::parallel_for(0, s.in_ch, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t g = c / ch_per_group;
      T* plane = grad_in + c * s.height * s.width;
      const T* goff = off + g * 2 * kk * L;
      for (int64_t kidx = 0; kidx < kk; ++kidx) {
        const T* gc = gcols + (c * kk + kidx) * L;
        const T* m = mask ? mask + (g * kk + kidx) * L : nullptr;
        for (int64_t l = 0; l < L; ++l) {
          T y, x;
          tap_position(s, goff, kidx, l, &y, &x);
          PadCorners<T> pc = pad_corners<T>(s.height, s.width, y, x);
          if (!pc.any) continue;
          const T gv = m ? gc[l] * m[l] : gc[l];
          if (pc.ok1) plane[pc.p1] += gv * pc.w1;
          if (pc.ok2) plane[pc.p2] += gv * pc.w2;
          if (pc.ok3) plane[pc.p3] += gv * pc.w3;
          if (pc.ok4) plane[pc.p4] += gv * pc.w4;
        }
      }
    }
  });
}

// Gradients w.r.t. offsets and mask; each (offset group, tap) row is owned by one thread.
template <typename T>
void deform_coord_grad(const ConvShape& s, const T* gcols, const T* in, const T* off, const T* mask, T* grad_off,
                       T* grad_mask) {
  const int64_t kk = s.taps(), L = s.locs(), ch_per_group = s.in_ch / s.offset_groups;
  at::parallel_for(0, s.offset_groups * kk, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t row = r0; row < r1; ++row) {
      const int64_t g = row / kk, kidx = row % kk;
      const T* goff = off + g * 2 * kk * L;
      const T* m = mask ? mask + (g * kk + kidx) * L : nullptr;
      T* gy_out = grad_off + (g * 2 * kk + 2 * kidx) * L;
      T* gx_out = gy_out + L;
      T* gm_out = grad_mask ? grad_mask + (g * kk + kidx) * L : nullptr;
      for (int64_t l = 0; l < L; ++l) {
        T y, x;
        tap_position(s, goff, kidx, l, &y, &x);
        PadCorners<T> pc = pad_corners<T>(s.height, s.width, y, x);
        T gy = 0, gx = 0, gm = 0;
        if (pc.any) {
          for (int64_t c = g * ch_per_group; c < (g + 1) * ch_per_group; ++c) {
            const T* plane = in + c * s.height * s.width;
            const T gc = gcols[(c * kk + kidx) * L + l];
            T dy, dx;
            pad_sample_grad_pos(plane, pc, &dy, &dx);
            gy += gc * dy;
            gx += gc * dx;
            if (gm_out) gm += gc * pad_sample(plane, pc);
          }
        }
        const T scale = m ? m[l] : (T)1;
        gy_out[l] = gy * scale;
        gx_out[l] = gx * scale;
        if (gm_out) gm_out[l] = gm;
      }
    }
  });
}

}  // namespace

at::Tensor deform_conv_forward_cpu(const at::Tensor& input_in, const at::Tensor& weight_in, const at::Tensor& offset_in,
                                   const at::Tensor& mask_in, bool use_mask, int64_t stride_h, int64_t stride_w,
                                   int64_t pad_h, int64_t pad_w, int64_t dil_h, int64_t dil_w) {
  at::Tensor input = input_in.contiguous();
  at::Tensor weight = weight_in.contiguous();
  at::Tensor offset = offset_in.contiguous();
  at::Tensor mask = use_mask ? mask_in.contiguous() : mask_in;
  ConvShape s = conv_shape(input, weight, offset, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w);
  at::Tensor output = at::zeros({s.batch, s.out_ch, s.out_h, s.out_w}, input.options());
  if (output.numel() == 0) return output;
  const int64_t kk = s.taps(), L = s.locs(), wg = s.weight_groups;
  at::Tensor cols = at::empty({s.in_ch * kk, L}, input.options());
  at::Tensor w_g = weight.view({wg, s.out_ch / wg, (s.in_ch / wg) * kk});
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "deform_conv_forward_cpu", [&] {
    for (int64_t b = 0; b < s.batch; ++b) {
      deform_im2col<scalar_t>(s, input[b].data_ptr<scalar_t>(), offset[b].data_ptr<scalar_t>(),
                              use_mask ? mask[b].data_ptr<scalar_t>() : nullptr, cols.data_ptr<scalar_t>());
      at::Tensor out_b = output[b].view({wg, s.out_ch / wg, L});
      at::bmm_out(out_b, w_g, cols.view({wg, (s.in_ch / wg) * kk, L}));
    }
  });
  return output;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> deform_conv_backward_cpu(
    const at::Tensor& grad_in, const at::Tensor& input_in, const at::Tensor& weight_in, const at::Tensor& offset_in,
    const at::Tensor& mask_in, bool use_mask, int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w,
    int64_t dil_h, int64_t dil_w) {
  at::Tensor grad = grad_in.contiguous();
  at::Tensor input = input_in.contiguous();
  at::Tensor weight = weight_in.contiguous();
  at::Tensor offset = offset_in.contiguous();
  at::Tensor mask = use_mask ? mask_in.contiguous() : mask_in;
  ConvShape s = conv_shape(input, weight, offset, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w);
  at::Tensor grad_input = at::zeros_like(input);
  at::Tensor grad_offset = at::zeros_like(offset);
  at::Tensor grad_mask = use_mask ? at::zeros_like(mask) : at::Tensor();
  at::Tensor grad_weight = at::zeros_like(weight);
  if (grad.numel() == 0 || input.numel() == 0) return std::make_tuple(grad_input, grad_offset, grad_mask, grad_weight);
  const int64_t kk = s.taps(), L = s.locs(), wg = s.weight_groups, rows = (s.in_ch / wg) * kk;
  at::Tensor cols = at::empty({s.in_ch * kk, L}, input.options());
  at::Tensor gcols = at::empty({s.in_ch * kk, L}, input.options());
  at::Tensor w_g = weight.view({wg, s.out_ch / wg, rows});
  at::Tensor gw_g = grad_weight.view({wg, s.out_ch / wg, rows});
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "deform_conv_backward_cpu", [&] {
    for (int64_t b = 0; b < s.batch; ++b) {
      const scalar_t* in_b = input[b].data_ptr<scalar_t>();
      const scalar_t* off_b = offset[b].data_ptr<scalar_t>();
      const scalar_t* mask_b = use_mask ? mask[b].data_ptr<scalar_t>() : nullptr;
      at::Tensor go_b = grad[b].view({wg, s.out_ch / wg, L});
      at::Tensor gcols_g = gcols.view({wg, rows, L});
      at::bmm_out(gcols_g, w_g.transpose(1, 2), go_b);
      const scalar_t* gc = gcols.data_ptr<scalar_t>();
      deform_col2im<scalar_t>(s, gc, off_b, mask_b, grad_input[b].data_ptr<scalar_t>());
      deform_coord_grad<scalar_t>(s, gc, in_b, off_b, mask_b, grad_offset[b].data_ptr<scalar_t>(),
                                  use_mask ? grad_mask[b].data_ptr<scalar_t>() : nullptr);
      deform_im2col<scalar_t>(s, in_b, off_b, mask_b, cols.data_ptr<scalar_t>());
      gw_g.baddbmm_(go_b, cols.view({wg, rows, L}).transpose(1, 2));
    }
  });
  return std::make_tuple(grad_input, grad_offset, grad_mask, grad_weight);
}

}  // namespace det_ops
