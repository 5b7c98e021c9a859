"""Backend discovery and dispatch, with fake distributions installed as dist-info folders on sys.path."""

import sys
import textwrap
import uuid
import warnings

import pytest
import torch

from detcore import ops
from detcore.ops import backends


@pytest.fixture(autouse=True)
def fresh_backends(monkeypatch):
    """Only the fake backends a test installs take part (not e.g. an installed det-ops-cuda)."""
    monkeypatch.delenv(backends.ENV_VAR, raising=False)
    real = {(ep.name, ep.value) for ep in backends.read_entry_points()}
    read = backends.read_entry_points
    monkeypatch.setattr(backends, "read_entry_points",
                        lambda: tuple(ep for ep in read() if (ep.name, ep.value) not in real))
    ops.reload_backends()
    yield
    ops.reload_backends()


def install_dist(tmp_path, monkeypatch, dist, version, entries, source):
    """A distribution `dist` whose module (with `source`) registers `entries` {name: attr} in group detcore.ops."""
    module = f"fake_ops_{uuid.uuid4().hex}"
    root = tmp_path / dist
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = "".join(f"{name} = {module}:{attr}\n" for name, attr in entries.items())
    (info / "entry_points.txt").write_text(f"[detcore.ops]\n{lines}")
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.delitem(sys.modules, module, raising=False)
    return module


FAKE_NMS = """
    from detcore.ops import OpsBackend
    from detcore.ops.reference import nms as reference_nms

    CALLS = []

    def nms(boxes, scores, iou_threshold):
        CALLS.append(boxes.shape[0])
        return reference_nms(boxes, scores, iou_threshold)

    BACKEND = OpsBackend(name="fake-ops", ops={"nms": nms}, devices={"nms": frozenset({"cpu"})}, priority=50)
"""


def boxes_scores():
    return torch.tensor([[0.0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]]), torch.tensor([0.9, 0.8, 0.7])


def test_reference_everywhere_without_backends(monkeypatch):
    monkeypatch.setattr(backends, "read_entry_points", lambda: ())
    ops.reload_backends()
    assert {row["backend"] for row in ops.backend_table()} == {"reference"}
    assert len(ops.backend_table(("cpu", "cuda", "mps"))) == 3 * len(ops.OP_NAMES)
    assert ops.broken_backends() == []


def test_fake_backend_wins_only_where_it_claims(tmp_path, monkeypatch):
    module = install_dist(tmp_path, monkeypatch, "fake-ops-dist", "1.2.3", {"fake-ops": "BACKEND"}, FAKE_NMS)
    assert ops.op_backend("nms", "cpu") == "fake-ops"
    assert ops.op_backend("nms", torch.device("cpu")) == "fake-ops"
    assert ops.op_backend("nms", "cuda:0") == "reference"
    assert ops.op_backend("roi_align", "cpu") == "reference"
    boxes, scores = boxes_scores()
    assert ops.nms(boxes, scores, 0.5).tolist() == [0, 2]
    assert sys.modules[module].CALLS == [3]
    row = next(r for r in ops.backend_table() if r["op"] == "nms" and r["device"] == "cpu")
    assert row == {
        "op": "nms",
        "device": "cpu",
        "backend": "fake-ops",
        "distribution": "fake-ops-dist",
        "version": "1.2.3",
        "status": "ok",
    }


def test_use_backend_and_env_var_force_the_reference(tmp_path, monkeypatch):
    module = install_dist(tmp_path, monkeypatch, "fake-ops-dist", "1.0", {"fake-ops": "BACKEND"}, FAKE_NMS)
    boxes, scores = boxes_scores()
    with ops.use_backend("reference"):
        assert ops.op_backend("nms", "cpu") == "reference"
        ops.nms(boxes, scores, 0.5)
    assert sys.modules[module].CALLS == []
    assert ops.op_backend("nms", "cpu") == "fake-ops"
    with ops.use_backend("fake-ops"):
        assert ops.op_backend("nms", "cpu") == "fake-ops"
        assert ops.op_backend("roi_align", "cpu") == "reference"  # ops it does not serve fall back

    monkeypatch.setenv(backends.ENV_VAR, "reference")
    ops.reload_backends()
    assert ops.op_backend("nms", "cpu") == "reference"
    ops.nms(boxes, scores, 0.5)
    assert sys.modules[module].CALLS == []
    assert {r["status"] for r in ops.backend_table()} == {"forced"}


