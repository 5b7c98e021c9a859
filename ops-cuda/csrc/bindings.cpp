// Python bindings of det_ops_cuda._C: every op dispatches on the device of its first tensor to
// the CPU kernel or, when compiled with WITH_CUDA, to the CUDA kernel.
#include <torch/extension.h>

#include <string>
#include <vector>

#include "ops.h"

namespace det_ops {
namespace {

#ifdef WITH_CUDA
#define DET_DISPATCH(name, first, ...)                       \
  if ((first).is_cuda()) return name##_cuda(__VA_ARGS__);    \
  TORCH_CHECK((first).is_cpu(), #name ": unsupported device ", (first).device()); \
  return name##_cpu(__VA_ARGS__);
#else
#define DET_DISPATCH(name, first, ...)                                                        \
  TORCH_CHECK(!(first).is_cuda(), #name ": det_ops_cuda was built without CUDA kernels");     \
  TORCH_CHECK((first).is_cpu(), #name ": unsupported device ", (first).device());            \
  return name##_cpu(__VA_ARGS__);
#endif

at::Tensor nms(const at::Tensor& boxes, const at::Tensor& scores, double thr) {
  DET_DISPATCH(nms, boxes, boxes, scores, thr);
}

at::Tensor batched_nms(const at::Tensor& boxes, const at::Tensor& scores, const at::Tensor& idxs, double thr) {
  DET_DISPATCH(batched_nms, boxes, boxes, scores, idxs, thr);
}

std::tuple<at::Tensor, at::Tensor> soft_nms(const at::Tensor& boxes, const at::Tensor& scores, double thr,
                                            double sigma, double min_score, int64_t method) {
  DET_DISPATCH(soft_nms, boxes, boxes, scores, thr, sigma, min_score, method);
}

at::Tensor roi_align_forward(const at::Tensor& input, const at::Tensor& rois, double scale, int64_t ph, int64_t pw,
                             int64_t sampling, bool aligned, bool use_max) {
  DET_DISPATCH(roi_align_forward, input, input, rois, scale, ph, pw, sampling, aligned, use_max);
}

at::Tensor roi_align_backward(const at::Tensor& grad, const at::Tensor& input, const at::Tensor& rois, double scale,
                              int64_t ph, int64_t pw, int64_t sampling, bool aligned, bool use_max) {
  DET_DISPATCH(roi_align_backward, grad, grad, input, rois, scale, ph, pw, sampling, aligned, use_max);
}

std::tuple<at::Tensor, at::Tensor> roi_pool_forward(const at::Tensor& input, const at::Tensor& rois, double scale,
                                                    int64_t ph, int64_t pw) {
  DET_DISPATCH(roi_pool_forward, input, input, rois, scale, ph, pw);
}

at::Tensor roi_pool_backward(const at::Tensor& grad, const at::Tensor& argmax, const at::Tensor& rois, int64_t batch,
                             int64_t channels, int64_t height, int64_t width) {
  DET_DISPATCH(roi_pool_backward, grad, grad, argmax, rois, batch, channels, height, width);
}

at::Tensor deform_roi_pool_forward(const at::Tensor& input, const at::Tensor& rois, const at::Tensor& offset,
                                   bool use_offset, double scale, int64_t ph, int64_t pw, int64_t sampling,
                                   double gamma, bool aligned) {
  DET_DISPATCH(deform_roi_pool_forward, input, input, rois, offset, use_offset, scale, ph, pw, sampling, gamma,
               aligned);
}

std::tuple<at::Tensor, at::Tensor> deform_roi_pool_backward(const at::Tensor& grad, const at::Tensor& input,
                                                            const at::Tensor& rois, const at::Tensor& offset,
                                                            bool use_offset, double scale, int64_t ph, int64_t pw,
                                                            int64_t sampling, double gamma, bool aligned) {
  DET_DISPATCH(deform_roi_pool_backward, grad, grad, input, rois, offset, use_offset, scale, ph, pw, sampling, gamma,
               aligned);
}

at::Tensor deform_conv_forward(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& offset,
                               const at::Tensor& mask, bool use_mask, int64_t sh, int64_t sw, int64_t ph, int64_t pw,
                               int64_t dh, int64_t dw) {
  DET_DISPATCH(deform_conv_forward, input, input, weight, offset, mask, use_mask, sh, sw, ph, pw, dh, dw);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> deform_conv_backward(
    const at::Tensor& grad, const at::Tensor& input, const at::Tensor& weight, const at::Tensor& offset,
    const at::Tensor& mask, bool use_mask, int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw) {
  DET_DISPATCH(deform_conv_backward, grad, grad, input, weight, offset, mask, use_mask, sh, sw, ph, pw, dh, dw);
}

at::Tensor msda_forward(const at::Tensor& value, const at::Tensor& shapes, const at::Tensor& start,
                        const at::Tensor& loc, const at::Tensor& attn) {
  DET_DISPATCH(msda_forward, value, value, shapes, start, loc, attn);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> msda_backward(const at::Tensor& grad, const at::Tensor& value,
                                                             const at::Tensor& shapes, const at::Tensor& start,
                                                             const at::Tensor& loc, const at::Tensor& attn) {
  DET_DISPATCH(msda_backward, grad, grad, value, shapes, start, loc, attn);
}

at::Tensor corner_pool_forward(const at::Tensor& input, int64_t mode) {
  DET_DISPATCH(corner_pool_forward, input, input, mode);
}

at::Tensor corner_pool_backward(const at::Tensor& grad, const at::Tensor& input, int64_t mode) {
  DET_DISPATCH(corner_pool_backward, grad, grad, input, mode);
}

at::Tensor focal_loss_forward(const at::Tensor& pred, const at::Tensor& target, double gamma, double alpha) {
  DET_DISPATCH(focal_loss_forward, pred, pred, target, gamma, alpha);
}

at::Tensor focal_loss_backward(const at::Tensor& grad, const at::Tensor& pred, const at::Tensor& target, double gamma,
                               double alpha) {
  DET_DISPATCH(focal_loss_backward, grad, grad, pred, target, gamma, alpha);
}

at::Tensor carafe_forward(const at::Tensor& features, const at::Tensor& masks, int64_t k, int64_t groups,
                          int64_t scale) {
  DET_DISPATCH(carafe_forward, features, features, masks, k, groups, scale);
}

std::tuple<at::Tensor, at::Tensor> carafe_backward(const at::Tensor& grad, const at::Tensor& features,
                                                   const at::Tensor& masks, int64_t k, int64_t groups, int64_t scale) {
  DET_DISPATCH(carafe_backward, grad, grad, features, masks, k, groups, scale);
}

// Names of the detcore ops whose CUDA kernels are compiled into this build.
std::vector<std::string> cuda_ops() {
#ifdef WITH_CUDA
  return {"nms", "batched_nms", "soft_nms", "roi_align", "roi_pool", "deform_conv2d", "deform_roi_pool",
          "multi_scale_deformable_attention", "corner_pool", "sigmoid_focal_loss", "carafe"};
#else
  return {};
#endif
}

}  // namespace
}  // namespace det_ops

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  using namespace det_ops;
  m.doc() = "det-ops-cuda compiled kernels (CPU always, CUDA when built with a toolkit)";
  m.def("nms", &nms);
  m.def("batched_nms", &batched_nms);
  m.def("soft_nms", &soft_nms);
  m.def("roi_align_forward", &roi_align_forward);
  m.def("roi_align_backward", &roi_align_backward);
  m.def("roi_pool_forward", &roi_pool_forward);
  m.def("roi_pool_backward", &roi_pool_backward);
  m.def("deform_roi_pool_forward", &deform_roi_pool_forward);
  m.def("deform_roi_pool_backward", &deform_roi_pool_backward);
  m.def("deform_conv_forward", &deform_conv_forward);
  m.def("deform_conv_backward", &deform_conv_backward);
  m.def("msda_forward", &msda_forward);
  m.def("msda_backward", &msda_backward);
  m.def("corner_pool_forward", &corner_pool_forward);
  m.def("corner_pool_backward", &corner_pool_backward);
  m.def("focal_loss_forward", &focal_loss_forward);
  m.def("focal_loss_backward", &focal_loss_backward);
  m.def("carafe_forward", &carafe_forward);
  m.def("carafe_backward", &carafe_backward);
  m.def("cuda_ops", &cuda_ops);
#ifdef WITH_CUDA
  m.attr("with_cuda") = true;
#else
  m.attr("with_cuda") = false;
#endif
}
