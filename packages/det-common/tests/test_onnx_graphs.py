"""The two-stage ONNX export seam, run in PyTorch: the graphs ``onnx_graphs`` gives, chained by
``predict_with_graphs``, detect exactly as ``predict`` does, also for RoIs on fewer levels than traced and
for other image sizes; multi-stage RoI heads are refused with a message. (onnxruntime parity: tests/.)"""

from __future__ import annotations

import pytest
import torch

from det_common.detectors.two_stage import TwoStageDetector
from detcore.errors import ConfigError
from detcore.structures import Batch, ImageMeta

EXTRACTOR = {"type": "SingleRoIExtractor", "out_channels": 16, "featmap_strides": [4, 8, 16, 32],
             "roi_layer": {"type": "RoIAlign", "output_size": 7, "sampling_ratio": 0, "aligned": True}}
MODEL = {
    "backbone": {"type": "ResNet", "depth": 18, "base_channels": 8, "out_indices": [0, 1, 2, 3]},
    "neck": {"type": "FPN", "in_channels": [8, 16, 32, 64], "out_channels": 16, "num_outs": 5},
    "rpn_head": {"type": "RPNHead", "in_channels": 16, "feat_channels": 16,
                 "anchor_generator": {"type": "AnchorGenerator", "scales": [8], "ratios": [0.5, 1.0, 2.0],
                                      "strides": [4, 8, 16, 32, 64]}},
    "roi_head": {"type": "StandardRoIHead", "bbox_roi_extractor": EXTRACTOR,
                 "bbox_head": {"type": "Shared2FCBBoxHead", "in_channels": 16, "fc_out_channels": 32,
                               "num_classes": 3},
                 "mask_roi_extractor": {**EXTRACTOR, "roi_layer": {**EXTRACTOR["roi_layer"], "output_size": 14}},
                 "mask_head": {"type": "FCNMaskHead", "num_convs": 1, "in_channels": 16, "conv_out_channels": 16,
                               "num_classes": 3}},
    "test_cfg": {"rpn": {"nms_pre": 200, "max_per_img": 50, "nms": {"type": "nms", "iou_threshold": 0.7}},
                 "rcnn": {"score_thr": 0.0, "nms": {"type": "nms", "iou_threshold": 0.5}, "max_per_img": 30,
                          "mask_thr_binary": 0.5}},
}


def torch_runner(graphs):
    """``run(name, inputs)`` over the graphs' modules in PyTorch, as OnnxDetector runs them in onnxruntime."""
    by_name = {g.name: g for g in graphs}

    def run(name, inputs):
        graph = by_name[name]
        outputs = graph.module(*[inputs[n] for n in graph.input_names])
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        return dict(zip(graph.output_names, outputs))

    return run


@torch.inference_mode()
def test_graphs_chained_give_predict_detections():
    torch.manual_seed(0)
    model = TwoStageDetector(**MODEL).eval()
    graphs = model.onnx_graphs(torch.zeros(1, 3, 64, 64))
    assert [g.name for g in graphs] == ["features", "rcnn", "mask"]
    assert graphs[0].output_names[:4] == ["feat0", "feat1", "feat2", "feat3"] and len(graphs[0].output_names) == 14
    assert graphs[1].input_names[-1] == "rois" and graphs[1].dynamic_axes["rois"] == {0: "num_rois"}
    # two images of a size other than the traced one; these small RoIs all map to the finest level
    images = torch.randn(2, 3, 96, 128)
    metas = [ImageMeta((96, 128), (96, 128), (96, 128)), ImageMeta((80, 100), (80, 100), (96, 128))]
    batch = Batch(images=images, metas=metas)
    want = model.predict(batch)
    got = model.predict_with_graphs(torch_runner(graphs), batch)
    for a, b in zip(want, got):
        assert len(a) == len(b) > 0
        torch.testing.assert_close(b.boxes, a.boxes)
        torch.testing.assert_close(b.scores, a.scores)
        assert torch.equal(b.labels, a.labels) and torch.equal(b.masks, a.masks)


def test_roi_extractor_keeps_the_rois_order_across_levels():
    torch.manual_seed(0)
    model = TwoStageDetector(**MODEL).eval()
    extractor = model.roi_head.bbox_roi_extractor
    feats = [torch.randn(1, 16, 64 // 2**i, 64 // 2**i) for i in range(4)]
    rois = torch.tensor([[0, 0, 0, 300, 300], [0, 4, 4, 20, 20], [0, 0, 0, 150, 120], [0, 8, 8, 30, 40.0]])
    levels = extractor.map_roi_levels(rois)
    assert levels.tolist() == [2, 0, 1, 0]
    pooled = extractor(feats, rois)
    for i, level in enumerate(levels.tolist()):
        torch.testing.assert_close(pooled[i : i + 1], extractor.roi_layers[level](feats[level], rois[i : i + 1]))


def test_traced_roi_extractor_pools_levels_empty_at_trace_time():
    """Traced with RoIs on one level only, the graph still pools RoIs that fall on the other levels at run time."""
    torch.manual_seed(0)
    extractor = TwoStageDetector(**MODEL).eval().roi_head.bbox_roi_extractor
    feats = [torch.randn(1, 16, 64 // 2**i, 64 // 2**i) for i in range(4)]
    fine_only = torch.tensor([[0, 4, 4, 20, 20], [0, 8, 8, 30, 40.0]])
    with torch.no_grad():
        traced = torch.jit.trace(lambda f0, f1, f2, f3, r: extractor([f0, f1, f2, f3], r), (*feats, fine_only),
                                 check_trace=False)
        every_level = torch.tensor([[0, 0, 0, 300, 300], [0, 4, 4, 20, 20], [0, 0, 0, 150, 120], [0, 0, 0, 900, 900.0]])
        assert sorted(set(extractor.map_roi_levels(every_level).tolist())) == [0, 1, 2, 3]
        torch.testing.assert_close(traced(*feats, every_level), extractor(feats, every_level))


def test_multi_stage_roi_heads_are_refused():
    model = TwoStageDetector(**MODEL).eval()
    model.roi_head.num_stages = 3
    with pytest.raises(ConfigError, match="has 3 stages; only one-stage RoI heads"):
        model.onnx_graphs(torch.zeros(1, 3, 64, 64))
