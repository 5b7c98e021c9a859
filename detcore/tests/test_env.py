"""`detcore env` reports versions, distributions and the backend serving each op."""

from __future__ import annotations

import json

from detcore.ops import OP_NAMES


def test_env_json_reports_ops_and_distributions(cli):
    out = cli("env", "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    import torch

    assert info["torch"] == torch.__version__
    assert info["distributions"]["detcore"] == "0.1.0"
    served = {(r["op"], r["device"]) for r in info["ops"]}
    assert {(op, "cpu") for op in OP_NAMES} <= served
    assert all(r["backend"] for r in info["ops"])


def test_help_everywhere(cli):
    for args in (["--help"], ["list-components", "--help"], ["config", "show", "--help"],
                 ["env", "--help"], ["convert", "--help"]):
        out = cli(*args)
        assert out.returncode == 0 and "usage: detcore" in out.stdout, (args, out.stderr)
