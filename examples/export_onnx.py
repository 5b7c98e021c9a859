"""Export a trained detector to ONNX and run it with onnxruntime (needs ``pip install 'detcore[onnx]'``).

The graph holds the network (backbone, neck, head maps) with dynamic batch and image size; score
filtering, box decoding and NMS run after it in PyTorch through the head's own post-processing
(``OnnxDetector``), so the detections are detcore's. A Faster / Mask R-CNN is written as three graphs
(``OUT``, ``OUT.rcnn.onnx``, ``OUT.mask.onnx``), which ``OnnxDetector`` chains the same way.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from detcore.apis import inference_detector, init_detector
from detcore.tools.onnx_export import OnnxDetector, export_onnx


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("out", type=Path, help="the .onnx file to write")
    parser.add_argument("--image", type=Path, required=True, help="an image to compare detcore and onnxruntime on")
    args = parser.parse_args()

    model = init_detector(args.config, args.checkpoint)
    export_onnx(model, args.out, height=320, width=320, classes=model.classes)

    runtime = OnnxDetector(args.out, args.config, args.checkpoint)  # onnxruntime + the head's post-processing
    theirs = runtime(args.image)
    with torch.inference_mode():
        ours = inference_detector(model, args.image)
    same = len(ours) == len(theirs)
    print(json.dumps({
        "onnx": str(args.out),
        "detections": len(theirs),
        "same_count": same,
        "max_box_diff": float((ours.boxes - theirs.boxes).abs().max()) if same and len(ours) else 0.0,
        "max_score_diff": float((ours.scores - theirs.scores).abs().max()) if same and len(ours) else 0.0,
        "top": [{"box": [round(v, 1) for v in b.tolist()], "score": round(float(s), 3), "class": model.classes[int(c)]}
                for b, s, c in zip(theirs.boxes[:5], theirs.scores[:5], theirs.labels[:5])],
    }))


if __name__ == "__main__":
    main()
