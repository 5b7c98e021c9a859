"""Throughput of ``detcore test`` (its data loader preparing batches in worker processes while the model runs)
against a plain loop of ``inference_detector`` over the same image files, in images/s, same model and weights.

Both sides run the fast path (``init_detector``'s default; ``detcore test`` applies the same). The dataset is
the synthetic shapes validation split written at ``--size`` pixels; the model is ``--config`` with seeded random
weights (the speed does not depend on them). Runs alternate so a change in load hits both.
Run: ``python benchmarks/bench_test_throughput.py``.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path

import torch

from detcore.apis import inference_detector, init_detector
from detcore.checkpoint import save_checkpoint
from detcore.config import load_config
from detcore.data.shapes import make_shapes
from detcore.engine import Runner, load_weights
from detcore.registry import build


def test_config(config: str, data_root: Path, workers: int, batch_size: int) -> dict:
    """``config`` reading the generated shapes data, with only what ``detcore test`` keeps."""
    cfg = dict(load_config(config))
    for key in ("train_dataloader", "val_dataloader", "optimizer", "resume", "load_from", "custom_hooks"):
        cfg.pop(key, None)
    loader = copy.deepcopy(cfg["test_dataloader"])
    loader["dataset"]["data_root"] = str(data_root) + "/"
    loader.update(num_workers=workers, batch_size=batch_size, persistent_workers=workers > 0)
    cfg["test_dataloader"] = loader
    cfg["evaluation"] = {"metric": ["bbox"]}
    return cfg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="fcos_r18_fpn_shapes")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_shapes(root / "shapes", num_train=1, num_val=args.images, size=args.size)
        torch.manual_seed(0)
        checkpoint = root / "model.pth"
        save_checkpoint(checkpoint, {"state_dict": build("detectors", load_config(args.config)["model"]).state_dict()})
        cfg = test_config(args.config, root / "shapes", args.workers, args.batch_size)
        runner = Runner.from_config(cfg, work_dir=root / "work")
        load_weights(runner.module, checkpoint, strict=True, use="benchmark")
        runner.module.optimize_for_inference()
        model = init_detector(cfg, checkpoint)
        files = sorted((root / "shapes" / "val").iterdir())

        def plain_loop() -> float:
            start = time.perf_counter()
            for path in files:
                inference_detector(model, path)
            return len(files) / (time.perf_counter() - start)

        def detcore_test() -> float:
            runner.test()
            return runner.test_throughput.images_per_second

        detcore_test(), plain_loop()  # warm-up (worker start-up, caches)
        ours, plain = [], []
        for _ in range(args.repeats):
            ours.append(detcore_test())
            plain.append(plain_loop())
        runner.close()
    ours_ips, plain_ips = statistics.median(ours), statistics.median(plain)
    print(f"{args.config}, {len(files)} images of {args.size}px, batch {args.batch_size}: detcore test "
          f"({args.workers} workers) {ours_ips:.2f} images/s, plain inference_detector loop {plain_ips:.2f} images/s, "
          f"ratio {ours_ips / plain_ips:.2f}")


if __name__ == "__main__":
    main()
