"""Fault drills: each one breaks a running part of the system on generated data and measures what it cost.

A drill is a function ``drill(workdir: Path) -> DrillResult`` (``workdir``: an empty folder it owns). The fault
suite (``tests/faults/``) runs the same functions and asserts on their measured figures, so ``fas drill`` prints
exactly what CI checks. Drills are looked up lazily ("module:function"), so listing them imports no torch.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

DRILLS: dict[str, str] = {
    # training (fas.drills.training): a Ray Train worker SIGKILLed mid-step, DeepSpeed
    "worker_killed_pdle": "fas.drills.training:worker_killed_pdle",
    "worker_killed_oanet": "fas.drills.training:worker_killed_oanet",
    "worker_killed_dfg": "fas.drills.training:worker_killed_dfg",
    # data jobs (fas.drills.jobs): a driver SIGKILLed halfway, then rerun
    "prepare_killed": "fas.drills.jobs:prepare_killed",
    "cue_driver_killed": "fas.drills.jobs:cue_driver_killed",
    # cluster (fas.drills.cluster): a worker node of a 3-node loopback cluster removed during a submitted job
    "node_removed": "fas.drills.cluster:node_removed",
    # storage (fas.drills.disk): no space left / a read-only folder while writing
    "disk_full_checkpoint": "fas.drills.disk:disk_full_checkpoint",
    "disk_full_cache": "fas.drills.disk:disk_full_cache",
    "read_only_report": "fas.drills.disk:read_only_report",
    # model folders (fas.drills.integrity): weights or config changed after publishing
    "tampered_weights": "fas.drills.integrity:tampered_weights",
    "truncated_weights": "fas.drills.integrity:truncated_weights",
    "tampered_config": "fas.drills.integrity:tampered_config",
    # Serve (fas.drills.serve)
    "serve_replica_killed": "fas.drills.serve:serve_replica_killed",
    "serve_face_killed": "fas.drills.serve:serve_face_killed",
    "serve_slow_client": "fas.drills.serve:serve_slow_client",
    "serve_overload": "fas.drills.serve:serve_overload",
    "serve_unhealthy_model": "fas.drills.serve:serve_unhealthy_model",
    # network (fas.drills.network): nothing of an embedded run listens or connects beyond loopback
    "loopback_only": "fas.drills.network:loopback_only",
}


@dataclasses.dataclass
class DrillResult:
    """One drill's row of the table, plus the measured figures the fault suite asserts on."""

    name: str
    fault: str  # what was done to the system
    outcome: str  # what the system did
    work_lost: str  # e.g. "3 steps (checkpoint_every 4)", "none"
    data_lost: str  # e.g. "none"
    recovery_s: float | None  # seconds from the fault until the work went on (None: nothing to recover)
    passed: bool  # every expected outcome held
    figures: dict = dataclasses.field(default_factory=dict)  # measured values (counts, hashes, steps)


def get_drill(name: str) -> Callable[[Path], DrillResult]:
    if name not in DRILLS:
        raise KeyError(f"no drill {name!r}; drills: {', '.join(DRILLS)}")
    module, function = DRILLS[name].split(":")
    return getattr(importlib.import_module(module), function)


class Stopwatch:
    """Time from a fault to recovery: ``mark()`` when the fault is injected, ``recovered()`` when work goes on."""

    def __init__(self):
        self.fault_at = self.recovered_at = None

    def mark(self) -> None:
        self.fault_at = time.perf_counter()

    def recovered(self) -> float | None:
        self.recovered_at = time.perf_counter()
        return None if self.fault_at is None else round(self.recovered_at - self.fault_at, 2)


@contextmanager
def small_filesystem(path: Path, size: str = "1m"):
    """A tmpfs of ``size`` mounted at ``path`` (root only): a disk that fills up. Unmounted on exit."""
    import subprocess

    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True,
                   capture_output=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


def run_drills(names: list[str], workdir: Path) -> list[DrillResult]:
    """Each drill in its own empty folder under ``workdir``; a drill that raises is a failed row, not a crash."""
    results = []
    for name in names:
        folder = Path(workdir) / name
        folder.mkdir(parents=True, exist_ok=True)
        try:
            results.append(get_drill(name)(folder))
        except Exception as error:  # noqa: BLE001 - the table reports it
            results.append(DrillResult(name, "-", f"drill failed: {type(error).__name__}: {error}", "?", "?", None,
                                       False))
    return results


def drill_table(results: list[DrillResult]) -> str:
    """The markdown table ``fas drill`` prints and the README quotes."""
    lines = ["| drill | fault | what the system did | work lost | data lost | recovery | ok |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        recovery = "-" if r.recovery_s is None else f"{r.recovery_s:.1f} s"
        lines.append(f"| {r.name} | {r.fault} | {r.outcome} | {r.work_lost} | {r.data_lost} | {recovery} | "
                     f"{'yes' if r.passed else '**no**'} |")
    return "\n".join(lines)


def write_json(results: list[DrillResult], path: Path, machine: str) -> None:
    Path(path).write_text(json.dumps({"machine": machine, "drills": [dataclasses.asdict(r) for r in results]},
                                     indent=2))
