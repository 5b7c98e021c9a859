"""``detcore export onnx``: a detector's network as an ONNX graph with dynamic batch and image size,
and :class:`OnnxDetector`, which runs that graph in onnxruntime and gives the same detections.

What is in the graph: backbone, neck and head up to their raw per-level maps (``forward_tensor``),
exported with torch's TorchScript-based exporter. Post-processing is NOT in the graph: score
filtering, top-k, box decoding and NMS run afterwards in PyTorch through the detector head's own
``predict_by_feat``, so exported models detect exactly as detcore does (the graph's per-level maps
are named ``g<group>_l<level>``; group 0 is class logits, 1 box regressions, 2 score factors such
as FCOS centerness). Keeping NMS out avoids ONNX's NonMaxSuppression, whose tie-breaking and
top-k differ between runtimes. ``OnnxDetector`` runs single-stage (dense-head) detectors; a two-stage
graph holds the features and RPN maps only, because its RoI stage needs the post-processed proposals.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor, nn

from detcore.errors import ConfigError, DataError
from detcore.optional import require
from detcore.structures import Instances

INPUT_NAME = "images"
GROUPS_KEY = "detcore.output_groups"


class _TensorForward(nn.Module):
    """The detector's ``forward_tensor`` with its nested outputs flattened into one tuple."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        return tuple(flatten_outputs(self.detector.forward_tensor(images))[0])


def flatten_outputs(outputs: Any) -> tuple[list[Tensor], list[int]]:
    """Tensors of ``(group, group, ...)`` (each a tensor or a list of per-level tensors) and the group lengths."""
    if isinstance(outputs, Tensor):
        outputs = ((outputs,),)
    flat: list[Tensor] = []
    lengths: list[int] = []
    for group in outputs:
        group = [group] if isinstance(group, Tensor) else list(group)
        if not all(isinstance(t, Tensor) for t in group):
            raise ConfigError("export onnx: the detector's forward_tensor must give tensors or lists of per-level "
                              "tensors (single-stage dense detectors do); this one nests deeper (a two-stage "
                              "detector's RoI stage needs post-processed proposals and is not exported)")
        flat.extend(group)
        lengths.append(len(group))
    return flat, lengths


def regroup(flat: Sequence[Any], lengths: Sequence[int]) -> list[list[Any]]:
    groups, start = [], 0
    for n in lengths:
        groups.append(list(flat[start : start + n]))
        start += n
    return groups


def export_onnx(
    model: nn.Module,
    out_file: str | os.PathLike[str],
    height: int = 800,
    width: int = 1344,
    opset: int = 17,
    classes: Sequence[str] | None = None,
) -> Path:
    """Export ``model.forward_tensor`` with a dynamic (N, 3, H, W) input; returns the written file."""
    onnx = require("onnx", "onnx", "detcore export onnx")
    if not callable(getattr(model, "forward_tensor", None)):
        raise ConfigError(f"{type(model).__name__} has no forward_tensor(images); only detectors can be exported")
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    wrapper = _TensorForward(model).eval()  # the exporter restores the wrapper's mode on everything inside
    dummy = torch.zeros(1, 3, height, width, device=next(model.parameters()).device)
    with torch.no_grad():
        _, lengths = flatten_outputs(model.forward_tensor(dummy))
    names = [f"g{g}_l{i}" for g, n in enumerate(lengths) for i in range(n)]
    dynamic = {INPUT_NAME: {0: "batch", 2: "height", 3: "width"}}
    dynamic.update({name: {0: "batch", 2: f"{name}_h", 3: f"{name}_w"} for name in names})
    try:
        torch.onnx.export(wrapper, (dummy,), str(out_file), input_names=[INPUT_NAME], output_names=names,
                          dynamic_axes=dynamic, opset_version=opset, dynamo=False)
    finally:
        model.train(was_training)
    graph = onnx.load(str(out_file))
    meta = {GROUPS_KEY: json.dumps(lengths), "detcore.classes": json.dumps(list(classes or [])),
            "detcore.postprocess": "outside the graph: the detector head's predict_by_feat"}
    for key, value in meta.items():
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(graph)
    onnx.save(graph, str(out_file))
    return out_file


class OnnxDetector:
    """Detections from an exported graph: the config's test pipeline, onnxruntime for the network,
    the detcore head's post-processing. Returns ``Instances`` like ``inference_detector``."""

    def __init__(self, onnx_file: str | os.PathLike[str], config: str | os.PathLike[str] | Mapping[str, Any],
                 checkpoint: str | os.PathLike[str] | None = None) -> None:
        from detcore.apis import init_detector

        ort = require("onnxruntime", "onnx", "running an exported detector")
        self.onnx_file = Path(onnx_file)
        if not self.onnx_file.is_file():
            raise DataError(f"ONNX file {self.onnx_file} does not exist; write it with detcore export onnx")
        self.session = ort.InferenceSession(str(self.onnx_file), providers=["CPUExecutionProvider"])
        props = self.session.get_modelmeta().custom_metadata_map
        if GROUPS_KEY not in props:
            raise DataError(f"ONNX file {self.onnx_file} was not written by detcore export onnx (no {GROUPS_KEY})")
        self.lengths = json.loads(props[GROUPS_KEY])
        self.model = init_detector(config, checkpoint, device="cpu")
        head = getattr(self.model, "bbox_head", None)
        if head is None or not callable(getattr(head, "predict_by_feat", None)) or hasattr(self.model, "roi_head"):
            raise ConfigError(f"OnnxDetector runs single-stage (dense-head) detectors; {type(self.model).__name__} is not one")
        self.head = head
        with torch.no_grad():  # the head's output container type, to hand the runtime's maps back to it
            self.outputs_type = type(head(self.model.extract_feat(torch.zeros(1, 3, 64, 64))))

    def run_graph(self, images: Tensor) -> list[list[Tensor]]:
        """The graph's per-level maps for a (N, 3, H, W) batch, grouped as ``forward_tensor`` returns them."""
        flat = self.session.run(None, {INPUT_NAME: images.detach().cpu().numpy()})
        return regroup([torch.from_numpy(a) for a in flat], self.lengths)

    def __call__(self, images: Any) -> Instances | list[Instances]:
        from detcore.apis.inference import prepare_batch

        single = not isinstance(images, (list, tuple))
        batch = prepare_batch(self.model, images)
        outs = self.outputs_type(*self.run_graph(batch.images))
        with torch.no_grad():
            results = self.head.predict_by_feat(outs, batch.metas, rescale=True)
        return results[0] if single else results