def test_unknown_backend_name_lists_available(tmp_path, monkeypatch):
    install_dist(tmp_path, monkeypatch, "fake-ops-dist", "1.0", {"fake-ops": "BACKEND"}, FAKE_NMS)
    with pytest.raises(ValueError, match=r"'nope'.*\['fake-ops', 'reference'\]"), ops.use_backend("nope"):
        pass
    monkeypatch.setenv(backends.ENV_VAR, "nope")
    ops.reload_backends()
    with pytest.raises(ValueError, match="DETCORE_OPS_BACKEND"):
        ops.nms(*boxes_scores(), 0.5)
    with pytest.raises(ValueError, match="unknown op"):
        ops.op_backend("nmx", "cpu")


def test_broken_backend_is_reported_and_reference_serves(tmp_path, monkeypatch):
    install_dist(
        tmp_path,
        monkeypatch,
        "broken-ops",
        "0.9",
        {"broken": "BACKEND"},
        "raise ImportError('libcudart.so.99: cannot open')\n",
    )
    with pytest.warns(
        RuntimeWarning, match=r"broken-ops 0\.9.*libcudart.*(Reinstall|reinstall).*pip uninstall broken-ops"
    ):
        keep = ops.nms(*boxes_scores(), 0.5)
    assert keep.tolist() == [0, 2]
    (broken,) = ops.broken_backends()
    assert broken["distribution"] == "broken-ops" and broken["version"] == "0.9"
    assert "ImportError: libcudart.so.99: cannot open" in broken["error"]
    assert ops.op_backend("nms", "cpu") == "reference"
    with pytest.raises(RuntimeError, match="failed to load"), ops.use_backend("broken"):
        pass
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once, at discovery only
        ops.nms(*boxes_scores(), 0.5)


def test_wrong_object_and_factory(tmp_path, monkeypatch):
    source = (
        FAKE_NMS
        + """
    def make_backend():
        return OpsBackend(name="factory-ops", ops={"corner_pool": lambda input, mode: input}, devices={"corner_pool": frozenset({"cpu"})})

    NOT_A_BACKEND = 42
"""
    )
    install_dist(
        tmp_path, monkeypatch, "multi-ops", "2.0", {"factory-ops": "make_backend", "bad": "NOT_A_BACKEND"}, source
    )
    with pytest.warns(RuntimeWarning, match="multi-ops"):
        assert ops.op_backend("corner_pool", "cpu") == "factory-ops"
    (broken,) = ops.broken_backends()
    assert "OpsBackend" in broken["error"] and broken["name"] == "bad"
    x = torch.randn(1, 1, 3, 3)
    assert torch.equal(ops.corner_pool(x, "top"), x)  # the fake identity implementation really ran


def test_priority_decides_between_backends(tmp_path, monkeypatch):
    source = """
    from detcore.ops import OpsBackend

    def low(boxes, scores, iou_threshold):
        return "low"

    def high(boxes, scores, iou_threshold):
        return "high"

    LOW = OpsBackend(name="low", ops={"nms": low}, devices={"nms": frozenset({"cpu", "cuda"})}, priority=10)
    HIGH = OpsBackend(name="high", ops={"nms": high}, devices={"nms": frozenset({"cpu"})}, priority=200)
"""
    install_dist(tmp_path, monkeypatch, "two-ops", "1.0", {"low": "LOW", "high": "HIGH"}, source)
    assert ops.nms(*boxes_scores(), 0.5) == "high"
    assert ops.op_backend("nms", "cuda") == "low"
    with ops.use_backend("low"):
        assert ops.nms(*boxes_scores(), 0.5) == "low"


def test_discovery_is_lazy_and_happens_once(monkeypatch):
    calls = []
    monkeypatch.setattr(backends, "read_entry_points", lambda: calls.append(1) or ())
    ops.reload_backends()
    assert calls == []
    for _ in range(3):
        ops.nms(*boxes_scores(), 0.5)
        ops.corner_pool(torch.zeros(1, 1, 2, 2), "left")
    assert calls == [1]


def test_first_argument_must_be_a_tensor():
    with pytest.raises(TypeError, match="input"):
        ops.roi_align([[1.0]], torch.zeros(0, 5), 2)


def test_ops_backend_validates_its_fields():
    with pytest.raises(ValueError, match="declared"):
        ops.OpsBackend(name="x", ops={}, devices={"nms": frozenset({"cpu"})})
    with pytest.raises(TypeError, match="frozenset"):
        ops.OpsBackend(name="x", ops={"nms": len}, devices={"nms": "cpu"})
    with pytest.raises(TypeError, match="callable"):
        ops.OpsBackend(name="x", ops={"nms": 3}, devices={})
