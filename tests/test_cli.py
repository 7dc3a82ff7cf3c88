"""The ``fas`` command line as a user runs it: the quickstart end to end, and clear errors for bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fas.cli import main
from fas.config import ConfigError, load_config
from fas.data.cache import PrepareConfig, read_cache_table


def _fas(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "HF_HUB_OFFLINE": "1"}
    env.pop("RAY_ADDRESS", None)
    return subprocess.run([sys.executable, "-m", "fas.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=900)


@pytest.mark.slow
def test_quickstart_runs_end_to_end_on_generated_data(tmp_path):
    proc = _fas("quickstart", "--size", "tiny", "--epochs", "3", "--out", str(tmp_path / "qs"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "SYNTHETIC" in proc.stdout and "files skipped: 0" in proc.stdout
    assert "PlacementGroupCleaner" not in proc.stdout + proc.stderr  # no warning a second from Ray Train
    summary = json.loads((tmp_path / "qs" / "quickstart_summary.json").read_text())
    assert summary["class8"]["frames_written"] == 216  # 3 per class x 8 classes x 3 domains x 3 splits
    oulu = summary["oulu_npu"]
    assert oulu["frames_sampled"] == oulu["frames_written"] == 9 * 10  # no_face: keep writes every frame
    # the faces counted are the cached frames with a detected face (and a box); the rest kept the whole frame
    detected = read_cache_table(tmp_path / "qs" / "cache" / "oulu_npu", columns=["face_detected", "face_box"])
    assert oulu["faces_found"] == sum(detected["face_detected"].to_pylist())
    assert [box is not None for box in detected["face_box"].to_pylist()] == detected["face_detected"].to_pylist()
    assert oulu["faces_found"] + oulu["no_face_kept"] == oulu["frames_written"]
    assert oulu["faces_found"] > oulu["no_face_kept"]  # the Haar detector finds the face in most generated frames
    assert "per-category accuracy" in proc.stdout and Path(summary["clipc8"]["report"]).exists()
    served = tmp_path / "qs" / "models" / "clipc8"
    assert {p.name for p in served.iterdir()} == {"model.pt", "model_config.json", "metrics.json", "checksums.json"}
    assert "threshold" in json.loads((served / "metrics.json").read_text())


def test_manifest_command_writes_parquet_and_prints_counts(tmp_path, capsys):
    from fas.data.synth import generate

    generate(tmp_path / "d", seed=1, size="tiny")
    assert main(["manifest", "oulu_npu", str(tmp_path / "d" / "oulu_npu"), "--out", str(tmp_path / "m.parquet")]) == 0
    out = capsys.readouterr().out
    assert "samples: 9" in out and "SYNTHETIC" in out and (tmp_path / "m.parquet").exists()


def test_user_errors_are_one_clear_line_and_exit_2(tmp_path, capsys):
    assert main(["manifest", "oulu_npu", str(tmp_path / "nope"), "--out", str(tmp_path / "m.parquet")]) == 2
    assert "is not a directory" in capsys.readouterr().err
    assert main(["prepare", str(tmp_path / "missing.parquet"), "--out", str(tmp_path / "c")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_flags_override_the_yaml_config(tmp_path):
    cfg_file = tmp_path / "p.yaml"
    cfg_file.write_text("frames: 4\ndetector: none\nsize: 64\n")
    cfg = load_config(PrepareConfig, cfg_file, {"frames": "7", "out": "x"})
    assert (cfg.frames, cfg.detector, cfg.size, cfg.out) == (7, "none", 64, "x")
    cfg_file.write_text("frame: 4\n")
    with pytest.raises(ConfigError, match="unknown keys \\['frame'\\]"):
        load_config(PrepareConfig, cfg_file)
