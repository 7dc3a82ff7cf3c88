"""Data-plane benchmark: the Ray Data pipeline against a plain single-process loop doing the same work.

Both decode the same videos (N uniform frames each), run the same face stage, encode the crops and write Parquet
shards; the figure is frames per second, end to end. The single process is held to one thread (OpenCV and PyAV
decoding both multi-thread by default, which would make it a hidden multi-core baseline). Ray's cluster start-up
is timed apart from the pipeline. Run it with ``fas bench-data --out DIR``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fas.data.cache import (FrameStage, PrepareConfig, ShardWriter, face_workers, finish, fresh_output, limit_threads,
                            manifest_blocks, prepare)
from fas.data.manifest import make_manifest, read_manifest, write_manifest


@dataclasses.dataclass(frozen=True)
class Workload:
    """Synthetic OULU-style recordings (procedural faces, print and replay attacks) plus one corrupt file."""

    videos: int
    frame_size: int  # pixels, square; the face detector's cost grows with it
    video_frames: int  # frames in each video (``frames`` of them are sampled)


# "full" makes the single process run >= 60 s on a 2-core machine with Haar (about 35 ms a 320 px frame)
WORKLOADS = {
    "smallest": Workload(videos=6, frame_size=112, video_frames=20),
    "medium": Workload(videos=40, frame_size=320, video_frames=20),
    "full": Workload(videos=200, frame_size=320, video_frames=20),
}
KINDS = {1: "real", 2: "print", 3: "print", 4: "replay", 5: "replay"}  # synth's OULU file ids


def _write_one(args: tuple) -> dict:
    """One video of the workload (generated once per size, not timed)."""
    from fas.data import synth

    folder, index, wl = args
    file_id = index % 5 + 1
    rec = synth.Recording("train", phone=index % 2 + 1, session=index % 3 + 1, user=index // 5 + 1)
    path = Path(folder) / f"{index:04d}_{rec.name(file_id)}.avi"
    synth.write_video(path, synth.make_video(0, rec, file_id, size=wl.frame_size, n=wl.video_frames))
    kind = KINDS[file_id]
    return {"sample_id": path.stem, "path": str(path), "media": "video", "label": int(kind == "real"),
            "attack": kind, "domain": "bench", "subject": f"u{rec.user:03d}", "split": "train"}


def make_workload(out: Path, size: str) -> Path:
    """The workload's manifest under ``out``; generated once and reused while its description matches."""
    if size not in WORKLOADS:
        raise ValueError(f"unknown benchmark size {size!r}; choose one of {sorted(WORKLOADS)}")
    wl = WORKLOADS[size]
    folder, manifest, stamp = out / f"videos-{size}", out / f"manifest-{size}.parquet", out / f"workload-{size}.json"
    if manifest.exists() and stamp.exists() and json.loads(stamp.read_text()) == dataclasses.asdict(wl):
        return manifest
    from fas.data.synth import write_corrupt_video

    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(str(folder), i, wl) for i in range(wl.videos)]
    # threads, not processes: OpenCV and NumPy release the GIL for most of it, and a forked copy of a caller that
    # holds Ray's threads would be broken (a spawned one would rerun a caller's unguarded main script)
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        rows = list(pool.map(_write_one, jobs))
    bad = write_corrupt_video(folder / "corrupt.avi")
    rows.append({"sample_id": "corrupt", "path": str(bad), "media": "video", "label": 0, "attack": "print",
                 "domain": "bench", "subject": "u999", "split": "train"})
    write_manifest(make_manifest(rows, synthetic=True), manifest)
    stamp.write_text(json.dumps(dataclasses.asdict(wl)))
    return manifest


