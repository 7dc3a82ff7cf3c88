"""The README's quickstart exactly as written (default size), once: what a new user runs first."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from tests.test_cli import _fas


@pytest.mark.slow
@pytest.mark.long  # ~260 s; tests/test_cli.py runs the same quickstart at a smaller size
def test_the_readme_quickstart_at_its_default_size(tmp_path):
    proc = _fas("quickstart", "--out", str(tmp_path / "qs"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "qs" / "quickstart_summary.json").read_text())
    assert summary["class8"]["frames_written"] == summary["class8"]["samples"] == 1536  # every generated image
    assert summary["oulu_npu"]["frames_written"] == 10 * summary["oulu_npu"]["samples"] == 400  # 10 per video
    # quiet: one progress line per epoch, no Ray Data execution lines, no torch deprecation warnings
    assert proc.stdout.count("[clipc8_tiny] epoch ") == 10
    assert "Starting execution of Dataset" not in proc.stdout + proc.stderr
    assert "all_gather_into_tensor" not in proc.stdout + proc.stderr
    metrics = json.loads((tmp_path / "qs" / "eval" / "clipc8" / "metrics.json").read_text())
    scores = pd.read_csv(tmp_path / "qs" / "eval" / "clipc8" / "scores.csv")
    test = scores[scores.split == "test"]
    assert metrics["n_real"] + metrics["n_attack"] == len(test)
    assert metrics["auc"] == pytest.approx(roc_auc_score(test.label, test.score)) == summary["clipc8"]["auc"]
    served = Path(summary["clipc8"]["model"])
    assert json.loads((served / "metrics.json").read_text())["threshold"] == pytest.approx(metrics["threshold"])
