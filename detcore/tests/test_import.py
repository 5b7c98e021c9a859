"""`import detcore` stays cheap: it must not import torch."""

import subprocess
import sys


def test_import_detcore_does_not_import_torch():
    code = "import sys, detcore, detcore.registry, detcore.config, detcore.cli.main; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
