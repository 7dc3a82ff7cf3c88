"""Data-plane benchmark: the Ray Data pipeline against a plain single-process loop doing the same work.

Both decode the same videos (N uniform frames each), run the same face stage and write Parquet; the figure is
frames per second, end to end. Run it with ``fas bench-data --out DIR``.
"""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa

from fas.data.cache import FaceStage, PrepareConfig, frame_table, prepare, write_shard, decode_sample
from fas.data.manifest import read_manifest, write_manifest


def single_process_prepare(cfg: PrepareConfig) -> int:
    """The same decode -> face -> Parquet work in one process, one batch of 32 frames at a time."""
    stage = FaceStage(cfg)
    shard_dir = Path(cfg.out) / "shards"
    shard_dir.mkdir(parents=True, exist_ok=True)
    pending, frames = [], 0
    for row in read_manifest(cfg.manifest).to_pylist():
        pending.extend(decode_sample(row, cfg.frames, cfg.every_k))
        while len(pending) >= 32:
            batch, pending = pending[:32], pending[32:]
            frames += _process(stage, batch, shard_dir)
    return frames + (_process(stage, pending, shard_dir) if pending else 0)


def _process(stage: FaceStage, rows: list[dict], shard_dir: Path) -> int:
    table = stage(pa.Table.from_pylist(rows))
    write_shard(frame_table(table), shard_dir)
    return sum(1 for r in rows if not r["error"])


def run_benchmark(out: Path, frames: int = 10, detector: str = "haar", size: str = "quickstart") -> dict:
    from fas.data.readers import read_dataset
    from fas.data.synth import generate

    data = out / "data"
    if not (data / "oulu_npu").exists():
        generate(data, seed=0, size=size)
    manifest = write_manifest(read_dataset("oulu_npu", data / "oulu_npu"), out / "oulu_npu.parquet")
    cfg = PrepareConfig(manifest=str(manifest), out=str(out / "single"), frames=frames, detector=detector, size=128,
                        progress=False)
    start = time.perf_counter()
    n_single = single_process_prepare(cfg)
    single_s = time.perf_counter() - start
    ray_cfg = PrepareConfig(**{**cfg.__dict__, "out": str(out / "ray")})
    summary = prepare(ray_cfg)  # includes Ray Data start-up of its stages, not the cluster start
    return {
        "synthetic": True, "videos": summary["samples"], "frames": n_single, "detector": detector,
        "single_process_frames_per_s": round(n_single / single_s, 1),
        "ray_data_frames_per_s": summary["frames_per_second"],
        "ratio_ray_over_single": round(summary["frames_per_second"] / (n_single / single_s), 2),
    }
