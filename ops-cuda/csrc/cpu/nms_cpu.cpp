// CPU NMS family: greedy NMS, per-class (batched) NMS and Soft-NMS.
// Boxes are gathered in score order into contiguous arrays and the candidate list is compacted
// after each kept box, so every step only touches boxes that are still alive.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "ops.h"

namespace det_ops {
namespace {

template <typename T>
inline T box_iou(const T* a, T area_a, const T* b, T area_b) {
  T w = std::min(a[2], b[2]) - std::max(a[0], b[0]);
  T h = std::min(a[3], b[3]) - std::max(a[1], b[1]);
  w = w > 0 ? w : 0;
  h = h > 0 ? h : 0;
  T inter = w * h;
  return inter / (area_a + area_b - inter);
}

// Same IoU, but 0 when the union is empty (the Soft-NMS reference's convention).
template <typename T>
inline T box_iou_or_zero(const T* a, T area_a, const T* b, T area_b) {
  T w = std::min(a[2], b[2]) - std::max(a[0], b[0]);
  T h = std::min(a[3], b[3]) - std::max(a[1], b[1]);
  w = w > 0 ? w : 0;
  h = h > 0 ? h : 0;
  T inter = w * h;
  T uni = area_a + area_b - inter;
  return uni > 0 ? inter / uni : (T)0;
}

// Greedy NMS over `n` boxes already sorted by decreasing score; sets keep[pos]=1 for survivors.
template <typename T>
void greedy_nms(const T* boxes, int64_t n, T threshold, uint8_t* keep) {
  std::vector<T> area(n);
  for (int64_t i = 0; i < n; ++i) {
    const T* b = boxes + 4 * i;
    area[i] = (b[2] - b[0]) * (b[3] - b[1]);
  }
  std::vector<int64_t> alive(n);
  std::iota(alive.begin(), alive.end(), 0);
  int64_t count = n;
  while (count > 0) {
    const int64_t i = alive[0];
    keep[i] = 1;
    const T* bi = boxes + 4 * i;
    const T ai = area[i];
    int64_t write = 0;
    for (int64_t k = 1; k < count; ++k) {
      const int64_t j = alive[k];
      // Suppress only when IoU > threshold (a NaN IoU, from two empty boxes, keeps the box).
      if (!(box_iou(bi, ai, boxes + 4 * j, area[j]) > threshold)) alive[write++] = j;
    }
    count = write;
  }
}

// Indices that sort `scores` by decreasing value; ties keep their input order.
at::Tensor score_order(const at::Tensor& scores) {
  return std::get<1>(scores.sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
}

void check_boxes(const at::Tensor& boxes, const at::Tensor& scores) {
  TORCH_CHECK(boxes.dim() == 2 && boxes.size(1) == 4, "boxes must have shape [N, 4], got ", boxes.sizes());
  TORCH_CHECK(scores.dim() == 1 && scores.size(0) == boxes.size(0), "scores must have shape [N]");
}

}  // namespace

at::Tensor nms_cpu(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold) {
  check_boxes(boxes, scores);
  const int64_t n = boxes.size(0);
  if (n == 0) return at::empty({0}, boxes.options().dtype(at::kLong));
  at::Tensor order = score_order(scores);
  at::Tensor sorted = boxes.index_select(0, order).contiguous();
  std::vector<uint8_t> keep(n, 0);
  AT_DISPATCH_FLOATING_TYPES(boxes.scalar_type(), "nms_cpu", [&] {
    greedy_nms<scalar_t>(sorted.data_ptr<scalar_t>(), n, (scalar_t)iou_threshold, keep.data());
  });
  std::vector<int64_t> kept;
  const int64_t* ord = order.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i)
    if (keep[i]) kept.push_back(ord[i]);
  return at::tensor(kept, boxes.options().dtype(at::kLong));
}

at::Tensor batched_nms_cpu(const at::Tensor& boxes, const at::Tensor& scores, const at::Tensor& idxs,
                           double iou_threshold) {
  check_boxes(boxes, scores);
  TORCH_CHECK(idxs.dim() == 1 && idxs.size(0) == boxes.size(0), "idxs must have shape [N]");
  const int64_t n = boxes.size(0);
  if (n == 0) return at::empty({0}, boxes.options().dtype(at::kLong));
  at::Tensor order = score_order(scores);
  at::Tensor sorted = boxes.index_select(0, order).contiguous();
  at::Tensor sorted_idxs = idxs.to(at::kLong).index_select(0, order);
  // Positions (in score order) grouped by class; each group stays in score order (stable sort).
  at::Tensor by_class = std::get<1>(sorted_idxs.sort(/*stable=*/true, 0, /*descending=*/false)).contiguous();
  const int64_t* cls = sorted_idxs.data_ptr<int64_t>();
  const int64_t* grouped = by_class.data_ptr<int64_t>();
  std::vector<int64_t> starts;
  for (int64_t k = 0; k < n; ++k)
    if (k == 0 || cls[grouped[k]] != cls[grouped[k - 1]]) starts.push_back(k);
  starts.push_back(n);
  const int64_t groups = (int64_t)starts.size() - 1;
  std::vector<uint8_t> keep(n, 0);
  AT_DISPATCH_FLOATING_TYPES(boxes.scalar_type(), "batched_nms_cpu", [&] {
    const scalar_t* all = sorted.data_ptr<scalar_t>();
    const scalar_t thr = (scalar_t)iou_threshold;
    at::parallel_for(0, groups, 1, [&](int64_t g0, int64_t g1) {
      std::vector<scalar_t> local;
      std::vector<uint8_t> local_keep;
      for (int64_t g = g0; g < g1; ++g) {
        const int64_t begin = starts[g], m = starts[g + 1] - begin;
        local.resize(4 * m);
        local_keep.assign(m, 0);
        for (int64_t k = 0; k < m; ++k)
          std::copy(all + 4 * grouped[begin + k], all + 4 * grouped[begin + k] + 4, local.data() + 4 * k);
        greedy_nms<scalar_t>(local.data(), m, thr, local_keep.data());
        for (int64_t k = 0; k < m; ++k)
          if (local_keep[k]) keep[grouped[begin + k]] = 1;
      }
    });
  });
  std::vector<int64_t> kept;
  const int64_t* ord = order.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i)
    if (keep[i]) kept.push_back(ord[i]);
  return at::tensor(kept, boxes.options().dtype(at::kLong));
}

