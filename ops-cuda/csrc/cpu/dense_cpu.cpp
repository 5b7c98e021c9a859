// CPU kernels for dense ops: multi-scale deformable attention, corner pooling, sigmoid focal
// loss and CARAFE. Each forward is parallel over independent outputs; each backward is split so
// that every thread owns the memory it accumulates into.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "common.h"
#include "ops.h"

namespace det_ops {
namespace {

struct MsdaShape {
  int64_t batch, spatial, heads, channels, queries, levels, points;
};

MsdaShape msda_shape(const at::Tensor& value, const at::Tensor& shapes, const at::Tensor& loc, const at::Tensor& attn) {
  TORCH_CHECK(value.dim() == 4, "value must be [B, S, heads, C]");
  TORCH_CHECK(loc.dim() == 6 && loc.size(5) == 2, "sampling_locations must be [B, Q, heads, L, P, 2]");
  TORCH_CHECK(attn.dim() == 5, "attention_weights must be [B, Q, heads, L, P]");
  MsdaShape s{value.size(0), value.size(1), value.size(2), value.size(3), loc.size(1), loc.size(3), loc.size(4)};
  TORCH_CHECK(shapes.dim() == 2 && shapes.size(0) == s.levels && shapes.size(1) == 2, "spatial_shapes must be [L, 2]");
  return s;
}

// Pixel position of a normalised sampling location (grid_sample, align_corners=False).
template <typename T>
inline void msda_position(const T* loc, int64_t h, int64_t w, T* y, T* x) {
  *x = loc[0] * (T)w - (T)0.5;
  *y = loc[1] * (T)h - (T)0.5;
}

template <typename T>
inline void axpy(T* out, const T* v, T a, int64_t n) {
#pragma omp simd
  for (int64_t d = 0; d < n; ++d) out[d] += a * v[d];
}

// One pass over a corner in the MSDA backward: returns <g, v> and adds a * g to gv (the omp simd
// reduction lets the compiler vectorise the sum).
template <typename T>
inline T dot_axpy(const T* g, const T* v, T* gv, T a, int64_t n) {
  T acc = 0;
#pragma omp simd reduction(+ : acc)
  for (int64_t d = 0; d < n; ++d) {
    acc += g[d] * v[d];
    gv[d] += a * g[d];
  }
  return acc;
}

// Pointers and sizes of one MSDA call; value is [B, S, heads, C], outputs [B, Q, heads * C].
template <typename T>
struct MsdaArgs {
  MsdaShape s;
  const int64_t* hw;     // [L, 2] level heights and widths
  const int64_t* start;  // [L] first row of each level in `value`
  const T* value;
  const T* loc;
  const T* attn;
};

// Calls fn(idx, level_offset, h, w, corners) for each sampling point of query row bq (batch b) and
// head m that touches its level's map; idx indexes attention weights and locations, level_offset
// is the offset of the level's first value of head m.
template <typename T, typename Fn>
inline void for_each_sample(const MsdaArgs<T>& a, int64_t b, int64_t bq, int64_t m, Fn&& fn) {
  const MsdaShape& s = a.s;
  const int64_t lp_base = (bq * s.heads + m) * s.levels * s.points;
  for (int64_t l = 0; l < s.levels; ++l) {
    const int64_t h = a.hw[2 * l], w = a.hw[2 * l + 1];
    const int64_t level_offset = ((b * s.spatial + a.start[l]) * s.heads + m) * s.channels;
    for (int64_t p = 0; p < s.points; ++p) {
      const int64_t idx = lp_base + l * s.points + p;
      T y, x;
      msda_position(a.loc + 2 * idx, h, w, &y, &x);
      const PadCorners<T> pc = pad_corners<T>(h, w, y, x);
      if (pc.any) fn(idx, level_offset, h, w, pc);
    }
  }
}

// Output rows [bq0, bq1) of the forward pass (one row per batch element and query).
template <typename T>
void msda_forward_rows(const MsdaArgs<T>& a, T* out, int64_t bq0, int64_t bq1) {
  const MsdaShape& s = a.s;
  const int64_t row = s.heads * s.channels;  // stride between spatial positions in `value`
  const int64_t C = s.channels;
  for (int64_t bq = bq0; bq < bq1; ++bq) {
    for (int64_t m = 0; m < s.heads; ++m) {
      T* o = out + bq * row + m * C;
      for_each_sample(a, bq / s.queries, bq, m, [&](int64_t idx, int64_t off, int64_t, int64_t, const PadCorners<T>& pc) {
        const T* vl = a.value + off;
        const T at = a.attn[idx];
        if (pc.ok1) axpy(o, vl + pc.p1 * row, at * pc.w1, C);
        if (pc.ok2) axpy(o, vl + pc.p2 * row, at * pc.w2, C);
        if (pc.ok3) axpy(o, vl + pc.p3 * row, at * pc.w3, C);
        if (pc.ok4) axpy(o, vl + pc.p4 * row, at * pc.w4, C);
      });
    }
  }
}

// Backward for tasks [t0, t1); task t = (batch b, head m) owns grad_value[b, :, m, :] and the
// location and attention gradients of every query of that head, so no two threads share memory.
template <typename T>
void msda_backward_tasks(const MsdaArgs<T>& a, const T* grad_out, T* gv, T* gl, T* ga, int64_t t0, int64_t t1) {
  const MsdaShape& s = a.s;
  const int64_t row = s.heads * s.channels;
  const int64_t C = s.channels;
  for (int64_t t = t0; t < t1; ++t) {
    const int64_t b = t / s.heads, m = t % s.heads;
    for (int64_t q = 0; q < s.queries; ++q) {
      const int64_t bq = b * s.queries + q;
      const T* g = grad_out + bq * row + m * C;
      for_each_sample(a, b, bq, m, [&](int64_t idx, int64_t off, int64_t h, int64_t w, const PadCorners<T>& pc) {
        const T* vl = a.value + off;
        T* gvl = gv + off;
        const T at = a.attn[idx];
        // The sample is sum_i w_i v_i over the in-map corners, so every gradient follows from
        // the four dot products <grad_out, v_i>.
        const T d1 = pc.ok1 ? dot_axpy(g, vl + pc.p1 * row, gvl + pc.p1 * row, at * pc.w1, C) : (T)0;
        const T d2 = pc.ok2 ? dot_axpy(g, vl + pc.p2 * row, gvl + pc.p2 * row, at * pc.w2, C) : (T)0;
        const T d3 = pc.ok3 ? dot_axpy(g, vl + pc.p3 * row, gvl + pc.p3 * row, at * pc.w3, C) : (T)0;
        const T d4 = pc.ok4 ? dot_axpy(g, vl + pc.p4 * row, gvl + pc.p4 * row, at * pc.w4, C) : (T)0;
        const T g_y = pc.hx * (d3 - d1) + pc.lx * (d4 - d2);
        const T g_x = pc.hy * (d2 - d1) + pc.ly * (d4 - d3);
        ga[idx] = pc.w1 * d1 + pc.w2 * d2 + pc.w3 * d3 + pc.w4 * d4;
        gl[2 * idx] = g_x * at * (T)w;
        gl[2 * idx + 1] = g_y * at * (T)h;
      });
    }
  }
}

}  // namespace

at::Tensor msda_forward_cpu(const at::Tensor& value_in, const at::Tensor& shapes_in, const at::Tensor& start_in,
                            const at::Tensor& loc_in, const at::Tensor& attn_in) {
  at::Tensor value = value_in.contiguous();
  at::Tensor shapes = shapes_in.to(at::kLong).contiguous();
  at::Tensor start = start_in.to(at::kLong).contiguous();
  at::Tensor loc = loc_in.to(value.scalar_type()).contiguous();
  at::Tensor attn = attn_in.to(value.scalar_type()).contiguous();
  MsdaShape s = msda_shape(value, shapes, loc, attn);
  at::Tensor output = at::zeros({s.batch, s.queries, s.heads * s.channels}, value.options());
  if (output.numel() == 0) return output;
  AT_DISPATCH_FLOATING_TYPES(value.scalar_type(), "msda_forward_cpu", [&] {
    MsdaArgs<scalar_t> args{s, shapes.data_ptr<int64_t>(), start.data_ptr<int64_t>(), value.data_ptr<scalar_t>(),
                            loc.data_ptr<scalar_t>(), attn.data_ptr<scalar_t>()};
    scalar_t* out = output.data_ptr<scalar_t>();
    at::parallel_for(0, s.batch * s.queries, 8,
                     [&](int64_t i0, int64_t i1) { msda_forward_rows<scalar_t>(args, out, i0, i1); });
  });
  return output;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> msda_backward_cpu(const at::Tensor& grad_in, const at::Tensor& value_in,
                                                                 const at::Tensor& shapes_in, const at::Tensor& start_in,
                                                                 const at::Tensor& loc_in, const at::Tensor& attn_in) {
  at::Tensor value = value_in.contiguous();
  at::Tensor grad = grad_in.contiguous();
  at::Tensor shapes = shapes_in.to(at::kLong).contiguous();
  at::Tensor start = start_in.to(at::kLong).contiguous();
  at::Tensor loc = loc_in.to(value.scalar_type()).contiguous();
  at::Tensor attn = attn_in.to(value.scalar_type()).contiguous();
  MsdaShape s = msda_shape(value, shapes, loc, attn);
  at::Tensor grad_value = at::zeros_like(value);
  at::Tensor grad_loc = at::zeros_like(loc);
  at::Tensor grad_attn = at::zeros_like(attn);
  if (grad.numel() == 0 || value.numel() == 0) return std::make_tuple(grad_value, grad_loc, grad_attn);
  AT_DISPATCH_FLOATING_TYPES(value.scalar_type(), "msda_backward_cpu", [&] {
    MsdaArgs<scalar_t> args{s, shapes.data_ptr<int64_t>(), start.data_ptr<int64_t>(), value.data_ptr<scalar_t>(),
                            loc.data_ptr<scalar_t>(), attn.data_ptr<scalar_t>()};
    const scalar_t* go = grad.data_ptr<scalar_t>();
    scalar_t* gv = grad_value.data_ptr<scalar_t>();
    scalar_t* gl = grad_loc.data_ptr<scalar_t>();
    scalar_t* ga = grad_attn.data_ptr<scalar_t>();
    at::parallel_for(0, s.batch * s.heads, 1, [&](int64_t t0, int64_t t1) {
      msda_backward_tasks<scalar_t>(args, go, gv, gl, ga, t0, t1);
    });
  });
  return std::make_tuple(grad_value, grad_loc, grad_attn);
}

namespace {

// Geometry of a corner-pool scan over one [H, W] plane: `lines` independent scans of `len`
// elements; element k of line j sits at base(j) + k*step, visited from `first` towards `last`.
struct ScanGeom {
  int64_t lines, len, line_stride, step;
  bool reverse;
};

ScanGeom scan_geom(int64_t height, int64_t width, int64_t mode) {
  TORCH_CHECK(mode >= kTop && mode <= kRight, "unknown corner-pool mode ", mode);
  const bool vertical = mode == kTop || mode == kBottom;
  ScanGeom g;
  g.lines = vertical ? width : height;
  g.len = vertical ? height : width;
  g.line_stride = vertical ? 1 : width;
  g.step = vertical ? width : 1;
  // "top" and "left" take the max over indices >= i, so they scan from the far end.
  g.reverse = mode == kTop || mode == kLeft;
  return g;
}

}  // namespace

at::Tensor corner_pool_forward_cpu(const at::Tensor& input_in, int64_t mode) {
  TORCH_CHECK(input_in.dim() == 4, "corner_pool input must be [N, C, H, W]");
  at::Tensor input = input_in.contiguous();
  at::Tensor output = at::empty_like(input);
  if (input.numel() == 0) return output;
  const int64_t planes = input.size(0) * input.size(1), H = input.size(2), W = input.size(3);
  const bool vertical = mode == kTop || mode == kBottom;
  ScanGeom g = scan_geom(H, W, mode);
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "corner_pool_forward_cpu", [&] {
    const scalar_t* in = input.data_ptr<scalar_t>();
    scalar_t* out = output.data_ptr<scalar_t>();
    at::parallel_for(0, planes, 1, [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p) {
        const scalar_t* src = in + p * H * W;
        scalar_t* dst = out + p * H * W;
        if (vertical) {
          // Row-wise running max: contiguous rows, vectorisable inner loop.
          const int64_t first = g.reverse ? H - 1 : 0, dir = g.reverse ? -1 : 1;
          std::copy(src + first * W, src + first * W + W, dst + first * W);
          for (int64_t k = 1; k < H; ++k) {
            const int64_t r = first + dir * k, prev = r - dir;
            const scalar_t* s = src + r * W;
            const scalar_t* pr = dst + prev * W;
            scalar_t* d = dst + r * W;
            for (int64_t j = 0; j < W; ++j) d[j] = s[j] > pr[j] ? s[j] : pr[j];
          }
        } else {
          for (int64_t i = 0; i < H; ++i) {
            const scalar_t* s = src + i * W;
            scalar_t* d = dst + i * W;
            if (g.reverse) {
              scalar_t cur = s[W - 1];
              for (int64_t j = W - 1; j >= 0; --j) d[j] = cur = s[j] > cur ? s[j] : cur;
            } else {
              scalar_t cur = s[0];
              for (int64_t j = 0; j < W; ++j) d[j] = cur = s[j] > cur ? s[j] : cur;
            }
          }
        }
      }
    });
  });
  return output;
}

