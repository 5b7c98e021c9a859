"""Every toolbox subcommand has --help naming its arguments (manual `003` §2.3 tools)."""

from __future__ import annotations

import pytest

from detcore.cli.main import main


@pytest.mark.parametrize("argv, words", [
    (["publish-model"], ["input", "output", "sha256"]),
    (["flops"], ["--shape", "flop_counter", "GMac"]),
    (["export", "onnx"], ["OUT.onnx", "--verify", "outside the graph"]),
    (["analyze-results"], ["C75", "--out-dir", "FN"]),
    (["test-robustness"], ["--corruptions", "--severities", "mPC", "rPC"]),
    (["convert-dataset", "cityscapes"], ["gtFine", "--splits"]),
])
def test_help(argv, words, capsys):
    with pytest.raises(SystemExit) as info:
        main([*argv, "--help"])
    assert info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for word in words:
        assert word in text, word
