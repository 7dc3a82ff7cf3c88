"""The frame cache: manifest -> (decode + sample frames) -> face stage -> Parquet shards, streamed on Ray Data.

Layout of a cache folder::

    CACHE/shards/part-<uuid>.parquet   one shard per writer batch: manifest columns + frame columns
    CACHE/cache.json                   written last: the shard list, counts, skipped files and the config

Every shard is written to a temporary name and renamed, and ``cache.json`` is written only after all shards:
an interrupted preparation leaves no ``cache.json``, and ``read_cache`` refuses such a folder.
Frame rows add to the manifest columns: ``frame_id``, ``frame_index``, ``image`` (encoded JPEG/PNG bytes),
``face_detected``, ``face_box`` (x0, y0, x1, y1 in the source frame, null when none), ``num_faces``. The row
schema stays open: later stages (e.g. AG-FAS cues) add columns of their own.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
import uuid
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fas.data.faces import decode_image, detect_and_crop, encode_image, make_detector
from fas.data.manifest import COLUMNS, is_synthetic, read_manifest
from fas.data.video import VideoError, sample_frames

CACHE_INDEX = "cache.json"
SHARD_DIR = "shards"


class CacheError(ValueError):
    """A frame cache is missing, incomplete or unreadable."""


@dataclasses.dataclass
class PrepareConfig:
    """``fas prepare`` options; every field is also a CLI flag."""

    manifest: str = ""
    out: str = ""
    frames: int = 10  # frames per video, uniformly spaced
    every_k: int | None = None  # instead of ``frames``: keep every k-th frame
    detector: str = "haar"  # none | haar | yunet
    detector_weights: str | None = None
    margin: float = 0.2  # grown on each side of the face box, as a fraction of its size
    size: int = 256
    no_face: str = "keep"  # keep (whole frame, counted) | drop (counted)
    image_format: str = "jpg"  # jpg | png
    rows_per_shard: int = 512
    face_workers: int = 2  # max actors of the face stage
    cpus_per_face_worker: float = 0.5
    cpus_per_decode_task: float = 0.5
    address: str | None = None  # Ray cluster to join; embedded local cluster when unset
    progress: bool = True


# ---------------------------------------------------------------- stage 1: decode (one sample -> its frames)
def _frame_row(row: dict, index: int, rgb: np.ndarray | None, error: str = "") -> dict:
    out = {c: row.get(c) for c in row}
    out["frame_index"] = index
    out["frame_id"] = f"{row['sample_id']}#{index}"
    out["frame"] = b"" if rgb is None else np.ascontiguousarray(rgb).tobytes()
    out["frame_shape"] = [0, 0, 0] if rgb is None else list(rgb.shape)
    out["error"] = error
    return out


def decode_sample(row: dict, frames: int, every_k: int | None) -> list[dict]:
    """One manifest row -> one row per kept frame, or one ``error`` row naming why the file was skipped."""
    try:
        if row["media"] == "video":
            picked = sample_frames(row["path"], frames, every_k)
        else:
            picked = [(int(row.get("frame_index") or 0), decode_image(Path(row["path"]).read_bytes()))]
    except (VideoError, ValueError, OSError) as exc:
        return [_frame_row(row, -1, None, error=str(exc))]
    return [_frame_row(row, i, rgb) for i, rgb in picked]


# ---------------------------------------------------------------- stage 2: faces (actor pool)
class FaceStage:
    """Ray Data ``map_batches`` callable: detect, crop and encode each frame of a batch."""

    def __init__(self, cfg: PrepareConfig):
        self.cfg = cfg
        self.detector = make_detector(cfg.detector, cfg.detector_weights)

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch.select(["frame", "frame_shape", "error"]).to_pylist()
        images, detected, boxes, counts, dropped = [], [], [], [], []
        for row in rows:
            res = None
            if not row["error"]:
                rgb = np.frombuffer(row["frame"], np.uint8).reshape(row["frame_shape"])
                res = detect_and_crop(self.detector, rgb, margin=self.cfg.margin, size=self.cfg.size,
                                      no_face=self.cfg.no_face)
            crop = None if res is None else res.crop
            images.append(b"" if crop is None else encode_image(crop, self.cfg.image_format))
            detected.append(bool(res and res.detected))
            boxes.append(list(res.box) if res and res.box else None)
            counts.append(res.num_faces if res else 0)
            dropped.append(res is not None and crop is None)
        out = batch.drop_columns(["frame", "frame_shape"])
        new = {"image": pa.array(images, pa.binary()), "face_detected": pa.array(detected, pa.bool_()),
               "face_box": pa.array(boxes, pa.list_(pa.int32(), 4)), "num_faces": pa.array(counts, pa.int32()),
               "dropped": pa.array(dropped, pa.bool_())}
        for name, column in new.items():
            out = out.append_column(name, column)
        return out


# ---------------------------------------------------------------- stage 3: write shards atomically
def frame_table(batch: pa.Table) -> pa.Table:
    """The kept frames of a batch, with the cache's column order (manifest columns first)."""
    ok = pc.and_(pc.equal(batch["error"], ""), pc.invert(batch["dropped"]))
    kept = batch.filter(ok).drop_columns(["error", "dropped"])
    kept = kept.set_column(kept.schema.get_field_index("frame_index"), "frame_index",
                           kept["frame_index"].cast(pa.int32()))
    first = [c for c in COLUMNS if c in kept.column_names]
    return kept.select(first + [c for c in kept.column_names if c not in first])


