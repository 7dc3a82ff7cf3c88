"""Data-job drills: the driver of ``fas prepare`` or ``jobs/make_cues.py`` SIGKILLed halfway, then rerun.

The driver runs as its own process joined to the drill's Ray cluster (as under ``ray job submit``) and is killed
once about half of its shards are on disk. What the drill checks is what a reader would see: the interrupted
folder is refused (no ``cache.json``), and the rerun's finished cache holds every frame exactly once, with the
same bytes (prepare) or the same cue values (cues: each frame's noise is seeded by its frame id) as an
uninterrupted run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from fas.drills import DrillResult, Stopwatch

HALF_WAY_TIMEOUT_S = 600


def run_driver_until(argv: list[str], shard_dir: Path, shards: int, log: Path) -> dict:
    """Start ``python argv`` and SIGKILL it once ``shards`` shard files exist: what was on disk at that moment."""
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    with open(log, "w") as out:
        driver = subprocess.Popen([sys.executable, *argv], stdout=out, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + HALF_WAY_TIMEOUT_S
        while len(list(shard_dir.glob("part-*.parquet"))) < shards:
            if driver.poll() is not None or time.monotonic() > deadline:
                driver.kill()
                raise RuntimeError(f"the driver ended (rc {driver.returncode}) or stalled before writing {shards} "
                                   f"shards; its output: {log}")
            time.sleep(0.05)
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    return {"shards_at_kill": sorted(p.name for p in shard_dir.glob("part-*.parquet")),
            "rc": driver.returncode}


def frames_by_id(cache: Path, columns: list[str]) -> dict[str, dict]:
    from fas.data.cache import read_cache_table

    table = read_cache_table(cache, columns=["frame_id", *columns]).to_pylist()
    return {row["frame_id"]: row for row in table}


def refused(cache: Path) -> bool:
    """Whether a reader refuses ``cache`` as incomplete."""
    from fas.data.cache import CacheError, read_cache_table

    try:
        read_cache_table(cache, columns=["frame_id"])
    except CacheError:
        return True
    return False


def cluster_address() -> str:
    import ray

    from fas.ray_utils import init_ray

    init_ray()
    return ray.get_runtime_context().gcs_address


def prepare_killed(workdir: Path, manifest: Path | None = None, reference: Path | None = None) -> DrillResult:
    """``fas prepare`` killed halfway: refused while partial; the rerun equals an uninterrupted cache byte for byte
    per frame id. ``reference``: an uninterrupted cache of ``manifest`` with the same settings (made when None)."""
    from fas.data.cache import PrepareConfig, load_index, prepare, read_cache_table
    from fas.drills.fixtures import PREPARE, generated_manifest

    workdir = Path(workdir)
    manifest = manifest or generated_manifest(workdir)
    settings = {**PREPARE, "rows_per_shard": 16}
    if reference is None:
        reference = workdir / "reference"
        prepare(PrepareConfig(manifest=str(manifest), out=str(reference), **settings))
    out = workdir / "interrupted"
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in settings.items() if k != "progress"]
    killed = run_driver_until(["-m", "fas.cli", "prepare", str(manifest), f"--out={out}", *flags, "--no-progress",
                               f"--address={cluster_address()}"], out / "shards", shards=2, log=workdir / "driver.log")
    was_refused, watch = refused(out), Stopwatch()
    watch.mark()
    prepare(PrepareConfig(manifest=str(manifest), out=str(out), **settings))
    recovery = watch.recovered()
    before, after = frames_by_id(reference, ["image"]), frames_by_id(out, ["image"])
    rows = read_cache_table(out, columns=["frame_id"]).num_rows
    same = before.keys() == after.keys() and all(before[f]["image"] == after[f]["image"] for f in before)
    figures = {"shards_at_kill": len(killed["shards_at_kill"]), "refused_while_partial": was_refused,
               "frames": len(after), "rows": rows, "reference_frames": len(before), "identical_bytes": same,
               "index_frames": load_index(out)["frames_written"]}
    passed = was_refused and same and rows == len(after) == len(before) == figures["index_frames"]
    return DrillResult("prepare_killed", f"fas prepare's driver SIGKILLed after {len(killed['shards_at_kill'])} shards",
                       "the partial cache was refused (no cache.json); the rerun rebuilt it whole",
                       f"{len(killed['shards_at_kill'])} shards redone", "none (the source files are untouched)",
                       recovery, passed, figures)


def cue_driver_killed(workdir: Path, cache: Path | None = None, generator: Path | None = None,
                      reference: Path | None = None) -> DrillResult:
    """``jobs/make_cues.py`` killed halfway: refused while partial; the rerun keeps the finished shards, makes only
    the missing frames, and every frame has one cue row equal to an uninterrupted run's."""
    from fas.cues import CueConfig, decode_cues, make_cues
    from fas.data.cache import read_cache_table
    from fas.drills.fixtures import CUES_TINY, generated_cache, tiny_cues, tiny_generator

    workdir = Path(workdir)
    cache = cache or generated_cache(workdir)
    generator = generator or tiny_generator(workdir, cache)
    reference = reference or tiny_cues(workdir, cache, generator)
    out = workdir / "interrupted_cues"
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in CUES_TINY.items()]
    source_frames = len(frames_by_id(cache, []))
    half = max(1, source_frames // CUES_TINY["rows_per_file"] // 2)
    killed = run_driver_until([str(Path(__file__).parents[2] / "jobs" / "make_cues.py"), f"--generator={generator}",
                               f"--cache={cache}", f"--out={out}", *flags, f"--address={cluster_address()}"],
                              out / "shards", shards=half, log=workdir / "driver.log")
    was_refused, watch = refused(out), Stopwatch()
    watch.mark()
    summary = make_cues(CueConfig(generator=str(generator), cache=str(cache), out=str(out), **CUES_TINY))
    recovery = watch.recovered()
    before, after = frames_by_id(reference, ["cue"]), frames_by_id(out, ["cue"])
    rows = read_cache_table(out, columns=["frame_id"]).num_rows
    worst = max((float(np.abs(decode_cues([before[f]["cue"]]) - decode_cues([after[f]["cue"]])).max())
                 for f in before if before[f]["cue"] is not None and f in after and after[f]["cue"] is not None),
                default=float("inf"))
    figures = {"shards_at_kill": len(killed["shards_at_kill"]), "refused_while_partial": was_refused,
               "resumed_frames": summary["resumed_frames"], "frames": len(after), "rows": rows,
               "source_frames": source_frames, "max_cue_difference": worst}
    passed = (was_refused and rows == len(after) == source_frames and before.keys() == after.keys()
              and summary["resumed_frames"] > 0 and worst <= 2e-3)
    return DrillResult("cue_driver_killed", f"make_cues' driver SIGKILLed after {len(killed['shards_at_kill'])} shards",
                       f"the partial cue cache was refused; the rerun kept {summary['resumed_frames']} finished frames "
                       "and made the rest", "the frames in flight at the kill (unwritten batch)", "none",
                       recovery, passed, figures)