at::Tensor corner_pool_backward_cpu(const at::Tensor& grad_in, const at::Tensor& input_in, int64_t mode) {
  at::Tensor input = input_in.contiguous();
  at::Tensor grad = grad_in.contiguous();
  at::Tensor grad_input = at::empty_like(input);  // every element is written below
  if (input.numel() == 0) return grad_input;
  const int64_t planes = input.size(0) * input.size(1), H = input.size(2), W = input.size(3);
  ScanGeom g = scan_geom(H, W, mode);
  // Each output's gradient goes to the element holding the running max at that point of the
  // scan (on ties the most recently scanned element wins, as in torch.cummax). Two passes per
  // line: in scan order, mark the elements that take over the running max; against scan order,
  // sum the output gradients and hand the sum to each marked element as it is reached.
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "corner_pool_backward_cpu", [&] {
    const scalar_t* in = input.data_ptr<scalar_t>();
    const scalar_t* go = grad.data_ptr<scalar_t>();
    scalar_t* gi = grad_input.data_ptr<scalar_t>();
    const bool vertical = mode == kTop || mode == kBottom;
    at::parallel_for(0, planes, 1, [&](int64_t p0, int64_t p1) {
      std::vector<uint8_t> takes_over(vertical ? H * W : W);
      std::vector<scalar_t> run(vertical ? W : 0), acc(vertical ? W : 0);
      for (int64_t p = p0; p < p1; ++p) {
        const scalar_t* src = in + p * H * W;
        const scalar_t* g_out = go + p * H * W;
        scalar_t* g_in = gi + p * H * W;
        if (vertical) {
          // Whole rows at a time (contiguous), one running max and one gradient sum per column.
          const int64_t first = g.reverse ? H - 1 : 0, dir = g.reverse ? -1 : 1;
          uint8_t* flags = takes_over.data();
          std::copy(src + first * W, src + first * W + W, run.data());
          std::fill(flags + first * W, flags + first * W + W, 1);
          for (int64_t k = 1; k < H; ++k) {
            const int64_t r = first + dir * k;
            const scalar_t* s = src + r * W;
            uint8_t* f = flags + r * W;
            for (int64_t j = 0; j < W; ++j) {
              const bool take = s[j] >= run[j];
              f[j] = take;
              run[j] = take ? s[j] : run[j];
            }
          }
          std::fill(acc.begin(), acc.end(), (scalar_t)0);
          for (int64_t k = H - 1; k >= 0; --k) {
            const int64_t r = first + dir * k;
            const uint8_t* f = flags + r * W;
            const scalar_t* go_r = g_out + r * W;
            scalar_t* gi_r = g_in + r * W;
            for (int64_t j = 0; j < W; ++j) {
              const scalar_t sum = acc[j] + go_r[j];
              gi_r[j] = f[j] ? sum : (scalar_t)0;
              acc[j] = f[j] ? (scalar_t)0 : sum;
            }
          }
        } else {
          uint8_t* f = takes_over.data();
          for (int64_t i = 0; i < H; ++i) {
            const scalar_t* s = src + i * W;
            const scalar_t* go_r = g_out + i * W;
            scalar_t* gi_r = g_in + i * W;
            const int64_t first = g.reverse ? W - 1 : 0, dir = g.reverse ? -1 : 1;
            scalar_t cur = s[first];
            f[first] = 1;
            for (int64_t k = 1; k < W; ++k) {
              const int64_t j = first + dir * k;
              f[j] = s[j] >= cur;
              cur = f[j] ? s[j] : cur;
            }
            scalar_t sum = 0;
            for (int64_t k = W - 1; k >= 0; --k) {
              const int64_t j = first + dir * k;
              sum += go_r[j];
              gi_r[j] = f[j] ? sum : (scalar_t)0;
              sum = f[j] ? (scalar_t)0 : sum;
            }
          }
        }
      }
    });
  });
  return grad_input;
}

