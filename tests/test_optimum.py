"""An artifact loads in Hugging Face Optimum (`ORTModelForSequenceClassification.from_pretrained(dir)`).

optimum-onnx pins transformers 4.57 and cannot share edgecut's environment, so the check runs in a
separate one: scripts/check_optimum.sh creates it and sets EDGECUT_OPTIMUM_PYTHON; otherwise this skips.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from artifact_helpers import export_tiny

OPTIMUM_PYTHON = os.environ.get("EDGECUT_OPTIMUM_PYTHON")
VERIFY = Path(__file__).resolve().parent.parent / "scripts" / "optimum_verify.py"

pytestmark = pytest.mark.skipif(
    not OPTIMUM_PYTHON, reason="needs the optimum environment: run scripts/check_optimum.sh"
)


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_optimum_loads_the_artifact_and_reproduces_golden_logits(family, tiny_model_dirs, tiny_csv, tmp_path):
    artifact = export_tiny(tiny_model_dirs[family], tiny_csv, tmp_path / family, "--epochs", "1")
    done = subprocess.run([OPTIMUM_PYTHON, str(VERIFY), str(artifact)], capture_output=True, text=True, timeout=600)
    print(done.stdout)  # the per-check lines, shown with -s and in the CI log on failure
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["passed"] and result["versions"]["transformers"].startswith("4.57")
    for name in ("load", "labels", "logits"):
        assert result["checks"][name]["passed"], result["checks"][name]
