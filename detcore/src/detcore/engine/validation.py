"""The whole config checked before anything is built or run: every table's keys, value types and
ranges (with the key path and file named), options that do not apply to the chosen loop, the
detector's ``train_cfg`` / ``test_cfg`` against what its components declare, and ``num_classes``
against the training dataset's classes.

How a component declares its ``train_cfg`` / ``test_cfg`` keys (opt-in class attributes):

- ``train_cfg_keys`` / ``test_cfg_keys``: the keys its own table may hold (a head: ``assigner``,
  ``sampler``, ``nms``, ``score_thr``, ...);
- ``cfg_routes``: for a component that hands (parts of) these tables to children, a mapping from
  ``"train_cfg"`` or ``"train_cfg.<section>"`` to ``(child key, child kind, child table)``, e.g. a
  two-stage detector's ``{"train_cfg.rpn": ("rpn_head", "dense_heads", "train_cfg"), ...}``. A
  section whose value is a list (one table per cascade stage) is checked item by item.

A component that declares neither has its tables passed through unchecked.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any

from detcore.config.checks import (
    check_bool, check_choice, check_int, check_keys, check_number, check_table, where,
)
from detcore.engine.settings import EPOCH_BASED, ITER_BASED, KEY_ALIASES, RunnerSettings
from detcore.errors import ConfigError

CFG_TABLES = ("train_cfg", "test_cfg")
LOADER_KEYS = ("train_dataloader", "val_dataloader", "test_dataloader")
ON_BAD_IMAGE = ("error", "skip")


def _parameters(func: Any, exclude: Sequence[str] = ()) -> list[str]:
    params = inspect.signature(func).parameters
    return [n for n, p in params.items() if n not in ("self", *exclude) and p.kind is not p.VAR_KEYWORD]


def loader_keys() -> list[str]:
    """Keys of a ``*_dataloader`` table: ``build_dataloader``'s options and ``dataset``."""
    from detcore.data.loader import build_dataloader

    return ["dataset", *_parameters(build_dataloader, ("dataset", "seed", "distributed", "num_replicas", "rank"))]


def pipeline_names(cfg: Mapping[str, Any]) -> set[str]:
    """Top-level lists that are pipelines: named ``*pipeline`` or named by a dataset's ``pipeline``."""
    names = {k for k, v in cfg.items() if k.endswith("pipeline") and isinstance(v, list)}

    def visit(node: Any) -> None:
        if isinstance(node, Mapping):
            if isinstance(node.get("pipeline"), str):
                names.add(node["pipeline"])
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    for key in LOADER_KEYS:
        visit(cfg.get(key))
    return names


def validate_config(cfg: Mapping[str, Any]) -> None:
    """Check every table the runner reads; raise ConfigError naming the first bad key path."""
    known = {f.name for f in fields(RunnerSettings)} | set(KEY_ALIASES) | pipeline_names(cfg)
    check_keys(cfg, known, "", cfg, elsewhere={"runner": ("max_epochs", "max_iters"), "optimizer": ("lr",),
                                                  "train_dataloader": loader_keys(), "checkpoint": ("interval",)})
    _check_scalars(cfg)
    _check_loop(cfg)
    for key in LOADER_KEYS:
        if isinstance(cfg.get(key), (Mapping, str, int, float, list)):  # a table (or a mistake), not a built loader
            _check_loader(cfg, key)
    _check_hook_table(cfg, "checkpoint", "CheckpointHook", ("by_epoch",))
    _check_hook_table(cfg, "log", "LoggerHook")
    if cfg.get("evaluation") is not None:
        evaluation = check_table(cfg["evaluation"], "evaluation", cfg)
        if "interval" in evaluation:
            check_int(evaluation["interval"], "evaluation.interval", cfg, minimum=1)
    if cfg.get("optimizer") is not None and isinstance(cfg["optimizer"], Mapping):
        optimizer = cfg["optimizer"]
        if "lr" in optimizer:
            check_number(optimizer["lr"], "optimizer.lr", cfg, positive=True)
        for key in ("momentum", "weight_decay"):
            if key in optimizer:
                check_number(optimizer[key], f"optimizer.{key}", cfg)
    if isinstance(cfg.get("auto_scale_lr"), Mapping):
        table = cfg["auto_scale_lr"]
        check_keys(table, ("enable", "base_batch_size"), "auto_scale_lr", cfg)
        if "enable" in table:
            check_bool(table["enable"], "auto_scale_lr.enable", cfg)
        if "base_batch_size" in table:
            check_int(table["base_batch_size"], "auto_scale_lr.base_batch_size", cfg, minimum=1)
    model = cfg.get("model")
    if isinstance(model, Mapping):
        num_classes_entries(model, cfg=cfg)
        check_model_cfg_keys(model, cfg)


