"""``fas bench`` keeps working: every pair runs side by side at the smallest size and reports what it measured.
A benchmark, not a timed test: nothing here asserts a speed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _bench(tmp_path: Path, *flags: str) -> tuple[dict, str]:
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "HF_HUB_OFFLINE": "1"}
    env.pop("RAY_ADDRESS", None)
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, "-m", "fas.cli", "bench", "--size", "smallest", "--work",
                           str(tmp_path / "work"), "--json", str(out), *flags], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text()), proc.stdout


@pytest.mark.slow
@pytest.mark.long  # ~200 s; tests/test_engine_speed.py and test_data_bench.py cover the paths
def test_bench_runs_each_distributed_path_beside_its_plain_loop(tmp_path):
    report, stdout = _bench(tmp_path, "--only", "train,cues,data,serve", "--gpu")
    rows = report["rows"]
    by_section = {}
    for row in rows:
        by_section.setdefault(row["section"], []).append(row)
    assert sorted(by_section) == ["cues", "data", "gpu", "serve", "train"]
    for row in rows:
        assert row["what"] in stdout  # the printed table holds every row
        if row["section"] != "gpu" and row["unit"] != "ms":
            assert row["ratio"] == round(row["distributed"] / row["plain"], 2)
    train = {row["workers"]: row for row in by_section["train"]}
    # the worker holding 2 CPUs trains with 2 threads (Ray starts it with one), each of 2 workers with 1
    assert train[1]["threads_per_worker"] == 2 and train[2]["threads_per_worker"] == 1
    assert train[1]["plain"] == train[2]["plain"]  # one bare loop, both rows beside it
    assert "0 errors" in by_section["serve"][0]["what"]
    assert report["machine"]["cpus"] == os.cpu_count() and report["size"] == "smallest"
    check_gpu_rows(by_section["gpu"], tmp_path / "work" / "gpu")


def check_gpu_rows(rows: list[dict], work: Path) -> None:
    """Without CUDA the GPU section runs the tiny configs in fp32 through the same code as on a GPU."""
    train = [r for r in rows if r["unit"] == "img/s" and r["what"].startswith("CLIPC8")]
    assert [r["what"].split("train step, ")[1].split(",")[0] for r in train] == [
        "bare PyTorch (fp32", "fp32 ZeRO-0", "fp32 ZeRO-2", "fp32 ZeRO-2"]
    plain = {r["gflops_per_img"] for r in train if "checkpointing" not in r["what"]}
    checkpointed = [r["gflops_per_img"] for r in train if "checkpointing" in r["what"]]
    assert len(plain) == 1 and checkpointed[0] > plain.pop()  # same model, same FLOPs; recompute costs more
    assert all(r["mfu"] is None and r["device"] == "CPU" for r in train)  # no peak known for a CPU
    dfg = [r for r in rows if r["what"].startswith("DFG")]
    assert len(dfg) == 2 and dfg[1]["gflops_per_img"] > dfg[0]["gflops_per_img"]
    assert [r["unit"] for r in rows if r["what"].startswith(("cues", "CLIPC8 clipc8-tiny predictor"))] == [
        "ms p50", "img/s"]
    assert (work / "generator" / "generator_config.json").is_file()
