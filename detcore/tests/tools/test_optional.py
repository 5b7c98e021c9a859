"""A missing optional package is an error naming the extra that installs it."""

from __future__ import annotations

import pytest

from detcore.optional import MissingExtraError, require


def test_require_names_the_extra():
    with pytest.raises(MissingExtraError, match=r"pip install 'detcore\[onnx\]'") as info:
        require("detcore_no_such_module", "onnx", "detcore export onnx", package="onnx")
    assert "detcore export onnx" in str(info.value) and isinstance(info.value, ImportError)


def test_require_returns_the_module():
    assert require("json", "none", "reading JSON").dumps([1]) == "[1]"
