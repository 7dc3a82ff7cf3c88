"""Storage drills: the disk fills up (a small tmpfs) or the folder turns read-only while fas writes to it.

What must hold: the write fails with an error naming the path (``fas.integrity.StorageError``), no half-written
file sits under a name a reader takes as whole, and everything finished before (earlier checkpoints, shards,
reports) stays byte-for-byte as it was; after space is freed the work goes on from there.
"""

from __future__ import annotations

import errno
import json
import subprocess
from pathlib import Path

from fas.drills import DrillResult, Stopwatch, small_filesystem


def remount(path: Path, options: str) -> None:
    """``mount -o remount,<options>`` of the tmpfs at ``path``: ``ro`` (read-only), ``size=64m`` (more space)."""
    subprocess.run(["mount", "-o", f"remount,{options}", str(path)], check=True, capture_output=True)


def digests(folder: Path, pattern: str = "*") -> dict[str, str]:
    from fas.integrity import sha256_file

    return {p.name: sha256_file(p) for p in sorted(folder.glob(pattern)) if p.is_file()}


def leftovers(folder: Path, keep: str) -> list[str]:
    """Files in ``folder`` not matching ``keep``: temporary or partial files a failed write left behind."""
    return sorted(p.name for p in folder.iterdir() if p.is_file() and not p.match(keep))


def storage_failure(call) -> tuple[BaseException | None, str]:
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - the drill records whatever was raised
        return exc, str(exc)
    return None, ""


# ---------------------------------------------------------------- cache shards
def synthetic_frames(n: int, size: int = 112, seed: int = 0):
    """``n`` generated bona fide face crops (``fas.data.synth``) as cache rows: frame_id, label, image (JPEG)."""
    import cv2
    import numpy as np
    import pyarrow as pa

    from fas.data.synth import make_subject, real_scene

    rng = np.random.default_rng(seed)
    scenes = [real_scene(rng, make_subject(seed, i % 7), size)[0] for i in range(n)]  # RGB floats in [0, 1]
    images = [cv2.imencode(".jpg", np.clip(s[..., ::-1] * 255, 0, 255).astype(np.uint8))[1].tobytes()
              for s in scenes]
    return pa.table({"frame_id": [f"synth{i:04d}#0" for i in range(n)], "label": [1] * n, "image": images})


def write_shards(frames, shard_dir: Path, rows: int, written: dict[str, str]) -> None:
    """The cue job's write loop (``write_shard`` per batch of ``rows``); ``written``: shard -> sha256 as finished."""
    from fas.data.cache import write_shard
    from fas.integrity import sha256_file

    for start in range(0, frames.num_rows, rows):
        name = write_shard(frames.slice(start, rows), shard_dir)
        written[name] = sha256_file(shard_dir / name)


def disk_full_cache(workdir: Path, frames=None, rows_per_shard: int = 8) -> DrillResult:
    """Shards of generated face crops written to a tmpfs sized for ~60% of them; then more space, and the resume
    (``fas.cues.done_frames``: what a rerun of the cue job skips) writes only the frames not in a finished shard."""
    import pyarrow.parquet as pq

    from fas.cues import done_frames
    from fas.integrity import StorageError

    frames = frames if frames is not None else synthetic_frames(96)
    payload = sum(len(b) for b in frames.column("image").to_pylist())
    disk, written, clock = Path(workdir) / "disk", {}, Stopwatch()
    with small_filesystem(disk, f"{max(64, int(payload * 0.6) // 1024)}k"):
        shard_dir = disk / "shards"
        shard_dir.mkdir()
        error, message = storage_failure(lambda: write_shards(frames, shard_dir, rows_per_shard, written))
        clock.mark()
        left = leftovers(shard_dir, "part-*.parquet")
        intact = digests(shard_dir, "part-*.parquet") == written
        rows = {n: pq.read_table(shard_dir / n).num_rows for n in written}
        done = done_frames(shard_dir)
        remount(disk, "size=64m")  # the fix: more space
        todo = frames.filter(pa_not_in(frames, done))
        write_shards(todo, shard_dir, rows_per_shard, written)
        recovery = clock.recovered()
        ids = pq.read_table(shard_dir, columns=["frame_id"]).column("frame_id").to_pylist()
    finished = sum(rows.values())
    lost = min(rows_per_shard, frames.num_rows - finished)  # made, not kept: the shard being written
    figures = {"frames": frames.num_rows, "shards_finished": len(rows), "rows_finished": finished,
               "error_type": type(error).__name__, "error": message,
               "error_is_enospc": isinstance(error, StorageError) and error.errno == errno.ENOSPC,
               "error_names_shard": f"{shard_dir}/part-" in message, "leftover_files": left, "frames_lost": lost,
               "finished_shards_unchanged": intact, "resume_skips": len(done), "rewritten": todo.num_rows,
               "frames_after_resume": len(ids), "unique_after_resume": len(set(ids))}
    passed = (figures["error_is_enospc"] and figures["error_names_shard"] and not left and intact
              and len(done) == finished > 0 and sorted(ids) == sorted(frames.column("frame_id").to_pylist()))
    return DrillResult("disk_full_cache", f"shard folder on a {payload * 0.6 / 2**20:.1f} MiB tmpfs that fills",
                       f"{type(error).__name__} naming the shard; {len(rows)} finished shards intact, no partial "
                       f"file; resume skipped {len(done)} frames, wrote the other {todo.num_rows}",
                       f"{lost} frames (the shard being written)", "none", recovery, passed, figures)


def pa_not_in(table, ids: set[str]):
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.invert(pc.is_in(table["frame_id"], value_set=pa.array(sorted(ids), pa.string())))


