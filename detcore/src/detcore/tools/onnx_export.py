"""``detcore export onnx``: a detector's network as ONNX with dynamic batch and image size, and
:class:`OnnxDetector`, which runs it in onnxruntime and gives the same detections.

Single-stage detectors: one graph, backbone, neck and head up to their raw per-level maps
(``forward_tensor``), named ``g<group>_l<level>`` (group 0 class logits, 1 box regressions, 2 score factors
such as FCOS centerness). Detectors with an ``onnx_graphs(images)`` seam (two-stage ones) are written as
several graphs (:class:`OnnxGraph`): the first to ``OUT.onnx``, the others beside it as
``OUT.<name>.onnx``; their ``predict_with_graphs(run, batch)`` chains them. Post-processing is NOT in any
graph: score filtering, top-k, box decoding and NMS (and a two-stage detector's proposal selection between
its graphs) run in PyTorch through the detector's own code, so exported models detect exactly as detcore
does. Keeping NMS out avoids ONNX's NonMaxSuppression, whose tie-breaking and top-k differ between runtimes.
Graphs are exported with torch's TorchScript-based exporter.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

from detcore.errors import ConfigError, DataError
from detcore.optional import require
from detcore.structures import Instances

INPUT_NAME = "images"
GROUPS_KEY = "detcore.output_groups"
GRAPHS_KEY = "detcore.graphs"


@dataclass
class OnnxGraph:
    """One graph of a detector exported in pieces: ``module(*inputs)`` traced with these names; every axis
    named in ``dynamic_axes`` (input or output name -> {axis: symbol}) stays free in the graph."""

    name: str
    module: nn.Module
    inputs: tuple[Tensor, ...]
    input_names: Sequence[str]
    output_names: Sequence[str]
    dynamic_axes: Mapping[str, Mapping[int, str]] = field(default_factory=dict)


#: how ``predict_with_graphs`` runs one graph: graph name, {input name: tensor} -> {output name: tensor}
GraphRunner = Callable[[str, Mapping[str, Tensor]], dict[str, Tensor]]


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
                              "tensors (single-stage dense detectors do); this one nests deeper and the detector has "
                              "no onnx_graphs(images) seam to export it in pieces")
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
    """Export ``model`` with a dynamic (N, 3, H, W) input; returns the written ``out_file``.

    A model with ``onnx_graphs(images)`` is written as its graphs (the first to ``out_file``, the others to
    ``<stem>.<name>.onnx`` beside it); otherwise ``model.forward_tensor`` is one graph.
    """
    require("onnx", "onnx", "detcore export onnx")
    if not callable(getattr(model, "forward_tensor", None)) and not callable(getattr(model, "onnx_graphs", None)):
        raise ConfigError(f"{type(model).__name__} has no forward_tensor(images); only detectors can be exported")
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    dummy = torch.zeros(1, 3, height, width, device=next(model.parameters()).device)
    meta = {"detcore.classes": json.dumps(list(classes or []))}
    try:
        if callable(getattr(model, "onnx_graphs", None)):
            with torch.no_grad():
                graphs = list(model.onnx_graphs(dummy))
            files = {g.name: out_file.name if i == 0 else f"{out_file.stem}.{g.name}.onnx" for i, g in enumerate(graphs)}
            for i, graph in enumerate(graphs):
                extra = {GRAPHS_KEY: json.dumps(files), "detcore.postprocess": "outside the graphs: the detector's "
                         "predict_with_graphs"} if i == 0 else {"detcore.graph": graph.name}
                export_graph(graph, out_file.parent / files[graph.name], opset, {**meta, **extra})
            return out_file
        with torch.no_grad():
            _, lengths = flatten_outputs(model.forward_tensor(dummy))
        names = [f"g{g}_l{i}" for g, n in enumerate(lengths) for i in range(n)]
        dynamic = {INPUT_NAME: {0: "batch", 2: "height", 3: "width"}}
        dynamic.update({name: {0: "batch", 2: f"{name}_h", 3: f"{name}_w"} for name in names})
        graph = OnnxGraph("network", _TensorForward(model), (dummy,), [INPUT_NAME], names, dynamic)
        meta.update({GROUPS_KEY: json.dumps(lengths), "detcore.postprocess": "outside the graph: the detector "
                     "head's predict_by_feat"})
        export_graph(graph, out_file, opset, meta)
    finally:
        model.train(was_training)
    return out_file


def exported_files(onnx_file: str | os.PathLike[str]) -> list[Path]:
    """``onnx_file`` and the other graphs of the same export (``<stem>.<name>.onnx``), as its metadata lists them."""
    onnx = require("onnx", "onnx", "reading an exported detector")
    onnx_file = Path(onnx_file)
    props = {p.key: p.value for p in onnx.load(str(onnx_file), load_external_data=False).metadata_props}
    files = json.loads(props.get(GRAPHS_KEY, "{}")).values()
    return [onnx_file] + [onnx_file.parent / f for f in files if f != onnx_file.name]


def export_graph(graph: OnnxGraph, out_file: Path, opset: int, metadata: Mapping[str, str]) -> Path:
    """Trace ``graph.module`` to ``out_file`` (in eval mode), add ``metadata`` and check the model."""
    onnx = require("onnx", "onnx", "detcore export onnx")
    from detcore.ops.backends import use_backend

    module = graph.module.eval()  # the exporter restores the module's mode on everything inside
    # the reference ops (torchvision's, which have ONNX symbolics): a compiled backend's custom ops do not export
    with warnings.catch_warnings(), use_backend("reference"):
        # shape checks and branches on sizes are constants in a trace; the graphs are traced on inputs that take
        # every branch they need (two-stage: RoIs on every level), and tests run them on other sizes
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(module, tuple(graph.inputs), str(out_file), input_names=list(graph.input_names),
                          output_names=list(graph.output_names),
                          dynamic_axes={k: dict(v) for k, v in graph.dynamic_axes.items()}, opset_version=opset,
                          dynamo=False)
    model = onnx.load(str(out_file))
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, str(out_file))
    return out_file


class OnnxDetector:
    """Detections from exported graphs: the config's test pipeline, onnxruntime for the network, detcore's
    post-processing (a dense head's ``predict_by_feat``, or the detector's ``predict_with_graphs`` when it was
    exported in several graphs). Returns ``Instances`` like ``inference_detector``."""

    def __init__(self, onnx_file: str | os.PathLike[str], config: str | os.PathLike[str] | Mapping[str, Any],
                 checkpoint: str | os.PathLike[str] | None = None) -> None:
        from detcore.apis import init_detector

        self.ort = require("onnxruntime", "onnx", "running an exported detector")
        self.onnx_file = Path(onnx_file)
        self.session = self._session(self.onnx_file)
        props = self.session.get_modelmeta().custom_metadata_map
        if GROUPS_KEY not in props and GRAPHS_KEY not in props:
            raise DataError(f"ONNX file {self.onnx_file} was not written by detcore export onnx (no {GROUPS_KEY} "
                            f"or {GRAPHS_KEY} metadata)")
        self.model = init_detector(config, checkpoint, device="cpu")
        if GRAPHS_KEY in props:
            self.sessions = {name: self.session if file == self.onnx_file.name else
                             self._session(self.onnx_file.parent / file)
                             for name, file in json.loads(props[GRAPHS_KEY]).items()}
            if not callable(getattr(self.model, "predict_with_graphs", None)):
                raise ConfigError(f"{self.onnx_file} holds several graphs, but {type(self.model).__name__} has no "
                                  "predict_with_graphs to chain them; is this the config the file was exported from?")
            return
        self.sessions = {}
        self.lengths = json.loads(props[GROUPS_KEY])
        head = getattr(self.model, "bbox_head", None)
        if head is None or not callable(getattr(head, "predict_by_feat", None)) or hasattr(self.model, "roi_head"):
            raise ConfigError(f"{self.onnx_file} holds one graph, which OnnxDetector runs for single-stage (dense-head) "
                              f"detectors; {type(self.model).__name__} is not one")
        self.head = head
        with torch.no_grad():  # the head's output container type, to hand the runtime's maps back to it
            self.outputs_type = type(head(self.model.extract_feat(torch.zeros(1, 3, 64, 64))))

    def _session(self, path: Path) -> Any:
        if not path.is_file():
            raise DataError(f"ONNX file {path} does not exist; write it with detcore export onnx")
        return self.ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def run(self, name: str, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Run graph ``name`` of a multi-graph export: the inputs it declares, by name -> its outputs, by name."""
        if name not in self.sessions:
            raise ConfigError(f"{self.onnx_file}: no graph named {name!r} (it has {sorted(self.sessions)})")
        session = self.sessions[name]
        feeds = {i.name: inputs[i.name].detach().cpu().numpy() for i in session.get_inputs()}
        names = [o.name for o in session.get_outputs()]
        return {n: torch.from_numpy(a) for n, a in zip(names, session.run(names, feeds))}

    def run_graph(self, images: Tensor) -> list[list[Tensor]]:
        """The single graph's per-level maps for a (N, 3, H, W) batch, grouped as ``forward_tensor`` returns them."""
        flat = self.session.run(None, {INPUT_NAME: images.detach().cpu().numpy()})
        return regroup([torch.from_numpy(a) for a in flat], self.lengths)

    def __call__(self, images: Any) -> Instances | list[Instances]:
        from detcore.apis.inference import prepare_batch

        single = not isinstance(images, (list, tuple))
        batch = prepare_batch(self.model, images)
        with torch.no_grad():
            if self.sessions:
                results = self.model.predict_with_graphs(self.run, batch)
            else:
                outs = self.outputs_type(*self.run_graph(batch.images))
                results = self.head.predict_by_feat(outs, batch.metas, rescale=True)
        return results[0] if single else results