namespace {

// log(sigmoid(x)) and log(1 - sigmoid(x)) without overflow.
template <typename T>
inline void log_sigmoids(T x, T* log_p, T* log_1mp) {
  const T soft = std::log1p(std::exp(-std::abs(x)));
  *log_p = std::min(x, (T)0) - soft;
  *log_1mp = std::min(-x, (T)0) - soft;
}

}  // namespace

at::Tensor focal_loss_forward_cpu(const at::Tensor& pred_in, const at::Tensor& target_in, double gamma, double alpha) {
  TORCH_CHECK(pred_in.dim() == 2, "pred must be [N, C]");
  at::Tensor pred = pred_in.contiguous();
  at::Tensor target = target_in.to(at::kLong).contiguous();
  at::Tensor loss = at::empty_like(pred);
  if (pred.numel() == 0) return loss;
  const int64_t N = pred.size(0), C = pred.size(1);
  AT_DISPATCH_FLOATING_TYPES(pred.scalar_type(), "focal_loss_forward_cpu", [&] {
    const scalar_t* x = pred.data_ptr<scalar_t>();
    const int64_t* t = target.data_ptr<int64_t>();
    scalar_t* out = loss.data_ptr<scalar_t>();
    // alpha < 0 disables the class balancing (torchvision convention).
    const scalar_t gam = (scalar_t)gamma, a_pos = alpha >= 0 ? (scalar_t)alpha : (scalar_t)1,
                   a_neg = alpha >= 0 ? (scalar_t)(1 - alpha) : (scalar_t)1;
    at::parallel_for(0, N, 64, [&](int64_t n0, int64_t n1) {
      for (int64_t n = n0; n < n1; ++n)
        for (int64_t c = 0; c < C; ++c) {
          const scalar_t xv = x[n * C + c];
          const scalar_t p = (scalar_t)1 / ((scalar_t)1 + std::exp(-xv));
          scalar_t lp, l1p;
          log_sigmoids(xv, &lp, &l1p);
          out[n * C + c] = t[n] == c ? -a_pos * std::pow((scalar_t)1 - p, gam) * lp
                                     : -a_neg * std::pow(p, gam) * l1p;
        }
    });
  });
  return loss;
}

