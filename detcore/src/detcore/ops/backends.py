"""Ops backends: the `OpsBackend` record, entry-point discovery and the per-(op, device) dispatch table.

Compiled distributions (e.g. det-ops-cuda) register an `OpsBackend` under the entry-point group
`detcore.ops`; each public op in `detcore.ops` runs on the highest-priority backend serving its
(op, device type), falling back to the pure-PyTorch/torchvision references.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib.metadata
import os
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

ENTRY_POINT_GROUP = "detcore.ops"
REFERENCE = "reference"
ENV_VAR = "DETCORE_OPS_BACKEND"

OP_NAMES: tuple[str, ...] = (
    "nms",
    "batched_nms",
    "soft_nms",
    "roi_align",
    "roi_pool",
    "deform_conv2d",
    "deform_roi_pool",
    "multi_scale_deformable_attention",
    "corner_pool",
    "sigmoid_focal_loss",
    "carafe",
)


@dataclass(frozen=True)
class OpsBackend:
    """A set of op implementations, each with the reference's signature and semantics, and the device types it serves."""

    name: str
    ops: Mapping[str, Callable[..., Any]]
    devices: Mapping[str, frozenset[str]]
    priority: int = 100

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"OpsBackend.name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.ops, Mapping):
            raise TypeError(f"OpsBackend {self.name!r}: `ops` must be a mapping op name -> callable")
        if not isinstance(self.devices, Mapping):
            raise TypeError(
                f"OpsBackend {self.name!r}: `devices` must be a mapping op name -> frozenset of device types"
            )
        for op, fn in self.ops.items():
            if not callable(fn):
                raise TypeError(f"OpsBackend {self.name!r}: ops[{op!r}] is not callable ({type(fn).__name__})")
        for op, device_types in self.devices.items():
            if op not in self.ops:
                raise ValueError(
                    f"OpsBackend {self.name!r}: devices[{op!r}] is declared but ops has no {op!r} implementation"
                )
            if not isinstance(device_types, (frozenset, set)) or not all(isinstance(d, str) for d in device_types):
                raise TypeError(
                    f"OpsBackend {self.name!r}: devices[{op!r}] must be a frozenset of device type strings "
                    f"such as frozenset({{'cpu', 'cuda'}}), got {device_types!r}"
                )
        if not isinstance(self.priority, int):
            raise TypeError(f"OpsBackend {self.name!r}: priority must be an int, got {self.priority!r}")

    def serves(self, op: str, device_type: str) -> bool:
        """True if this backend implements `op` for tensors on `device_type`."""
        return device_type in self.devices.get(op, frozenset())


@dataclass
class BackendRecord:
    """What discovery learnt about one `detcore.ops` entry point: where it came from and whether it loaded."""

    name: str
    distribution: str
    version: str
    backend: OpsBackend | None = None
    error: str | None = None

    @property
    def broken(self) -> bool:
        return self.backend is None


@dataclass
class _State:
    loaded: bool = False
    records: list[BackendRecord] = field(default_factory=list)
    env_forced: str | None = None
    cache: dict[tuple[str, str, str | None], tuple[str, Callable[..., Any]]] = field(default_factory=dict)


_state = _State()
_lock = threading.Lock()
_forced: contextvars.ContextVar[str | None] = contextvars.ContextVar("detcore_ops_forced_backend", default=None)