def write_shard(table: pa.Table, shard_dir: Path) -> str | None:
    if table.num_rows == 0:
        return None
    name = f"part-{uuid.uuid4().hex[:12]}.parquet"
    tmp = shard_dir / f".{name}.tmp"
    pq.write_table(table, tmp)
    tmp.replace(shard_dir / name)
    return name


def write_batch(batch: pa.Table, shard_dir: str) -> pa.Table:
    """Ray Data ``map_batches`` function: writes one shard per batch, returns one stats row."""
    shard = write_shard(frame_table(batch), Path(shard_dir))
    rows = batch.select(["path", "error", "dropped", "face_detected", "media"]).to_pylist()
    errors = sorted({(r["path"], r["error"]) for r in rows if r["error"]})
    good = [r for r in rows if not r["error"]]
    stats = {
        "shard": shard or "",
        "frames_sampled": len(good),
        "frames_written": sum(1 for r in good if not r["dropped"]),
        "faces_found": sum(1 for r in good if r["face_detected"]),
        "no_face_dropped": sum(1 for r in good if r["dropped"]),
        "no_face_kept": sum(1 for r in good if not r["face_detected"] and not r["dropped"]),
        "errors": json.dumps(errors),
    }
    return pa.Table.from_pylist([stats])


# ---------------------------------------------------------------- the pipeline
def _merge_stats(stat_rows: list[dict]) -> dict:
    totals = Counter()
    shards, skipped = [], []
    for row in stat_rows:
        if row["shard"]:
            shards.append(row["shard"])
        skipped.extend(json.loads(row["errors"]))
        for key in ("frames_sampled", "frames_written", "faces_found", "no_face_dropped", "no_face_kept"):
            totals[key] += int(row[key])
    skipped = sorted({tuple(s) for s in skipped})
    return {"shards": sorted(shards), **totals, "skipped_files": [{"path": p, "reason": r} for p, r in skipped]}


def prepare(cfg: PrepareConfig) -> dict:
    """Prepare the frame cache of ``cfg.manifest`` in ``cfg.out``; returns the summary also saved in cache.json."""
    import ray

    from fas.ray_utils import init_ray

    manifest = read_manifest(cfg.manifest)
    out = Path(cfg.out)
    shard_dir = out / SHARD_DIR
    (out / CACHE_INDEX).unlink(missing_ok=True)  # the folder is incomplete from here until the end
    shutil.rmtree(shard_dir, ignore_errors=True)
    shard_dir.mkdir(parents=True)
    init_ray(cfg.address)
    context = ray.data.DataContext.get_current()
    shown, context.enable_progress_bars = context.enable_progress_bars, cfg.progress
    start = time.perf_counter()
    try:
        stat_rows = build_pipeline(manifest, cfg, shard_dir).take_all()
    finally:  # later datasets of the same driver (training, scoring) keep the caller's setting
        context.enable_progress_bars = shown
    summary = _merge_stats(stat_rows)
    summary.update(
        seconds=round(time.perf_counter() - start, 2), samples=manifest.num_rows, synthetic=is_synthetic(manifest),
        config=dataclasses.asdict(cfg), manifest_counts=_manifest_counts(manifest),
    )
    summary["frames_per_second"] = round(summary["frames_sampled"] / max(summary["seconds"], 1e-9), 1)
    tmp = out / f".{CACHE_INDEX}.tmp"
    tmp.write_text(json.dumps(summary, indent=2))
    tmp.replace(out / CACHE_INDEX)
    return summary