at::Tensor focal_loss_backward_cpu(const at::Tensor& grad_in, const at::Tensor& pred_in, const at::Tensor& target_in,
                                   double gamma, double alpha) {
  at::Tensor pred = pred_in.contiguous();
  at::Tensor grad = grad_in.contiguous();
  at::Tensor target = target_in.to(at::kLong).contiguous();
  at::Tensor grad_pred = at::empty_like(pred);
  if (pred.numel() == 0) return grad_pred;
  const int64_t N = pred.size(0), C = pred.size(1);
  AT_DISPATCH_FLOATING_TYPES(pred.scalar_type(), "focal_loss_backward_cpu", [&] {
    const scalar_t* x = pred.data_ptr<scalar_t>();
    const scalar_t* g = grad.data_ptr<scalar_t>();
    const int64_t* t = target.data_ptr<int64_t>();
    scalar_t* out = grad_pred.data_ptr<scalar_t>();
    // alpha < 0 disables the class balancing (torchvision convention).
    const scalar_t gam = (scalar_t)gamma, a_pos = alpha >= 0 ? (scalar_t)alpha : (scalar_t)1,
                   a_neg = alpha >= 0 ? (scalar_t)(1 - alpha) : (scalar_t)1;
    at::parallel_for(0, N, 64, [&](int64_t n0, int64_t n1) {
      for (int64_t n = n0; n < n1; ++n)
        for (int64_t c = 0; c < C; ++c) {
          const scalar_t xv = x[n * C + c];
          const scalar_t p = (scalar_t)1 / ((scalar_t)1 + std::exp(-xv));
          scalar_t lp, l1p;
          log_sigmoids(xv, &lp, &l1p);
          scalar_t d;
          if (t[n] == c) {  // d/dx of -a (1-p)^g log p
            d = -a_pos * std::pow((scalar_t)1 - p, gam) * (((scalar_t)1 - p) - gam * p * lp);
          } else {  // d/dx of -(1-a) p^g log(1-p)
            d = -a_neg * std::pow(p, gam) * (gam * ((scalar_t)1 - p) * l1p - p);
          }
          out[n * C + c] = g[n * C + c] * d;
        }
    });
  });
  return grad_pred;
}

