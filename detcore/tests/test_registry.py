"""Entry-point discovery, building, and the named errors of the registry."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from detcore.errors import ComponentLoadError, ConfigError, DuplicateComponentError, UnknownComponentError
from detcore.registry import build, components, get_component, resolve


NECK_SRC = """
class MyNeck:
    def __init__(self, channels: int = 8, scale: float = 1.0):
        self.channels = channels
        self.scale = scale
"""


def test_build_from_entry_point(fake_dist):
    fake_dist("det-fake", entry_points={"detcore.necks": {"MyNeck": "fake_mod:MyNeck"}},
              files={"fake_mod.py": NECK_SRC})
    spec = resolve("necks", "MyNeck")
    assert (spec.distribution, spec.version, spec.target) == ("det-fake", "1.0", "fake_mod:MyNeck")
    neck = build("necks", {"type": "MyNeck", "channels": 4}, scale=2.0)
    assert (neck.channels, neck.scale) == (4, 2.0)
    # config values win over defaults; a non-mapping passes through
    assert build("necks", {"type": "MyNeck", "scale": 3.0}, scale=2.0).scale == 3.0
    assert build("necks", neck) is neck


def test_unknown_component_suggests_close_names_and_provider(fake_dist, monkeypatch):
    fake_dist("det-fake", entry_points={"detcore.necks": {"MyNeck": "fake_mod:MyNeck"}},
              files={"fake_mod.py": NECK_SRC})
    with pytest.raises(UnknownComponentError) as err:
        build("necks", {"type": "MyNek"})
    assert "Unknown necks component 'MyNek'" in str(err.value)
    assert "Did you mean: MyNeck?" in str(err.value)
    # a first-party name that is not installed: the catalog names its distribution
    from detcore.registry import registry

    monkeypatch.setattr(registry, "_catalog", lambda: {"detectors": {"FancyNet": "det-fancy"}})
    with pytest.raises(UnknownComponentError) as err:
        resolve("detectors", "FancyNet")
    assert "It is provided by det-fancy: pip install det-fancy." in str(err.value)


def test_unknown_config_key_is_named(fake_dist):
    fake_dist("det-fake", entry_points={"detcore.necks": {"MyNeck": "fake_mod:MyNeck"}},
              files={"fake_mod.py": NECK_SRC})
    with pytest.raises(ConfigError) as err:
        build("necks", {"type": "MyNeck", "chanels": 3})
    msg = str(err.value)
    assert "Unknown config key 'chanels' for necks:MyNeck (det-fake)" in msg
    assert "Did you mean: channels?" in msg


def test_missing_type_is_named():
    with pytest.raises(ConfigError, match="has no 'type' key"):
        build("necks", {"channels": 3})


def test_duplicate_registration_names_both_and_qualifier_resolves(fake_dist):
    fake_dist("det-one", entry_points={"detcore.necks": {"MyNeck": "fake_one:MyNeck"}},
              files={"fake_one.py": NECK_SRC})
    fake_dist("det-two", version="2.0",
              entry_points={"detcore.necks": {"MyNeck": "fake_two:MyNeck"}},
              files={"fake_two.py": NECK_SRC.replace("channels: int = 8", "channels: int = 16")})
    with pytest.raises(DuplicateComponentError) as err:
        build("necks", {"type": "MyNeck"})
    msg = str(err.value)
    assert "det-one 1.0 (fake_one:MyNeck)" in msg and "det-two 2.0 (fake_two:MyNeck)" in msg
    assert 'type = "det-one::MyNeck"' in msg
    assert build("necks", {"type": "det-two::MyNeck"}).channels == 16
    assert build("necks", {"type": "det_one::MyNeck"}).channels == 8


def test_broken_component_is_reported_and_others_still_work(fake_dist):
    fake_dist("det-broken", entry_points={"detcore.necks": {"BadNeck": "broken_mod:BadNeck"}},
              files={"broken_mod.py": "raise RuntimeError('compiled part missing')\n"})
    fake_dist("det-fake", entry_points={"detcore.necks": {"MyNeck": "fake_mod:MyNeck"}},
              files={"fake_mod.py": NECK_SRC})
    with pytest.raises(ComponentLoadError) as err:
        get_component("necks", "BadNeck")
    msg = str(err.value)
    assert "det-broken" in msg and "compiled part missing" in msg and "pip uninstall det-broken" in msg
    assert build("necks", {"type": "MyNeck"}).channels == 8


def test_unknown_kind():
    with pytest.raises(UnknownComponentError, match="Did you mean necks"):
        components("neck")


def test_listing_imports_neither_plugins_nor_torch(tmp_path, dist_writer):
    site = dist_writer(tmp_path / "site", "det-fake",
                      entry_points={"detcore.necks": {"MyNeck": "fake_mod:MyNeck"},
                                    "detcore.plugins": {"fake": "fake_plugin"}},
                      files={"fake_mod.py": "raise SystemExit('component imported')\n",
                             "fake_plugin.py": "raise SystemExit('plugin imported')\n"})
    outputs, torch_imported = list_in_subprocess(site, ["--json"])
    assert not torch_imported
    assert [r["name"] for r in outputs[0] if r["distribution"] == "det-fake"] == ["MyNeck"]


def list_in_subprocess(site, *arg_lists: list[str]) -> tuple[list, bool]:
    """Run `list-components ARGS` (each a JSON listing) in a fresh process that sees only ``site``;
    returns the parsed outputs and whether torch got imported."""
    code = ("import sys, json, io, contextlib\n"
            "from detcore.cli.main import main\n"
            "outputs = []\n"
            f"for args in {[list(a) for a in arg_lists]!r}:\n"
            "    buf = io.StringIO()\n"
            "    with contextlib.redirect_stdout(buf):\n"
            "        assert main(['list-components', *args]) == 0\n"
            "    outputs.append(json.loads(buf.getvalue()))\n"
            "print(json.dumps([outputs, 'torch' in sys.modules]))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    outputs, torch_imported = json.loads(proc.stdout)
    return outputs, torch_imported


def test_list_components_json_fields(tmp_path, dist_writer, cli):
    site = dist_writer(tmp_path / "site", "det-fake",
                      entry_points={"detcore.necks": {"MyNeck": "fake_mod:MyNeck"}},
                      files={"fake_mod.py": NECK_SRC})
    out = cli("list-components", "--json", extra_path=[site])
    rows = json.loads(out.stdout)
    row = next(r for r in rows if r["name"] == "MyNeck")
    assert row == {"kind": "necks", "name": "MyNeck", "distribution": "det-fake", "version": "1.0",
                   "target": "fake_mod:MyNeck", "status": "available"}
    # the kernel's own components are listed under the kernel's distribution
    assert any(r["name"] == "SGD" and r["distribution"] == "detcore" for r in rows)


COST_SRC = """
class FocalCost:
    def __init__(self, weight: float = 1.0):
        self.weight = weight