def _check_scalars(cfg: Mapping[str, Any]) -> None:
    if cfg.get("seed") is not None:
        check_int(cfg["seed"], "seed", cfg, minimum=0)
    for key in ("deterministic", "find_unused_parameters", "channels_last"):
        if key in cfg:
            check_bool(cfg[key], key, cfg)
    if "resume" in cfg and not isinstance(cfg["resume"], (bool, str, os.PathLike)):
        raise ConfigError(f"config key resume{where(cfg, 'resume')} must be true, false or a checkpoint path")
    if cfg.get("load_from") is not None and not isinstance(cfg["load_from"], (str, os.PathLike)):
        raise ConfigError(f"config key load_from{where(cfg, 'load_from')} must be a checkpoint path (a string)")
    if "custom_hooks" in cfg and not isinstance(cfg["custom_hooks"], (list, tuple)):
        raise ConfigError(f"config key custom_hooks{where(cfg, 'custom_hooks')} must be a list of tables")


def _check_loop(cfg: Mapping[str, Any]) -> None:
    """``runner``: its type, and only the length option of that loop (max_epochs xor max_iters)."""
    table = cfg.get("runner")
    if table is None:
        return
    check_table(table, "runner", cfg)
    check_keys(table, ("type", "max_epochs", "max_iters"), "runner", cfg)
    loop_type = table.get("type", "EpochBasedRunner")
    check_choice(loop_type, (*EPOCH_BASED, *ITER_BASED), "runner.type", cfg)
    own, other = ("max_epochs", "max_iters") if loop_type in EPOCH_BASED else ("max_iters", "max_epochs")
    if other in table:
        raise ConfigError(
            f"config key runner.{other}{where(cfg, f'runner.{other}')} does not apply to runner.type = {loop_type!r}, "
            f"which runs for runner.{own}; the {'epoch' if own == 'max_epochs' else 'iteration'}-based loop "
            f"would ignore it. Set runner.{own} instead, or change runner.type (to replace an inherited runner "
            "table, give it _delete_ = true)."
        )
    if own in table:
        check_int(table[own], f"runner.{own}", cfg, minimum=1)
    elif own == "max_iters":
        raise ConfigError(f"runner.type = {loop_type!r} needs runner.max_iters{where(cfg, 'runner')}")


def _check_loader(cfg: Mapping[str, Any], key: str) -> None:
    table = check_table(cfg[key], key, cfg)
    check_keys(table, loader_keys(), key, cfg, what="data loader")
    if "batch_size" in table:
        check_int(table["batch_size"], f"{key}.batch_size", cfg, minimum=1)
    if "num_workers" in table:
        check_int(table["num_workers"], f"{key}.num_workers", cfg, minimum=0)
    if "size_divisor" in table:
        check_int(table["size_divisor"], f"{key}.size_divisor", cfg, minimum=1)
    for flag in ("shuffle", "aspect_ratio_grouping", "drop_last", "persistent_workers"):
        if flag in table:
            check_bool(table[flag], f"{key}.{flag}", cfg)
    if "on_bad_image" in table:
        check_choice(table["on_bad_image"], ON_BAD_IMAGE, f"{key}.on_bad_image", cfg)
    if "dataset" in table:
        check_table(table["dataset"], f"{key}.dataset", cfg)


def _check_hook_table(cfg: Mapping[str, Any], key: str, hook_name: str, exclude: Sequence[str] = ()) -> None:
    table = cfg.get(key)
    if table is None:
        return
    check_table(table, key, cfg)
    from detcore.engine import hooks

    hook = getattr(hooks, hook_name)
    check_keys(table, _parameters(hook.__init__, exclude), key, cfg)
    for name in ("interval",):
        if name in table:
            check_int(table[name], f"{key}.{name}", cfg, minimum=1)
    if "max_keep" in table:
        check_int(table["max_keep"], f"{key}.max_keep", cfg)
    for flag in ("save_optimizer", "progress_bar"):
        if flag in table and table[flag] is not None:
            check_bool(table[flag], f"{key}.{flag}", cfg)