namespace {

struct CarafeShape {
  int64_t N, C, H, W, Ho, Wo, k, G, s, r;
};

CarafeShape carafe_shape(const at::Tensor& f, const at::Tensor& m, int64_t k, int64_t G, int64_t s) {
  TORCH_CHECK(f.dim() == 4 && m.dim() == 4, "carafe expects 4-D features and masks");
  TORCH_CHECK(k % 2 == 1, "carafe kernel_size must be odd");
  TORCH_CHECK(G > 0 && f.size(1) % G == 0, "channels must be a multiple of group_size");
  TORCH_CHECK(m.size(1) == G * k * k && m.size(2) == f.size(2) * s && m.size(3) == f.size(3) * s,
              "masks must be [N, group_size*k*k, H*scale, W*scale]");
  return CarafeShape{f.size(0), f.size(1), f.size(2), f.size(3), m.size(2), m.size(3), k, G, s, (k - 1) / 2};
}

}  // namespace

at::Tensor carafe_forward_cpu(const at::Tensor& features_in, const at::Tensor& masks_in, int64_t kernel_size,
                              int64_t group_size, int64_t scale_factor) {
  at::Tensor features = features_in.contiguous();
  at::Tensor masks = masks_in.to(features.scalar_type()).contiguous();
  CarafeShape s = carafe_shape(features, masks, kernel_size, group_size, scale_factor);
  at::Tensor output = at::zeros({s.N, s.C, s.Ho, s.Wo}, features.options());
  if (output.numel() == 0) return output;
  AT_DISPATCH_FLOATING_TYPES(features.scalar_type(), "carafe_forward_cpu", [&] {
    const scalar_t* f = features.data_ptr<scalar_t>();
    const scalar_t* m = masks.data_ptr<scalar_t>();
    scalar_t* out = output.data_ptr<scalar_t>();
    const int64_t kk = s.k * s.k, cpg = s.C / s.G, HWo = s.Ho * s.Wo;
    at::parallel_for(0, s.N * s.C, 1, [&](int64_t i0, int64_t i1) {
      for (int64_t nc = i0; nc < i1; ++nc) {
        const int64_t n = nc / s.C, c = nc % s.C, g = c / cpg;
        const scalar_t* plane = f + nc * s.H * s.W;
        const scalar_t* mg = m + (n * s.G * kk + g * kk) * HWo;
        scalar_t* o = out + nc * HWo;
        for (int64_t y = 0; y < s.Ho; ++y) {
          const int64_t sy = y / s.s;
          for (int64_t x = 0; x < s.Wo; ++x) {
            const int64_t sx = x / s.s;
            scalar_t acc = 0;
            for (int64_t i = 0; i < s.k; ++i) {
              const int64_t yy = sy + i - s.r;
              if (yy < 0 || yy >= s.H) continue;
              for (int64_t j = 0; j < s.k; ++j) {
                const int64_t xx = sx + j - s.r;
                if (xx < 0 || xx >= s.W) continue;
                acc += plane[yy * s.W + xx] * mg[(i * s.k + j) * HWo + y * s.Wo + x];
              }
            }
            o[y * s.Wo + x] = acc;
          }
        }
      }
    });
  });
  return output;
}