# ---------------------------------------------------------------- evaluation reports
def report_inputs(seed: int = 0):
    """Generated dev/test scores and their metrics, as an evaluation writes them."""
    import numpy as np
    import pandas as pd

    from fas.eval.report import evaluate_scores

    rng = np.random.default_rng(seed)

    def scores(n: int) -> pd.DataFrame:
        label = rng.integers(0, 2, n)
        return pd.DataFrame({"video": [f"v{i}" for i in range(n)], "label": label, "domain": "synth",
                             "attack": np.where(label == 1, "real", "print"), "score": rng.normal(label * 1.5, 1.0)})

    test = scores(60)
    return test, evaluate_scores(test, scores(60), interval=False)


def read_only_report(workdir: Path) -> DrillResult:
    """An evaluation folder holding a report turns read-only; the next ``write_results`` into it must fail naming
    the file and leave the old report whole; writing to another folder (what the error says to do) works."""
    from fas.eval.report import write_results
    from fas.integrity import StorageError

    test, metrics = report_inputs(0)
    disk, clock = Path(workdir) / "eval", Stopwatch()
    with small_filesystem(disk, "8m"):
        write_results(disk, test, metrics, {"protocol": "drill"})
        before = digests(disk)
        remount(disk, "ro")
        new_test, new_metrics = report_inputs(1)
        clock.mark()
        error, message = storage_failure(lambda: write_results(disk, new_test, new_metrics, {"protocol": "drill"}))
        after = digests(disk)
        elsewhere = write_results(Path(workdir) / "eval_writable", new_test, new_metrics, {"protocol": "drill"})
        recovery = clock.recovered()
    figures = {"files_before": sorted(before), "error_type": type(error).__name__, "error": message,
               "error_is_erofs": isinstance(error, StorageError) and error.errno == errno.EROFS,
               "error_names_file": f"{disk}/" in message, "report_unchanged": after == before,
               "written_elsewhere": sorted(p.name for p in elsewhere.values() if p.is_file())}
    passed = (figures["error_is_erofs"] and figures["error_names_file"] and after == before
              and json.loads(elsewhere["metrics.json"].read_text())["n_samples"] == len(new_test))
    return DrillResult("read_only_report", "evaluation folder remounted read-only before a report is rewritten",
                       f"{type(error).__name__} naming {getattr(error, 'path', '-')}; "
                       f"the old report's {len(before)} files unchanged; written to another folder",
                       "none", "none", recovery, passed, figures)


# ---------------------------------------------------------------- training checkpoints
def checkpoint_bytes(cfg) -> int:
    """A PDLE checkpoint's size: fp32 weights in ``model.pt`` + the DDP engine state (weights + Adam's two
    moments), about 4x the weights."""
    from fas.methods.pdle.model import create_pdle

    params = sum(p.numel() for p in create_pdle(cfg.model, None, cfg.num_levels).parameters())
    return 4 * 4 * params


def disk_full_checkpoint(workdir: Path, cache: Path | None = None) -> DrillResult:
    """A tiny 1-worker PDLE run (3 epochs, a checkpoint each) whose storage is a tmpfs with room for 1.5
    checkpoints: the 2nd checkpoint fills it. The 1st must stay whole and loadable; with more space, the same
    run resumes from it and finishes."""
    from fas.drills.fixtures import generated_cache
    from fas.engine import train
    from fas.integrity import verify_folder
    from fas.methods import get_method, read_model_meta
    from fas.ray_utils import init_ray

    workdir = Path(workdir)
    init_ray()
    cache = Path(cache) if cache else generated_cache(workdir)
    method, disk, clock = get_method("pdle"), workdir / "runs", Stopwatch()
    overrides = {"cache": str(cache), "storage_path": str(disk), "name": "full", "epochs": 3, "checkpoint_every": 1,
                 "num_workers": 1, "cpus_per_worker": 1, "max_failures": 0, "image_size": 64, "crop_size": 56}
    cfg = method.load_config(method.tiny_config, overrides)
    size = checkpoint_bytes(cfg) * 3 // 2 + 256 * 1024
    with small_filesystem(disk, f"{size // 1024}k"):
        error, message = storage_failure(lambda: train(cfg))
        clock.mark()
        run = disk / "full"
        first, second = run / "checkpoint_epoch_000000", run / "checkpoint_epoch_000001"
        first_ok = verify_folder(first) and read_model_meta(first)["method"] == "pdle"
        first_epoch = json.loads((first / "train_state.json").read_text())["epoch"]
        _, second_refused = storage_failure(lambda: read_model_meta(second))
        remount(disk, "size=256m")
        resumed = train(cfg)
        recovery = clock.recovered()
        state = json.loads((Path(resumed.checkpoint.path) / "train_state.json").read_text())
    figures = {"tmpfs_bytes": size, "error_type": type(error).__name__, "error": message[-2000:],
               "error_names_path": str(run) in message, "first_checkpoint_verified": first_ok,
               "first_checkpoint_epoch": first_epoch, "partial_checkpoint_refused": bool(second_refused),
               "resumed_from": [h.get("resumed_from") for h in state["history"]], "final_epoch": state["epoch"]}
    passed = (error is not None and figures["error_names_path"] and first_ok and bool(second_refused)
              and state["epoch"] == 2)
    return DrillResult("disk_full_checkpoint", "storage_path on a tmpfs with room for 1.5 checkpoints",
                       f"run failed at the 2nd checkpoint ({type(error).__name__}); 1st checkpoint verified; rerun "
                       "with more space resumed from it", "1 epoch (checkpoint_every 1)", "none", recovery, passed,
                       figures)