def build_pipeline(manifest: pa.Table, cfg: PrepareConfig, shard_dir: Path):
    """The streaming Ray Data plan; nothing in it materialises the dataset (the manifest is only file paths)."""
    import ray

    blocks = max(1, min(manifest.num_rows, 64))
    ds = ray.data.from_arrow(manifest).repartition(blocks)
    ds = ds.flat_map(decode_sample, fn_kwargs={"frames": cfg.frames, "every_k": cfg.every_k},
                     num_cpus=cfg.cpus_per_decode_task)
    ds = ds.map_batches(
        FaceStage, fn_constructor_kwargs={"cfg": cfg}, batch_size=32, batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=max(1, cfg.face_workers)),
        num_cpus=cfg.cpus_per_face_worker,
    )
    return ds.map_batches(write_batch, fn_kwargs={"shard_dir": str(shard_dir)}, batch_size=cfg.rows_per_shard,
                          batch_format="pyarrow", num_cpus=0.25)


def _manifest_counts(manifest: pa.Table) -> dict:
    from fas.data.manifest import summarize

    s = summarize(manifest)
    return {k: s[k] for k in ("by_split", "by_label", "by_attack", "by_domain")}


# ---------------------------------------------------------------- reading a cache back
def load_index(cache_dir: str | Path) -> dict:
    index = Path(cache_dir) / CACHE_INDEX
    if not index.exists():
        raise CacheError(f"{cache_dir} is not a complete frame cache (no {CACHE_INDEX}); "
                         f"run `fas prepare MANIFEST --out {cache_dir}` (again, if it was interrupted)")
    return json.loads(index.read_text())


def shard_paths(cache_dir: str | Path) -> list[str]:
    index = load_index(cache_dir)
    paths = [str(Path(cache_dir) / SHARD_DIR / s) for s in index["shards"]]
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        raise CacheError(f"frame cache {cache_dir} lists shards that are missing: {missing[:3]}")
    if not paths:
        raise CacheError(f"frame cache {cache_dir} holds no frames")
    return paths


def read_cache(cache_dir: str | Path, columns: list[str] | None = None):
    """The cache as a streaming Ray Dataset (the listed shards only)."""
    import ray

    ds = ray.data.read_parquet(shard_paths(cache_dir))
    return ds.select_columns(columns) if columns else ds


def read_cache_table(cache_dir: str | Path, columns: list[str] | None = None) -> pa.Table:
    """The cache as one pyarrow table, for small caches and single-process tools."""
    return pa.concat_tables([pq.read_table(p, columns=columns) for p in shard_paths(cache_dir)])


def format_prepare_summary(summary: dict) -> str:
    synth = " (SYNTHETIC data generated by fas synth)" if summary.get("synthetic") else ""
    lines = [f"== frame cache{synth} ==",
             f"samples in manifest: {summary['samples']}",
             f"frames sampled: {summary['frames_sampled']}  written: {summary['frames_written']}  "
             f"faces found: {summary['faces_found']}  no face (kept whole frame): {summary['no_face_kept']}  "
             f"no face (dropped): {summary['no_face_dropped']}",
             f"shards: {len(summary['shards'])}  time: {summary['seconds']} s  ({summary['frames_per_second']} frames/s)"]
    for key, counts in summary["manifest_counts"].items():
        lines.append(f"{key.replace('_', ' ')}: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
    skipped = summary["skipped_files"]
    lines.append(f"files skipped: {len(skipped)}")
    lines += [f"  - {s['path']}: {s['reason']}" for s in skipped]
    return "\n".join(lines)
