"""Helpers of the bad-input tests."""

from __future__ import annotations


def one_paragraph(err: str, command: str) -> str:
    """The error message of ``detcore COMMAND`` (asserting it is one line, no traceback)."""
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(f"detcore {command}: error: ")]
    assert len(errors) == 1, err
    assert "Traceback" not in err, err
    assert sum(errors[0][len(f"detcore {command}: error: "):][:60] in line for line in lines) == 1, err  # said once
    return errors[0]
