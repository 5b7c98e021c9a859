// Declarations of every kernel entry point. `*_cpu` live in csrc/cpu/, `*_cuda` in csrc/cuda/
// (compiled only with WITH_CUDA); bindings.cpp dispatches on the device of the first tensor.
#pragma once

#include <ATen/ATen.h>

#include <tuple>

namespace det_ops {

// Soft-NMS rescoring methods (values shared with the Python wrapper).
enum SoftNmsMethod : int64_t { kSoftLinear = 0, kSoftGaussian = 1, kSoftNaive = 2 };
// Corner-pool directions (values shared with the Python wrapper).
enum CornerMode : int64_t { kTop = 0, kBottom = 1, kLeft = 2, kRight = 3 };

#define DET_OPS_DECLARE(suffix)                                                                              \
  at::Tensor nms_##suffix(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold);          \
  at::Tensor batched_nms_##suffix(const at::Tensor& boxes, const at::Tensor& scores, const at::Tensor& idxs, \
                                  double iou_threshold);                                                     \
  std::tuple<at::Tensor, at::Tensor> soft_nms_##suffix(const at::Tensor& boxes, const at::Tensor& scores,    \
                                                       double iou_threshold, double sigma, double min_score, \
                                                       int64_t method);                                      \
  at::Tensor roi_align_forward_##suffix(const at::Tensor& input, const at::Tensor& rois, double spatial_scale, \
                                        int64_t pooled_h, int64_t pooled_w, int64_t sampling_ratio,          \
                                        bool aligned, bool use_max);                                         \
  at::Tensor roi_align_backward_##suffix(const at::Tensor& grad, const at::Tensor& input, const at::Tensor& rois, \
                                         double spatial_scale, int64_t pooled_h, int64_t pooled_w,           \
                                         int64_t sampling_ratio, bool aligned, bool use_max);                \
  std::tuple<at::Tensor, at::Tensor> roi_pool_forward_##suffix(const at::Tensor& input, const at::Tensor& rois, \
                                                               double spatial_scale, int64_t pooled_h,       \
                                                               int64_t pooled_w);                            \
  at::Tensor roi_pool_backward_##suffix(const at::Tensor& grad, const at::Tensor& argmax, const at::Tensor& rois, \
                                        int64_t batch, int64_t channels, int64_t height, int64_t width);     \
  at::Tensor deform_roi_pool_forward_##suffix(const at::Tensor& input, const at::Tensor& rois,               \
                                              const at::Tensor& offset, bool use_offset, double spatial_scale, \
                                              int64_t pooled_h, int64_t pooled_w, int64_t sampling_ratio,    \
                                              double gamma, bool aligned);                                   \
  std::tuple<at::Tensor, at::Tensor> deform_roi_pool_backward_##suffix(                                      \
      const at::Tensor& grad, const at::Tensor& input, const at::Tensor& rois, const at::Tensor& offset,     \
      bool use_offset, double spatial_scale, int64_t pooled_h, int64_t pooled_w, int64_t sampling_ratio,     \
      double gamma, bool aligned);                                                                           \
  at::Tensor deform_conv_forward_##suffix(const at::Tensor& input, const at::Tensor& weight,                 \
                                          const at::Tensor& offset, const at::Tensor& mask, bool use_mask,   \
                                          int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w,  \
                                          int64_t dil_h, int64_t dil_w);                                     \
  std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> deform_conv_backward_##suffix(                  \
      const at::Tensor& grad, const at::Tensor& input, const at::Tensor& weight, const at::Tensor& offset,   \
      const at::Tensor& mask, bool use_mask, int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w, \
      int64_t dil_h, int64_t dil_w);                                                                         \
  at::Tensor msda_forward_##suffix(const at::Tensor& value, const at::Tensor& spatial_shapes,                \
                                   const at::Tensor& level_start_index, const at::Tensor& sampling_locations, \
                                   const at::Tensor& attention_weights);                                     \
  std::tuple<at::Tensor, at::Tensor, at::Tensor> msda_backward_##suffix(                                     \
      const at::Tensor& grad, const at::Tensor& value, const at::Tensor& spatial_shapes,                     \
      const at::Tensor& level_start_index, const at::Tensor& sampling_locations,                             \
      const at::Tensor& attention_weights);                                                                  \
  at::Tensor corner_pool_forward_##suffix(const at::Tensor& input, int64_t mode);                            \
  at::Tensor corner_pool_backward_##suffix(const at::Tensor& grad, const at::Tensor& input, int64_t mode);   \
  at::Tensor focal_loss_forward_##suffix(const at::Tensor& pred, const at::Tensor& target, double gamma,     \
                                         double alpha);                                                      \
  at::Tensor focal_loss_backward_##suffix(const at::Tensor& grad, const at::Tensor& pred,                    \
                                          const at::Tensor& target, double gamma, double alpha);             \
  at::Tensor carafe_forward_##suffix(const at::Tensor& features, const at::Tensor& masks, int64_t kernel_size, \
                                     int64_t group_size, int64_t scale_factor);                              \
  std::tuple<at::Tensor, at::Tensor> carafe_backward_##suffix(const at::Tensor& grad, const at::Tensor& features, \
                                                              const at::Tensor& masks, int64_t kernel_size,  \
                                                              int64_t group_size, int64_t scale_factor);

DET_OPS_DECLARE(cpu)
#ifdef WITH_CUDA
DET_OPS_DECLARE(cuda)
#endif

#undef DET_OPS_DECLARE

}  // namespace det_ops
