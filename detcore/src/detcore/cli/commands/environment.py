"""``detcore env``: versions, CUDA, installed detcore distributions, plugins and op backends."""

from __future__ import annotations

import argparse
import json
import platform
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("env", help="show the environment: versions, CUDA, backends, plugins")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=show_env)


def collect_env() -> dict:
    """Everything `detcore env` reports, as plain data."""
    import torch
    import torchvision

    from detcore import ops
    from detcore.plugins import get_plugin_manager
    from detcore.registry import scan_entry_points

    dists: dict[str, str] = {"detcore": __import__("detcore").__version__}
    for record in scan_entry_points():
        dists.setdefault(record.distribution, record.version)
    pm = get_plugin_manager()
    conflicts, broken = component_problems()
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "cuda_available": torch.cuda.is_available(),
        "cuda_build": torch.version.cuda,
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "distributions": dict(sorted(dists.items())),
        "plugins": [
            {"name": s.name, "distribution": s.distribution, "status": s.status}
            for s in pm.statuses
        ],
        "ops": ops.backend_table(),
        "broken_op_backends": ops.broken_backends(),
        "checks": pm.env_checks(),
        "component_conflicts": conflicts,
        "broken_components": broken,
    }


def component_problems() -> tuple[list[dict], list[dict]]:
    """Names several distributions register (with the preference that settles each, if any) and
    components whose module fails to import (with the error)."""
    from detcore.errors import DetcoreError
    from detcore.registry import components, duplicates
    from detcore.registry.preferences import preferred_distribution

    conflicts = []
    for (kind, name), specs in sorted(duplicates().items()):
        try:
            preference = preferred_distribution(kind, name)
        except DetcoreError as exc:
            preference = (f"(unreadable preference: {exc})", "")
        conflicts.append({
            "kind": kind, "name": name, "distributions": [s.distribution for s in specs],
            "preferred": preference[0] if preference else None, "preferred_in": preference[1] if preference else None,
        })
    broken = []
    for spec in components():
        try:
            spec.load()
        except Exception as exc:  # report every broken component, keep going
            cause = exc.__cause__ or exc
            broken.append({"kind": spec.kind, "name": spec.name, "distribution": spec.distribution,
                           "error": f"{type(cause).__name__}: {cause}"})
    return conflicts, broken


def show_env(args: argparse.Namespace) -> int:
    info = collect_env()
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    for key in ("python", "platform", "torch", "torchvision", "cuda_available", "cuda_build"):
        print(f"{key:16s} {info[key]}")
    if info["gpus"]:
        print(f"{'gpus':16s} {', '.join(info['gpus'])}")
    print("\ndistributions")
    for name, version in info["distributions"].items():
        print(f"  {name:24s} {version}")
    print("\nplugins")
    for p in info["plugins"] or [{"name": "(none)", "distribution": "", "status": ""}]:
        print(f"  {p['name']:24s} {p['distribution']:20s} {p['status']}")
    print("\nops (op, device -> backend)")
    for row in info["ops"]:
        print(f"  {row['op']:34s} {row['device']:5s} {row['backend']} {row.get('status', '')}")
    for b in info["broken_op_backends"]:
        print(f"  broken backend {b}")
    print("\ncomponent conflicts (one name, several distributions)")
    for c in info["component_conflicts"]:
        chosen = (f"-> {c['preferred']} (preference in {c['preferred_in']})" if c["preferred"]
                  else f"-> none chosen: detcore config prefer {c['kind']}:{c['name']} DIST, or type = \"DIST::{c['name']}\"")
        print(f"  {c['kind']}:{c['name']:24s} {', '.join(c['distributions'])} {chosen}")
    if not info["component_conflicts"]:
        print("  (none)")
    print("\nbroken components (fail to import)")
    for b in info["broken_components"]:
        print(f"  {b['kind']}:{b['name']} from {b['distribution']}: {b['error']}")
    if not info["broken_components"]:
        print("  (none)")
    if info["checks"]:
        print("\nchecks")
        for c in info["checks"]:
            print(f"  {c.get('name', '?'):24s} {'ok' if c.get('ok') else 'FAIL'} {c.get('detail', '')}")
    return 0