# -- model: train_cfg / test_cfg --------------------------------------------------------------------
def _component_class(kind: str, table: Mapping[str, Any]) -> Any:
    from detcore.registry import resolve

    return resolve(kind, str(table["type"])).load()


def check_model_cfg_keys(model: Mapping[str, Any], cfg: Any = None, kind: str = "detectors",
                         path: str = "model") -> None:
    """Check ``train_cfg`` / ``test_cfg`` of a component table against what its class declares."""
    if "type" not in model:
        return
    cls = _component_class(kind, model)
    for table_name in CFG_TABLES:
        value = model.get(table_name)
        if value is not None:
            _check_cfg_table(cls, model, table_name, value, f"{path}.{table_name}", cfg)


def _check_cfg_table(cls: Any, owner: Mapping[str, Any], table_name: str, value: Any, path: str, cfg: Any) -> None:
    """``value`` is ``owner``'s ``table_name`` (``owner`` being a table of class ``cls``)."""
    if isinstance(value, list):  # one table per stage
        for i, item in enumerate(value):
            _check_cfg_table(cls, owner, table_name, item, f"{path}[{i}]", cfg)
        return
    check_table(value, path, cfg)
    routes: Mapping[str, tuple[str, str, str]] = getattr(cls, "cfg_routes", {}) or {}
    if table_name in routes:  # the whole table belongs to a child
        _check_child(owner, routes[table_name], value, path, cfg)
        return
    sections = {k.split(".", 1)[1]: v for k, v in routes.items() if k.startswith(table_name + ".")}
    declared = getattr(cls, f"{table_name}_keys", None)
    if not sections and declared is None:
        return  # the component does not declare its keys
    allowed = set(sections) | set(declared or ())
    check_keys(value, allowed, path, cfg, what=f"{getattr(cls, '__name__', cls)}")
    for section, route in sections.items():
        if value.get(section) is not None:
            _check_child(owner, route, value[section], f"{path}.{section}", cfg)


def _check_child(owner: Mapping[str, Any], route: tuple[str, str, str], value: Any, path: str, cfg: Any) -> None:
    child_key, child_kind, child_table = route
    child = owner.get(child_key)
    if not isinstance(child, Mapping) or "type" not in child:
        return
    _check_cfg_table(_component_class(child_kind, child), child, child_table, value, path, cfg)


# -- num_classes ------------------------------------------------------------------------------------
def num_classes_entries(model: Mapping[str, Any], path: str = "model", cfg: Any = None) -> list[tuple[str, int]]:
    """``(key path, value)`` of every ``num_classes`` in the model table (each a positive integer),
    except class-agnostic proposal heads (a ``type`` naming RPN) and semantic heads (a ``type`` naming
    Semantic: HTC's also count stuff classes, COCO-stuff's 183)."""
    found: list[tuple[str, int]] = []

    def visit(node: Any, at: str) -> None:
        if isinstance(node, Mapping):
            kind = str(node.get("type", "")).upper()
            if "RPN" in kind or "SEMANTIC" in kind:
                return
            for key, value in node.items():
                if key == "num_classes":
                    found.append((f"{at}.{key}", check_int(value, f"{at}.{key}", cfg, minimum=1)))
                else:
                    visit(value, f"{at}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                visit(value, f"{at}[{i}]")

    visit(model, path)
    return found


def check_num_classes(model: Any, classes: Sequence[str] | None, cfg: Any = None, dataset_key: str = "train_dataloader") -> None:
    """Every ``num_classes`` of the model table equals the number of the training dataset's classes."""
    if not isinstance(model, Mapping) or not classes:
        return
    for path, value in num_classes_entries(model, cfg=cfg):
        if value != len(classes):
            shown = ", ".join(list(classes)[:8]) + (" ..." if len(classes) > 8 else "")
            raise ConfigError(
                f"config key {path}{where(cfg, path)} is {value}, but the {dataset_key} dataset has "
                f"{len(classes)} classes ({shown}). Set {path} = {len(classes)} (e.g. --set {path}={len(classes)}), "
                f"or give the dataset the classes the model is meant for ({dataset_key}.dataset.classes)."
            )