std::tuple<at::Tensor, at::Tensor> carafe_backward_cpu(const at::Tensor& grad_in, const at::Tensor& features_in,
                                                       const at::Tensor& masks_in, int64_t kernel_size,
                                                       int64_t group_size, int64_t scale_factor) {
  at::Tensor features = features_in.contiguous();
  at::Tensor masks = masks_in.to(features.scalar_type()).contiguous();
  at::Tensor grad = grad_in.contiguous();
  CarafeShape s = carafe_shape(features, masks, kernel_size, group_size, scale_factor);
  at::Tensor grad_features = at::zeros_like(features);
  at::Tensor grad_masks = at::zeros_like(masks);
  if (grad.numel() == 0) return std::make_tuple(grad_features, grad_masks);
  AT_DISPATCH_FLOATING_TYPES(features.scalar_type(), "carafe_backward_cpu", [&] {
    const scalar_t* f = features.data_ptr<scalar_t>();
    const scalar_t* m = masks.data_ptr<scalar_t>();
    const scalar_t* go = grad.data_ptr<scalar_t>();
    scalar_t* gf = grad_features.data_ptr<scalar_t>();
    scalar_t* gm = grad_masks.data_ptr<scalar_t>();
    const int64_t kk = s.k * s.k, cpg = s.C / s.G, HWo = s.Ho * s.Wo;
    // Features: each (n, c) plane is owned by one task.
    at::parallel_for(0, s.N * s.C, 1, [&](int64_t i0, int64_t i1) {
      for (int64_t nc = i0; nc < i1; ++nc) {
        const int64_t n = nc / s.C, c = nc % s.C, g = c / cpg;
        scalar_t* plane = gf + nc * s.H * s.W;
        const scalar_t* mg = m + (n * s.G * kk + g * kk) * HWo;
        const scalar_t* gop = go + nc * HWo;
        for (int64_t y = 0; y < s.Ho; ++y)
          for (int64_t x = 0; x < s.Wo; ++x) {
            const int64_t sy = y / s.s, sx = x / s.s;
            const scalar_t gv = gop[y * s.Wo + x];
            for (int64_t i = 0; i < s.k; ++i) {
              const int64_t yy = sy + i - s.r;
              if (yy < 0 || yy >= s.H) continue;
              for (int64_t j = 0; j < s.k; ++j) {
                const int64_t xx = sx + j - s.r;
                if (xx < 0 || xx >= s.W) continue;
                plane[yy * s.W + xx] += gv * mg[(i * s.k + j) * HWo + y * s.Wo + x];
              }
            }
          }
      }
    });
    // Masks: each (n, group) block of k*k mask channels is owned by one task.
    at::parallel_for(0, s.N * s.G, 1, [&](int64_t i0, int64_t i1) {
      for (int64_t ng = i0; ng < i1; ++ng) {
        const int64_t n = ng / s.G, g = ng % s.G;
        scalar_t* gmg = gm + ng * kk * HWo;
        for (int64_t c = g * cpg; c < (g + 1) * cpg; ++c) {
          const scalar_t* plane = f + (n * s.C + c) * s.H * s.W;
          const scalar_t* gop = go + (n * s.C + c) * HWo;
          for (int64_t i = 0; i < s.k; ++i)
            for (int64_t j = 0; j < s.k; ++j) {
              scalar_t* gmk = gmg + (i * s.k + j) * HWo;
              for (int64_t y = 0; y < s.Ho; ++y) {
                const int64_t yy = y / s.s + i - s.r;
                if (yy < 0 || yy >= s.H) continue;
                for (int64_t x = 0; x < s.Wo; ++x) {
                  const int64_t xx = x / s.s + j - s.r;
                  if (xx < 0 || xx >= s.W) continue;
                  gmk[y * s.Wo + x] += gop[y * s.Wo + x] * plane[yy * s.W + xx];
                }
              }
            }
        }
      }
    });
  });
  return std::make_tuple(grad_features, grad_masks);
}

}  // namespace det_ops