"""


def test_a_family_introduces_a_kind_with_no_kernel_edit(fake_dist):
    # a kind no real family declares, so that installed families do not change the listing
    from detcore.registry import describe_kind, kinds

    fake_dist("det-fake-detr", entry_points={"detcore.toy_match_costs": {"FocalCost": "fake_cost:FocalCost"}},
              files={"fake_cost.py": COST_SRC})
    assert "toy_match_costs" in kinds()
    assert describe_kind("toy_match_costs") == "declared by det-fake-detr"
    assert [(s.kind, s.name, s.distribution) for s in components("toy_match_costs")] == [
        ("toy_match_costs", "FocalCost", "det-fake-detr")]
    assert build("toy_match_costs", {"type": "FocalCost", "weight": 2.0}).weight == 2.0
    with pytest.raises(UnknownComponentError, match="Unknown toy_match_costs component 'FocalCst'"):
        build("toy_match_costs", {"type": "FocalCst"})


def test_unknown_kind_names_the_known_kinds_including_new_ones(fake_dist):
    fake_dist("det-fake-detr", entry_points={"detcore.match_costs": {"FocalCost": "fake_cost:FocalCost"}},
              files={"fake_cost.py": COST_SRC})
    with pytest.raises(UnknownComponentError) as err:
        build("match_cost", {"type": "FocalCost"})
    msg = str(err.value)
    assert "Unknown component kind 'match_cost'. Did you mean match_costs?" in msg
    known = msg.split("Known kinds: ", 1)[1].split(".", 1)[0].split(", ")
    assert {"match_costs", "necks", "detectors", "converters"} <= set(known)


def test_configs_plugins_and_ops_groups_are_not_kinds(fake_dist):
    from detcore.registry import kinds

    fake_dist("det-fake", entry_points={"detcore.configs": {"det-fake": "fake_pkg.configs"},
                                        "detcore.plugins": {"fake": "fake_plugin"},
                                        "detcore.ops": {"fake": "fake_ops:make_backend"},
                                        "detcore.necks": {"MyNeck": "fake_mod:MyNeck"}},
              files={"fake_mod.py": NECK_SRC})
    assert not {"configs", "plugins", "ops"} & set(kinds())
    assert [s.kind for s in components() if s.distribution == "det-fake"] == ["necks"]
    with pytest.raises(UnknownComponentError, match="Unknown component kind 'ops'"):
        components("ops")


def test_catalog_kind_without_installed_provider_still_hints(fake_dist, monkeypatch):
    from detcore.registry import describe_kind, kinds, registry

    monkeypatch.setattr(registry, "_catalog", lambda: {"toy_semantic_heads": {"FusedSemanticHead": "det-fancy"}})
    assert "toy_semantic_heads" in kinds()
    assert describe_kind("toy_semantic_heads") == "provided by det-fancy (not installed)"
    assert components("toy_semantic_heads") == []
    with pytest.raises(UnknownComponentError, match="pip install det-fancy"):
        resolve("toy_semantic_heads", "FusedSemanticHead")


def test_cli_lists_a_new_kind_without_importing_torch(tmp_path, dist_writer):
    site = dist_writer(tmp_path / "site", "det-fake-detr",
                       entry_points={"detcore.toy_match_costs": {"FocalCost": "fake_cost:FocalCost"}},
                       files={"fake_cost.py": "raise SystemExit('component imported')\n"})
    (listed, kind_rows), torch_imported = list_in_subprocess(
        site, ["--kind", "toy_match_costs", "--json"], ["--kinds", "--json"])
    assert not torch_imported
    assert [(r["kind"], r["name"], r["distribution"]) for r in listed] == [
        ("toy_match_costs", "FocalCost", "det-fake-detr")]
    row = next(r for r in kind_rows if r["kind"] == "toy_match_costs")
    assert row == {"kind": "toy_match_costs", "components": 1, "description": "declared by det-fake-detr"}


def test_cli_unknown_kind_is_a_named_error(cli):
    out = cli("list-components", "--kind", "neck")
    assert out.returncode == 2
    assert "Unknown component kind 'neck'. Did you mean necks?" in out.stderr
    assert "Known kinds:" in out.stderr