def single_process_prepare(cfg: PrepareConfig) -> dict:
    """``prepare``'s work (same blocks, same stage, same shard writer, a cache.json) in this process on one thread:
    the baseline the Ray Data pipeline must beat. OpenCV's thread count is restored afterwards."""
    import cv2

    threads = cv2.getNumThreads()
    cfg = dataclasses.replace(cfg, cpus_per_face_worker=1.0)  # FrameStage: 1 OpenCV and 1 FFmpeg thread
    manifest = read_manifest(cfg.manifest)
    writer = ShardWriter(fresh_output(cfg.out), cfg.rows_per_shard)
    start = time.perf_counter()
    try:
        stage = FrameStage(cfg)
        for block in manifest_blocks(manifest, cfg, workers=1):
            writer.add(stage(block))
    finally:
        limit_threads(threads)
    return finish(cfg, manifest, writer.close(), time.perf_counter() - start)


class _Identity:
    """A no-op actor stage: running it once boots what Ray Data starts once per cluster (its stats actor, its
    actor-location tracker), not once per pipeline."""

    def __call__(self, batch):
        return batch


def _start_ray() -> float:
    """Seconds to start (or join) the Ray cluster and Ray Data's own service actors, reported apart from the
    pipeline: the single process had its interpreter and imports before its clock began. The pipeline's own
    actors (a process each, the detector built in it) are started inside the pipeline's time."""
    import ray

    from fas.ray_utils import init_ray

    start = time.perf_counter()
    init_ray()
    ray.data.range(1).map_batches(_Identity, batch_size=None, compute=ray.data.ActorPoolStrategy(size=1),
                                  num_cpus=0.1).materialize()
    return time.perf_counter() - start


def _same_output(single: dict, ray: dict) -> None:
    """Both paths must have done the same work, or the ratio compares different things."""
    keys = ("frames_sampled", "frames_written", "faces_found", "no_face_kept", "no_face_dropped", "skipped_files")
    differ = {k: (single[k], ray[k]) for k in keys if single[k] != ray[k]}
    if differ:
        raise RuntimeError(f"the single process and Ray Data wrote different caches: {differ}")


def run_benchmark(out: Path, frames: int = 10, detector: str = "haar", size: str = "full") -> dict:
    """Single process first, then Ray Data on the same workload; a flat dict of the figures (sizes: WORKLOADS)."""
    import ray

    out = Path(out)
    base = PrepareConfig(manifest=str(make_workload(out / "data", size)), frames=frames, detector=detector,
                         size=128, progress=False)
    load, start = os.getloadavg()[0], time.perf_counter()
    single = single_process_prepare(dataclasses.replace(base, out=str(out / "single")))
    single_s = time.perf_counter() - start
    startup = _start_ray()
    ray_cfg = dataclasses.replace(base, out=str(out / "ray"))
    start = time.perf_counter()  # from here both paths are timed the same way: manifest read to cache.json
    summary = prepare(ray_cfg)
    ray_s = time.perf_counter() - start
    _same_output(single, summary)
    n = single["frames_sampled"]
    workers, cpus = face_workers(ray_cfg), ray.cluster_resources().get("CPU", 0)
    return {
        "synthetic": True, "size": size, "frame_size": WORKLOADS[size].frame_size, "detector": detector,
        "videos": summary["samples"], "skipped_files": len(summary["skipped_files"]), "frames": n,
        "single_process_s": round(single_s, 2), "ray_s": round(ray_s, 2), "ray_startup_s": round(startup, 2),
        "single_process_frames_per_s": round(n / single_s, 1), "ray_data_frames_per_s": round(n / ray_s, 1),
        "ratio_ray_over_single": round(single_s / ray_s, 2),
        "ratio_with_startup": round(single_s / (ray_s + startup), 2), "cpus": cpus, "face_workers": workers,
        "load_avg_1m_start": round(load, 2), "load_avg_1m_end": round(os.getloadavg()[0], 2),
        "bound": f"CPU-bound: {1000 * single_s / max(n, 1):.0f} ms of decode, detect, crop and encode per frame on "
                 f"one core; Ray Data runs {workers} actors on {cpus:g} CPUs, so {workers}x is the ceiling, less the "
                 f"actors' start-up, the driver's executor and shard writing, and anything else running on the "
                 f"machine (load averages above)",
    }
