// Bilinear-sampling helpers shared by the CPU (.cpp) and CUDA (.cu) kernels, so that both
// backends sample feature maps with exactly the same boundary rules.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define DET_HD __host__ __device__ __forceinline__
#else
#define DET_HD inline
#endif

namespace det_ops {

// RoIAlign-style corners: samples outside [-1, size] are zero, others are clamped into the
// map (torchvision.ops.roi_align rules). `valid` false means all weights are zero.
// dy_scale/dx_scale are d(clamped y)/dy and d(clamped x)/dx (0 where clamped, else 1).
template <typename T>
struct RoiCorners {
  int64_t p1, p2, p3, p4;  // flat offsets of (y_low,x_low), (y_low,x_high), (y_high,x_low), (y_high,x_high)
  T w1, w2, w3, w4;
  T ly, lx, hy, hx;
  T dy_scale, dx_scale;
  bool valid;
};

template <typename T>
DET_HD RoiCorners<T> roi_corners(int height, int width, T y, T x) {
  RoiCorners<T> c;
  c.valid = !(y < (T)-1.0 || y > (T)height || x < (T)-1.0 || x > (T)width);
  if (!c.valid) {
    c.p1 = c.p2 = c.p3 = c.p4 = 0;
    c.w1 = c.w2 = c.w3 = c.w4 = 0;
    c.ly = c.lx = c.hy = c.hx = 0;
    c.dy_scale = c.dx_scale = 0;
    return c;
  }
  c.dy_scale = 1;
  c.dx_scale = 1;
  if (y <= 0) {
    y = 0;
    c.dy_scale = 0;
  }
  if (x <= 0) {
    x = 0;
    c.dx_scale = 0;
  }
  int y_low = (int)y;
  int x_low = (int)x;
  int y_high, x_high;
  if (y_low >= height - 1) {
    y_high = y_low = height - 1;
    y = (T)y_low;
    c.dy_scale = 0;
  } else {
    y_high = y_low + 1;
  }
  if (x_low >= width - 1) {
    x_high = x_low = width - 1;
    x = (T)x_low;
    c.dx_scale = 0;
  } else {
    x_high = x_low + 1;
  }
  c.ly = y - y_low;
  c.lx = x - x_low;
  c.hy = (T)1 - c.ly;
  c.hx = (T)1 - c.lx;
  c.w1 = c.hy * c.hx;
  c.w2 = c.hy * c.lx;
  c.w3 = c.ly * c.hx;
  c.w4 = c.ly * c.lx;
  c.p1 = (int64_t)y_low * width + x_low;
  c.p2 = (int64_t)y_low * width + x_high;
  c.p3 = (int64_t)y_high * width + x_low;
  c.p4 = (int64_t)y_high * width + x_high;
  return c;
}

template <typename T>
DET_HD T roi_sample(const T* data, const RoiCorners<T>& c) {
  if (!c.valid) return (T)0;
  return c.w1 * data[c.p1] + c.w2 * data[c.p2] + c.w3 * data[c.p3] + c.w4 * data[c.p4];
}

// d(sample)/dy and d(sample)/dx of a RoIAlign-style sample (exact derivative of roi_sample).
template <typename T>
DET_HD void roi_sample_grad_pos(const T* data, const RoiCorners<T>& c, T* dy, T* dx) {
  if (!c.valid) {
    *dy = 0;
    *dx = 0;
    return;
  }
  T v1 = data[c.p1], v2 = data[c.p2], v3 = data[c.p3], v4 = data[c.p4];
  *dy = c.dy_scale * (c.hx * (v3 - v1) + c.lx * (v4 - v2));
  *dx = c.dx_scale * (c.hy * (v2 - v1) + c.ly * (v4 - v3));
}

// Zero-padded bilinear corners (grid_sample align_corners=False / deform conv rules): each
// corner outside the map contributes zero. A corner's `ok` flag says whether it is inside.
template <typename T>
struct PadCorners {
  int64_t p1, p2, p3, p4;
  T w1, w2, w3, w4;
  T ly, lx, hy, hx;
  bool ok1, ok2, ok3, ok4;
  bool any;
};

template <typename T>
DET_HD PadCorners<T> pad_corners(int height, int width, T y, T x) {
  PadCorners<T> c;
  c.any = y > (T)-1 && x > (T)-1 && y < (T)height && x < (T)width;
  if (!c.any) {
    c.p1 = c.p2 = c.p3 = c.p4 = 0;
    c.w1 = c.w2 = c.w3 = c.w4 = 0;
    c.ly = c.lx = c.hy = c.hx = 0;
    c.ok1 = c.ok2 = c.ok3 = c.ok4 = false;
    return c;
  }
  T yf = floor(y);
  T xf = floor(x);
  int y_low = (int)yf;
  int x_low = (int)xf;
  int y_high = y_low + 1;
  int x_high = x_low + 1;
  c.ly = y - yf;
  c.lx = x - xf;
  c.hy = (T)1 - c.ly;
  c.hx = (T)1 - c.lx;
  c.w1 = c.hy * c.hx;
  c.w2 = c.hy * c.lx;
  c.w3 = c.ly * c.hx;
  c.w4 = c.ly * c.lx;
  bool yl = y_low >= 0, yh = y_high <= height - 1;
  bool xl = x_low >= 0, xh = x_high <= width - 1;
  c.ok1 = yl && xl;
  c.ok2 = yl && xh;
  c.ok3 = yh && xl;
  c.ok4 = yh && xh;
  c.p1 = c.ok1 ? (int64_t)y_low * width + x_low : 0;
  c.p2 = c.ok2 ? (int64_t)y_low * width + x_high : 0;
  c.p3 = c.ok3 ? (int64_t)y_high * width + x_low : 0;
  c.p4 = c.ok4 ? (int64_t)y_high * width + x_high : 0;
  return c;
}

// Sample a zero-padded map whose pixel (y,x) lives at data[(y*width+x)*stride].
template <typename T>
DET_HD T pad_sample(const T* data, const PadCorners<T>& c, int64_t stride = 1) {
  T v = 0;
  if (c.ok1) v += c.w1 * data[c.p1 * stride];
  if (c.ok2) v += c.w2 * data[c.p2 * stride];
  if (c.ok3) v += c.w3 * data[c.p3 * stride];
  if (c.ok4) v += c.w4 * data[c.p4 * stride];
  return v;
}

// Exact d(sample)/dy and d(sample)/dx of pad_sample.
template <typename T>
DET_HD void pad_sample_grad_pos(const T* data, const PadCorners<T>& c, T* dy, T* dx, int64_t stride = 1) {
  T v1 = c.ok1 ? data[c.p1 * stride] : (T)0;
  T v2 = c.ok2 ? data[c.p2 * stride] : (T)0;
  T v3 = c.ok3 ? data[c.p3 * stride] : (T)0;
  T v4 = c.ok4 ? data[c.p4 * stride] : (T)0;
  *dy = c.hx * (v3 - v1) + c.lx * (v4 - v2);
  *dx = c.hy * (v2 - v1) + c.ly * (v4 - v3);
}

// Geometry of one RoI for RoIAlign-style pooling (torchvision roi_align conventions).
template <typename T>
struct RoiGeom {
  int64_t batch;
  T start_h, start_w, roi_h, roi_w, bin_h, bin_w;
  int grid_h, grid_w;
  T count;
};

template <typename T>
DET_HD RoiGeom<T> roi_geometry(const T* roi, T scale, bool aligned, int pooled_h, int pooled_w, int sampling) {
  RoiGeom<T> g;
  g.batch = (int64_t)roi[0];
  T offset = aligned ? (T)0.5 : (T)0;
  g.start_w = roi[1] * scale - offset;
  g.start_h = roi[2] * scale - offset;
  T end_w = roi[3] * scale - offset;
  T end_h = roi[4] * scale - offset;
  g.roi_w = end_w - g.start_w;
  g.roi_h = end_h - g.start_h;
  if (!aligned) {
    g.roi_w = g.roi_w > (T)1 ? g.roi_w : (T)1;
    g.roi_h = g.roi_h > (T)1 ? g.roi_h : (T)1;
  }
  g.bin_h = g.roi_h / (T)pooled_h;
  g.bin_w = g.roi_w / (T)pooled_w;
  g.grid_h = sampling > 0 ? sampling : (int)ceil(g.roi_h / (T)pooled_h);
  g.grid_w = sampling > 0 ? sampling : (int)ceil(g.roi_w / (T)pooled_w);
  int n = g.grid_h * g.grid_w;
  g.count = (T)(n > 1 ? n : 1);
  return g;
}

}  // namespace det_ops
