"""Problem 8 of issue 17: a one-time preference between duplicate components; ``detcore env`` lists
conflicts and broken components."""

from __future__ import annotations

import json

import pytest
from bad_input_helpers import one_paragraph

NECK = "class MyNeck:\n    def __init__(self, channels: int = {}):\n        self.channels = channels\n"


@pytest.fixture
def duplicate_necks(fake_dist, tmp_path, monkeypatch):
    monkeypatch.setenv("DETCORE_CONFIG_DIR", str(tmp_path / "user-config"))
    monkeypatch.delenv("DETCORE_PREFER", raising=False)
    fake_dist("det-one", entry_points={"detcore.necks": {"MyNeck": "neck_one:MyNeck"}},
              files={"neck_one.py": NECK.format(8)})
    fake_dist("det-two", entry_points={"detcore.necks": {"MyNeck": "neck_two:MyNeck"}},
              files={"neck_two.py": NECK.format(16)})
    fake_dist("det-broken", entry_points={"detcore.necks": {"BadNeck": "neck_broken:BadNeck"}},
              files={"neck_broken.py": "raise ImportError('compiled part missing')\n"})


def test_duplicate_names_ask_for_a_preference(duplicate_necks):
    from detcore.errors import DuplicateComponentError
    from detcore.registry import build

    with pytest.raises(DuplicateComponentError) as info:
        build("necks", {"type": "MyNeck"})
    assert "detcore config prefer necks:MyNeck det-one" in str(info.value)
    assert 'DETCORE_PREFER="necks:MyNeck=det-one"' in str(info.value)


def test_environment_variable_preference(duplicate_necks, monkeypatch):
    from detcore.errors import DuplicateComponentError
    from detcore.registry import build

    monkeypatch.setenv("DETCORE_PREFER", "necks:MyNeck=det-two")
    assert build("necks", {"type": "MyNeck"}).channels == 16
    assert build("necks", {"type": "det-one::MyNeck"}).channels == 8  # an explicit type still wins
    monkeypatch.setenv("DETCORE_PREFER", "MyNeck=det_one")  # any kind, any spelling of the name
    assert build("necks", {"type": "MyNeck"}).channels == 8
    monkeypatch.setenv("DETCORE_PREFER", "necks:MyNeck=det-three")
    with pytest.raises(DuplicateComponentError, match="names 'det-three', which is not one of them"):
        build("necks", {"type": "MyNeck"})


def test_preference_file_written_once(duplicate_necks, tmp_path, detcore):
    from detcore.registry import build

    result = detcore("config", "prefer", "necks:MyNeck", "det-two")
    assert result.code == 0
    assert (tmp_path / "user-config" / "preferences.toml").read_text().strip().endswith('"necks:MyNeck" = "det-two"')
    assert build("necks", {"type": "MyNeck"}).channels == 16
    bad = detcore("config", "prefer", "necks:MyNeck", "det-nine")
    assert bad.code == 2 and "registered by det-one, det-two" in one_paragraph(bad.err, "config")


def test_env_lists_conflicts_and_broken_components(duplicate_necks, detcore, monkeypatch):
    monkeypatch.setenv("DETCORE_PREFER", "necks:MyNeck=det-two")
    result = detcore("env", "--json")
    assert result.code == 0
    info = json.loads(result.out)
    conflict = next(c for c in info["component_conflicts"] if c["name"] == "MyNeck")
    assert conflict["distributions"] == ["det-one", "det-two"] and conflict["preferred"] == "det-two"
    broken = next(b for b in info["broken_components"] if b["name"] == "BadNeck")
    assert broken["distribution"] == "det-broken" and "compiled part missing" in broken["error"]
    text = detcore("env").out
    assert "necks:MyNeck" in text and "-> det-two (preference in DETCORE_PREFER)" in text
    assert "necks:BadNeck from det-broken: ImportError: compiled part missing" in text