def read_entry_points() -> Sequence[importlib.metadata.EntryPoint]:
    """The installed `detcore.ops` entry points (separate function so tests can substitute fake ones)."""
    return tuple(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


def _reference_backend() -> OpsBackend:
    from detcore.ops import reference

    every_device = frozenset({"*"})
    return OpsBackend(
        name=REFERENCE,
        ops={op: getattr(reference, op) for op in OP_NAMES},
        devices={op: every_device for op in OP_NAMES},
        priority=0,
    )


def _dist_of(ep: importlib.metadata.EntryPoint) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "<unknown distribution>", "<unknown version>"
    return getattr(dist, "name", None) or "<unknown distribution>", dist.version or "<unknown version>"


def _load_entry_point(ep: importlib.metadata.EntryPoint, taken: dict[str, str]) -> BackendRecord:
    distribution, version = _dist_of(ep)
    record = BackendRecord(name=ep.name, distribution=distribution, version=version)
    try:
        obj = ep.load()
        backend = obj if isinstance(obj, OpsBackend) else obj() if callable(obj) else obj
        if not isinstance(backend, OpsBackend):
            raise TypeError(
                f"entry point {ep.name} = {ep.value!r} must be an OpsBackend or a zero-argument callable "
                f"returning one, got {type(backend).__name__}"
            )
        if backend.name == REFERENCE:
            raise ValueError(f"backend name {REFERENCE!r} is reserved for detcore's built-in reference ops")
        if backend.name in taken:
            raise ValueError(
                f"backend name {backend.name!r} is already registered by distribution {taken[backend.name]!r}"
            )
    except Exception as exc:  # noqa: BLE001 - any failure in third-party loading code marks the backend broken
        record.error = f"{type(exc).__name__}: {exc}"
        return record
    record.name = backend.name
    record.backend = backend
    taken[backend.name] = distribution
    return record


def _ensure_loaded() -> _State:
    """Discover the backends once, lazily (first dispatch), warning once per broken distribution."""
    if _state.loaded:
        return _state
    with _lock:
        if _state.loaded:
            return _state
        reference = BackendRecord(REFERENCE, "detcore", _detcore_version(), backend=_reference_backend())
        records = [reference]
        taken: dict[str, str] = {REFERENCE: "detcore"}
        for ep in read_entry_points():
            record = _load_entry_point(ep, taken)
            records.append(record)
            if record.broken:
                warnings.warn(
                    f"detcore.ops backend {record.name!r} from distribution {record.distribution} "
                    f"{record.version} failed to load ({record.error}); detcore uses its reference ops instead. "
                    f"Reinstall it (pip install --force-reinstall {record.distribution}) or uninstall it "
                    f"(pip uninstall {record.distribution}) to use the reference ops without this warning.",
                    RuntimeWarning,
                    stacklevel=4,
                )
        _state.records = records
        _state.env_forced = os.environ.get(ENV_VAR) or None
        _state.cache = {}
        _state.loaded = True
    return _state


def _detcore_version() -> str:
    try:
        return importlib.metadata.version("detcore")
    except importlib.metadata.PackageNotFoundError:
        return "<not installed>"


def reload_backends() -> None:
    """Forget discovered backends, the dispatch cache and the DETCORE_OPS_BACKEND value; rediscover on next use."""
    with _lock:
        _state.loaded = False
        _state.records = []
        _state.env_forced = None
        _state.cache = {}


def _available(state: _State) -> dict[str, BackendRecord]:
    return {r.name: r for r in state.records if not r.broken}


def _check_forced(state: _State, name: str, source: str) -> None:
    available = _available(state)
    if name in available:
        return
    broken = [r for r in state.records if r.broken and r.name == name]
    if broken:
        raise RuntimeError(
            f"{source} asks for ops backend {name!r}, but it failed to load: {broken[0].error}. "
            f"Reinstall {broken[0].distribution} or choose one of {sorted(available)}."
        )
    raise ValueError(f"{source} names unknown ops backend {name!r}; available backends: {sorted(available)}")


def _check_op(op: str) -> None:
    if op not in OP_NAMES:
        raise ValueError(f"unknown op {op!r}; detcore.ops provides {list(OP_NAMES)}")


def _choose(state: _State, op: str, device_type: str, forced: str | None) -> BackendRecord:
    """The record serving (op, device_type): the forced backend if it serves it, else the best by priority."""
    available = _available(state)
    if forced is not None:
        record = available[forced]
        return record if record.backend.serves(op, device_type) or forced == REFERENCE else available[REFERENCE]
    candidates = [r for r in available.values() if r.name != REFERENCE and r.backend.serves(op, device_type)]
    if not candidates:
        return available[REFERENCE]
    return max(candidates, key=lambda r: (r.backend.priority, r.name))


def _active_forced(state: _State) -> tuple[str | None, str]:
    forced = _forced.get()
    if forced is not None:
        return forced, "use_backend()"
    return state.env_forced, f"environment variable {ENV_VAR}"


def resolve(op: str, device_type: str) -> tuple[str, Callable[..., Any]]:
    """(backend name, implementation) for `op` on `device_type`; cached per (op, device type, forced backend)."""
    state = _state if _state.loaded else _ensure_loaded()
    forced, source = _active_forced(state)
    key = (op, device_type, forced)
    hit = state.cache.get(key)
    if hit is not None:
        return hit
    _check_op(op)
    if forced is not None:
        _check_forced(state, forced, source)
    record = _choose(state, op, device_type, forced)
    entry = (record.name, record.backend.ops[op])
    state.cache[key] = entry
    return entry


def _device_type(device: Any) -> str:
    if isinstance(device, str):
        return device.split(":", 1)[0]
    device_type = getattr(device, "type", None)
    if not isinstance(device_type, str):
        raise TypeError(f"device must be a string such as 'cuda:0' or a torch.device, got {device!r}")
    return device_type


def op_backend(op: str, device: Any) -> str:
    """Name of the backend that runs `op` for tensors on `device` (a string like 'cuda:0' or a torch.device)."""
    return resolve(op, _device_type(device))[0]


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Force backend `name` inside the block ("reference" forces the references); ops it does not serve use the reference."""
    _check_forced(_ensure_loaded(), name, "use_backend()")
    token = _forced.set(name)
    try:
        yield
    finally:
        _forced.reset(token)


def backend_table(device_types: Sequence[str] = ("cpu", "cuda")) -> list[dict[str, str]]:
    """One row {op, device, backend, distribution, version, status} per (op, device type), for `detcore env`."""
    state = _ensure_loaded()
    forced, _ = _active_forced(state)
    by_name = _available(state)
    rows = []
    for op in OP_NAMES:
        for device_type in device_types:
            name, _fn = resolve(op, device_type)
            record = by_name[name]
            rows.append(
                {
                    "op": op,
                    "device": device_type,
                    "backend": name,
                    "distribution": record.distribution,
                    "version": record.version,
                    "status": "forced" if forced is not None and name == forced else "ok",
                }
            )
    return rows


def broken_backends() -> list[dict[str, str]]:
    """Backends that failed to load: {name, distribution, version, error}."""
    state = _ensure_loaded()
    return [
        {"name": r.name, "distribution": r.distribution, "version": r.version, "error": r.error or ""}
        for r in state.records
        if r.broken
    ]


def loaded_backends() -> list[dict[str, Any]]:
    """Backends that loaded (the reference first): {name, distribution, version, priority}."""
    state = _ensure_loaded()
    return [
        {"name": r.name, "distribution": r.distribution, "version": r.version, "priority": r.backend.priority}
        for r in state.records
        if not r.broken
    ]
