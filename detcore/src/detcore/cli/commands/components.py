"""``detcore list-components``, ``list-configs``, ``config show``: metadata-only listings."""

from __future__ import annotations

import argparse
import json

from detcore.cli.options import add_set_option


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "list-components",
        help="list the components installed distributions register",
        description="List components from package metadata (imports nothing). Every "
        "entry-point group detcore.<kind> is a kind; --kinds lists them.",
    )
    p.add_argument("--kind", help="only this kind (e.g. necks; see --kinds)")
    p.add_argument("--kinds", action="store_true",
                   help="list the kinds instead: installed groups and first-party ones")
    p.add_argument("--json", action="store_true", help="print a JSON list of objects")
    p.add_argument(
        "--check", action="store_true",
        help="also import every component and plugin and report the broken ones (slower)",
    )
    p.set_defaults(handler=list_components)

    p = subparsers.add_parser("list-configs", help="list the configs installed distributions ship")
    p.add_argument("--all", action="store_true", help="include _base_ fragments")
    p.add_argument("--json", action="store_true", help="print a JSON list of objects")
    p.set_defaults(handler=list_configs)

    p = subparsers.add_parser("config", help="inspect configs")
    sub = p.add_subparsers(dest="config_command", metavar="SUBCOMMAND", required=True)
    show = sub.add_parser("show", help="print a config with _base_ and --set applied")
    show.add_argument("config", help="config name (see list-configs) or path to a .toml file")
    add_set_option(show)
    show.add_argument("--json", action="store_true", help="print JSON instead of TOML")
    show.set_defaults(handler=config_show)
    prefer = sub.add_parser(
        "prefer", help="choose once which distribution's component a name means when several register it",
        description="Write the choice to the user preferences file (see `detcore env` for conflicts); the "
        "environment variable DETCORE_PREFER=\"kind:Name=dist,...\" does the same for one shell.",
    )
    prefer.add_argument("name", metavar="[KIND:]NAME", help="e.g. necks:FPN (without KIND: for every kind)")
    prefer.add_argument("distribution", help="the distribution to use, e.g. det-common")
    prefer.set_defaults(handler=config_prefer)


def component_rows(kind: str | None, check: bool) -> list[dict]:
    """One dict per component (and, with ``check``, per plugin) with its status."""
    from detcore.registry import components, duplicates

    dup_keys = set(duplicates())
    rows = []
    for spec in components(kind):
        status = "conflict" if (spec.kind, spec.name) in dup_keys else "available"
        if check:
            try:
                spec.load()
                status = "ok" if status == "available" else status
            except Exception as exc:  # report, keep listing
                status = f"broken: {exc.__cause__ or exc}"
        rows.append({
            "kind": spec.kind, "name": spec.name, "distribution": spec.distribution,
            "version": spec.version, "target": spec.target, "status": status,
        })
    if check and kind is None:
        from detcore.plugins import get_plugin_manager

        for st in get_plugin_manager().statuses:
            rows.append({
                "kind": "plugin", "name": st.name, "distribution": st.distribution,
                "version": st.version, "target": st.target, "status": st.status,
            })
    return rows


def kind_rows() -> list[dict]:
    """One dict per kind: what it holds and how many components are installed."""
    from detcore.registry import components, describe_kind, kinds

    counts: dict[str, int] = {}
    for spec in components():
        counts[spec.kind] = counts.get(spec.kind, 0) + 1
    return [{"kind": k, "components": counts.get(k, 0), "description": describe_kind(k)}
            for k in kinds()]


def list_components(args: argparse.Namespace) -> int:
    if args.kinds:
        rows = kind_rows()
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            _print_table(rows, ["kind", "components", "description"])
        return 0
    rows = component_rows(args.kind, args.check)
    broken = any(r["status"].startswith("broken") for r in rows)
    if args.json:
        print(json.dumps(rows, indent=2))
    elif rows:
        _print_table(rows, ["kind", "name", "distribution", "version", "status"])
    else:
        print("No components installed. Install a family, e.g. `pip install det-single-stage`.")
    return 1 if broken else 0


def list_configs(args: argparse.Namespace) -> int:
    from detcore.config import shipped_configs

    rows = [
        {"name": e.name, "distribution": e.distribution, "version": e.version, "path": str(e.path)}
        for e in shipped_configs() if args.all or not e.is_base
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
    elif rows:
        _print_table(rows, ["name", "distribution", "path"])
    else:
        print("No configs installed.")
    return 0


def config_show(args: argparse.Namespace) -> int:
    from detcore.config import load_config

    cfg = load_config(args.config, overrides=args.set)
    print(cfg.to_json() if args.json else cfg.dump(), end="" if not args.json else "\n")
    return 0


def config_prefer(args: argparse.Namespace) -> int:
    from detcore.errors import ConfigError
    from detcore.registry import components
    from detcore.registry.discovery import normalize_dist
    from detcore.registry.preferences import save_preference

    kind, _, name = args.name.rpartition(":")
    specs = [s for s in components(kind or None) if s.name == name]
    if not specs:
        raise ConfigError(f"no installed component is called {args.name!r}; see `detcore list-components`")
    if not any(normalize_dist(s.distribution) == normalize_dist(args.distribution) for s in specs):
        offered = ", ".join(sorted({s.distribution for s in specs}))
        raise ConfigError(f"{args.name} is not registered by {args.distribution!r}; it is registered by {offered}")
    path = save_preference(args.name, args.distribution)
    print(f"{args.name} now means the component of {args.distribution} (saved in {path})")
    return 0


def _print_table(rows: list[dict], columns: list[str]) -> None:
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    print("  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip())
    for r in rows:
        print("  ".join(str(r[c]).ljust(widths[c]) for c in columns).rstrip())
