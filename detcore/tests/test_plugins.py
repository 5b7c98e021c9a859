"""pluggy plugins: commands, config folders, env checks; a broken plugin is shown, not fatal."""

from __future__ import annotations

import json


PLUGIN_SRC = '''
from detcore.plugins import hookimpl

@hookimpl
def detcore_add_commands(subparsers):
    p = subparsers.add_parser("hello", help="say hello")
    p.add_argument("who")
    p.set_defaults(handler=lambda args: print(f"hello {args.who}") or 0)

@hookimpl
def detcore_config_dirs():
    import pathlib
    return [str(pathlib.Path(__file__).parent / "extra_configs")]
'''


def _sites(tmp_path, dist_writer):
    good = dist_writer(tmp_path / "good", "det-good",
                      entry_points={"detcore.plugins": {"good": "good_plugin"}},
                      files={"good_plugin.py": PLUGIN_SRC,
                             "extra_configs/plugin_cfg.toml": "[model]\ntype = 'X'\n"})
    bad = dist_writer(tmp_path / "bad", "det-bad",
                     entry_points={"detcore.plugins": {"bad": "bad_plugin"}},
                     files={"bad_plugin.py": "import no_such_module_anywhere\n"})
    return [good, bad]


def test_plugin_command_runs_next_to_a_broken_plugin(tmp_path, cli, dist_writer):
    out = cli("hello", "world", extra_path=_sites(tmp_path, dist_writer))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "hello world"


def test_broken_plugin_is_listed_with_its_error(tmp_path, cli, dist_writer):
    out = cli("list-components", "--check", "--json", extra_path=_sites(tmp_path, dist_writer))
    rows = json.loads(out.stdout)
    bad = next(r for r in rows if r["kind"] == "plugin" and r["distribution"] == "det-bad")
    assert bad["status"].startswith("broken: ModuleNotFoundError")
    assert "no_such_module_anywhere" in bad["status"]
    good = next(r for r in rows if r["kind"] == "plugin" and r["distribution"] == "det-good")
    assert good["status"] == "ok"
    assert out.returncode == 1  # --check reports broken entries through the exit status


def test_plugin_contributes_configs(tmp_path, cli, dist_writer):
    out = cli("config", "show", "plugin_cfg", "--json", extra_path=_sites(tmp_path, dist_writer))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"model": {"type": "X"}}