std::tuple<at::Tensor, at::Tensor> soft_nms_cpu(const at::Tensor& boxes_in, const at::Tensor& scores_in,
                                                double iou_threshold, double sigma, double min_score,
                                                int64_t method) {
  check_boxes(boxes_in, scores_in);
  TORCH_CHECK(method >= kSoftLinear && method <= kSoftNaive, "unknown soft-nms method ", method);
  at::Tensor boxes = boxes_in.contiguous();
  at::Tensor scores = scores_in.to(boxes.scalar_type()).contiguous();
  const int64_t n = boxes.size(0);
  at::Tensor dets = at::empty({n, 5}, boxes.options());
  at::Tensor inds = at::empty({n}, boxes.options().dtype(at::kLong));
  int64_t out = 0;
  AT_DISPATCH_FLOATING_TYPES(boxes.scalar_type(), "soft_nms_cpu", [&] {
    const scalar_t* b = boxes.data_ptr<scalar_t>();
    std::vector<scalar_t> s(scores.data_ptr<scalar_t>(), scores.data_ptr<scalar_t>() + n);
    std::vector<scalar_t> area(n);
    for (int64_t i = 0; i < n; ++i) area[i] = (b[4 * i + 2] - b[4 * i]) * (b[4 * i + 3] - b[4 * i + 1]);
    const scalar_t thr = (scalar_t)iou_threshold, sig = (scalar_t)sigma, lo = (scalar_t)min_score;
    // Live candidates (score >= min_score) in input order; each step takes the first highest score.
    std::vector<int64_t> alive;
    alive.reserve(n);
    for (int64_t i = 0; i < n; ++i)
      if (s[i] >= lo) alive.push_back(i);
    int64_t count = (int64_t)alive.size();
    scalar_t* d = dets.data_ptr<scalar_t>();
    int64_t* ind = inds.data_ptr<int64_t>();
    while (count > 0) {
      int64_t best = 0;
      for (int64_t k = 1; k < count; ++k)
        if (s[alive[k]] > s[alive[best]]) best = k;
      const int64_t i = alive[best];
      for (int c = 0; c < 4; ++c) d[5 * out + c] = b[4 * i + c];
      d[5 * out + 4] = s[i];
      ind[out++] = i;
      int64_t write = 0;
      for (int64_t k = 0; k < count; ++k) {
        if (k == best) continue;
        const int64_t j = alive[k];
        const scalar_t iou = box_iou_or_zero(b + 4 * i, area[i], b + 4 * j, area[j]);
        scalar_t w = 1;
        if (method == kSoftLinear) {
          w = iou > thr ? (scalar_t)1 - iou : (scalar_t)1;
        } else if (method == kSoftGaussian) {
          w = std::exp(-(iou * iou) / sig);
        } else {
          w = iou > thr ? (scalar_t)0 : (scalar_t)1;
        }
        s[j] *= w;
        if (s[j] >= lo) alive[write++] = j;
      }
      count = write;
    }
  });
  return std::make_tuple(dets.narrow(0, 0, out).clone(), inds.narrow(0, 0, out).clone());
}

}  // namespace det_ops
