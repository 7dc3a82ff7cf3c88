"""The frame cache: manifest -> (decode, sample frames, detect, crop, encode) -> Parquet shards, on Ray Data.

One actor stage does the per-frame work where the frame is decoded (raw frames never cross the object store), one
actor per CPU, one OpenCV / FFmpeg thread per actor; the driver gathers its output into fixed-size shards.

Layout of a cache folder::

    CACHE/shards/part-<uuid>.parquet   ``rows_per_shard`` frames each: manifest columns + frame columns
    CACHE/cache.json                   written last: the shard list, counts, skipped files and the config

Every shard is written to a temporary name and renamed (a full disk removes the temporary file and names the
shard), and ``cache.json`` is written only after all shards:
an interrupted preparation leaves no ``cache.json``, and ``read_cache`` refuses such a folder.
Frame rows add to the manifest columns: ``frame_id``, ``frame_index``, ``image`` (encoded JPEG/PNG bytes),
``face_detected``, ``face_box`` (x0, y0, x1, y1 in the source frame, null when none), ``num_faces``, ``yaw`` /
``pitch`` and ``landmarks`` (the five points as x0, y0, ..., x4, y4 in the saved crop's pixels, float32; all three
null unless the detector gives landmarks). The row schema stays open: later stages (e.g. AG-FAS cues) add columns
of their own.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fas.data.faces import decode_image, detect_and_crop, encode_image, make_detector
from fas.data.pose import head_pose
from fas.data.manifest import COLUMNS, is_synthetic, read_manifest
from fas.data.video import VideoError, sample_frames
from fas.integrity import write_atomic, write_text

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
    max_yaw: float | None = None  # drop faces turned further (degrees; AG-FAS's real-face set); needs yunet
    max_pitch: float | None = None  # drop faces tilted further (degrees); needs a landmark detector (yunet)
    image_format: str = "jpg"  # jpg | png
    rows_per_shard: int = 512
    face_workers: int | None = None  # actors of the frame stage; unset: as many as the cluster's CPUs hold
    cpus_per_face_worker: float = 1.0  # also the OpenCV / FFmpeg threads of each actor (at least 1)
    frames_per_block: int = 32  # about this many frames per task (a video counts ``frames``, an image 1)
    address: str | None = None  # Ray cluster to join; embedded local cluster when unset
    progress: bool = True


FRAME_TYPES = {"frame_index": pa.int32(), "frame_id": pa.string(), "image": pa.binary(),
               "face_detected": pa.bool_(), "face_box": pa.list_(pa.int32(), 4), "num_faces": pa.int32(),
               "dropped": pa.bool_(), "yaw": pa.float32(), "pitch": pa.float32(), "pose_dropped": pa.bool_(),
               "landmarks": pa.list_(pa.float32(), 10), "error": pa.string()}  # the frame columns a FrameStage appends


def limit_threads(n: int) -> None:
    """Hold OpenCV (and torch, when loaded) to ``n`` threads. Each library starts a thread per core of the machine
    by default, so a pool of workers, each owning one core, would run workers x cores threads on the same cores;
    the single-process baseline calls it with 1 to stay single-threaded."""
    cv2.setNumThreads(max(1, n))
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(max(1, n))


# ---------------------------------------------------------------- stage 1: manifest rows -> frame rows
def decode_sample(row: dict, frames: int, every_k: int | None, threads: int = 0) -> tuple[list, str]:
    """One manifest row -> its kept ``(frame_index, rgb)`` frames and ``""``, or no frames and why it was skipped."""
    try:
        if row["media"] == "video":  # a reader's max_frames (SiW protocol 1) keeps sampling to the first frames
            return sample_frames(row["path"], frames, every_k, threads, row.get("max_frames")), ""
        return [(int(row.get("frame_index") or 0), decode_image(Path(row["path"]).read_bytes()))], ""
    except (VideoError, ValueError, OSError) as exc:
        return [], str(exc)


class FrameStage:
    """Ray Data ``map_batches`` callable (actor pool: the detector is built once per actor): manifest rows in, one
    row per kept frame out, plus one ``error`` row per skipped file. Decoding, detection, cropping and encoding
    happen in the same worker, so only small encoded crops cross the object store, never raw frames."""

    def __init__(self, cfg: PrepareConfig):
        self.cfg = cfg
        self.threads = max(1, int(cfg.cpus_per_face_worker))
        limit_threads(self.threads)
        self.detector = make_detector(cfg.detector, cfg.detector_weights)

    def __call__(self, batch: pa.Table) -> pa.Table:
        take, columns = [], {name: [] for name in FRAME_TYPES}
        for i, row in enumerate(batch.to_pylist()):
            picked, error = decode_sample(row, self.cfg.frames, self.cfg.every_k, self.threads)
            for index, rgb in picked or [(-1, None)]:
                take.append(i)
                crop = self._crop(rgb) if rgb is not None else (b"", False, None, 0, False, None, None, False, None)
                for name, value in zip(FRAME_TYPES, (index, f"{row['sample_id']}#{index}", *crop, error)):
                    columns[name].append(value)
        out = batch.take(pa.array(take, pa.int64()))  # manifest columns keep their types
        out = out.drop_columns([c for c in FRAME_TYPES if c in out.column_names])
        for name, kind in FRAME_TYPES.items():
            out = out.append_column(name, pa.array(columns[name], kind))
        return out

    def _crop(self, rgb: np.ndarray) -> tuple:
        """(encoded image, detected, box, number of faces, dropped, yaw, pitch, dropped for its pose, landmarks in
        the crop's pixels as x0, y0, ..., x4, y4) of a frame."""
        res = detect_and_crop(self.detector, rgb, margin=self.cfg.margin, size=self.cfg.size,
                              no_face=self.cfg.no_face)
        yaw = pitch = None
        if res.landmarks is not None:
            yaw, pitch = head_pose(res.landmarks, rgb.shape[1], rgb.shape[0])
        deviated = yaw is not None and pose_deviates(yaw, pitch, self.cfg)
        image = b"" if res.crop is None or deviated else encode_image(res.crop, self.cfg.image_format)
        landmarks = res.crop_landmarks()
        return (image, res.detected, list(res.box) if res.box else None, res.num_faces, res.crop is None or deviated,
                yaw, pitch, deviated, None if landmarks is None else landmarks.reshape(-1).tolist())


def pose_deviates(yaw: float, pitch: float, cfg: PrepareConfig) -> bool:
    return (cfg.max_yaw is not None and abs(yaw) > cfg.max_yaw) or (cfg.max_pitch is not None
                                                                    and abs(pitch) > cfg.max_pitch)


def check_pose_filter(cfg: PrepareConfig) -> None:
    """A pose threshold needs landmarks, which only a landmark detector gives: refuse before any work."""
    from fas.data.faces import DETECTORS, gives_landmarks

    wanted = cfg.max_yaw is not None or cfg.max_pitch is not None
    if wanted and not gives_landmarks(DETECTORS.get(cfg.detector)):
        landmark_detectors = sorted(name for name, kind in DETECTORS.items() if gives_landmarks(kind))
        raise CacheError(f"max_yaw/max_pitch need face landmarks: use a detector that gives them "
                         f"({landmark_detectors}, e.g. --detector yunet --detector-weights face_detection_yunet.onnx)"
                         f", not {cfg.detector!r}")


# ---------------------------------------------------------------- stage 2: write shards atomically
def frame_table(batch: pa.Table) -> pa.Table:
    """The kept frames of a batch, with the cache's column order (manifest columns first); label stays int64."""
    ok = pc.and_(pc.equal(batch["error"], ""), pc.invert(batch["dropped"]))
    kept = batch.filter(ok).drop_columns(["error", "dropped", "pose_dropped"])
    kept = kept.set_column(kept.schema.get_field_index("label"), "label", kept["label"].cast(pa.int64()))
    first = [c for c in COLUMNS if c in kept.column_names]
    return kept.select(first + [c for c in kept.column_names if c not in first])


def write_shard(table: pa.Table, shard_dir: Path) -> str | None:
    if table.num_rows == 0:
        return None
    name = f"part-{uuid.uuid4().hex[:12]}.parquet"
    write_atomic(shard_dir / name, lambda tmp: pq.write_table(table, tmp))  # whole or absent; errors name the file
    return name


COUNTED = ("frames_sampled", "frames_written", "faces_found", "no_face_dropped", "no_face_kept", "pose_dropped")


class ShardWriter:
    """Gathers frame batches into shards of exactly ``rows_per_shard`` rows (the last one fewer) and counts them.

    It runs in the driver: shard size does not depend on how Ray Data cut its blocks (no shard per tiny batch), and
    shards land next to ``cache.json`` whichever node made the frames."""

    def __init__(self, shard_dir: Path, rows_per_shard: int):
        self.shard_dir, self.rows_per_shard = shard_dir, max(1, rows_per_shard)
        self.pending: list[pa.Table] = []
        self.shards: list[str] = []
        self.counts = Counter({key: 0 for key in COUNTED})
        self.skipped: set[tuple[str, str]] = set()

    def add(self, batch: pa.Table) -> None:
        self._count(batch)
        kept = frame_table(batch)
        if kept.num_rows:
            self.pending.append(kept)
        while sum(t.num_rows for t in self.pending) >= self.rows_per_shard:
            self._flush(self.rows_per_shard)

    def _flush(self, rows: int) -> None:
        table = pa.concat_tables(self.pending)
        self.shards.append(write_shard(table.slice(0, rows), self.shard_dir))
        self.pending = [table.slice(rows)] if table.num_rows > rows else []

    def _count(self, batch: pa.Table) -> None:
        good, dropped, found = pc.equal(batch["error"], ""), batch["dropped"], batch["face_detected"]
        kept, posed = pc.and_(good, pc.invert(dropped)), pc.and_(good, batch["pose_dropped"])
        for key, mask in zip(COUNTED, (good, kept, pc.and_(good, found),
                                       pc.and_(pc.and_(good, dropped), pc.invert(posed)),
                                       pc.and_(kept, pc.invert(found)), posed)):
            self.counts[key] += pc.sum(mask.cast(pa.int64())).as_py() or 0
        bad = batch.filter(pc.invert(good)).select(["path", "error"]).to_pylist()
        self.skipped.update((r["path"], r["error"]) for r in bad)

    def close(self) -> dict:
        """Writes what is left; the counts of the summary."""
        if self.pending:
            self._flush(sum(t.num_rows for t in self.pending))
        return {"shards": sorted(self.shards), **self.counts,
                "skipped_files": [{"path": p, "reason": r} for p, r in sorted(self.skipped)]}


# ---------------------------------------------------------------- the pipeline
def fresh_output(out: str | Path) -> Path:
    """The (emptied) shard folder; ``cache.json`` goes first, so the folder reads as incomplete until the end."""
    out = Path(out)
    (out / CACHE_INDEX).unlink(missing_ok=True)
    shard_dir = out / SHARD_DIR
    shutil.rmtree(shard_dir, ignore_errors=True)
    shard_dir.mkdir(parents=True)
    return shard_dir


def finish(cfg: PrepareConfig, manifest: pa.Table, counts: dict, seconds: float, sources: dict | None = None) -> dict:
    """The summary, written to ``cache.json`` last (temporary name, then renamed) and returned."""
    summary = dict(counts)
    if sources:
        summary["sources"] = sources
    summary.update(
        seconds=round(seconds, 2), samples=manifest.num_rows, synthetic=is_synthetic(manifest),
        config=dataclasses.asdict(cfg), manifest_counts=_manifest_counts(manifest),
    )
    summary["frames_per_second"] = round(summary["frames_sampled"] / max(summary["seconds"], 1e-9), 1)
    out = Path(cfg.out)
    write_text(out / CACHE_INDEX, json.dumps(summary, indent=2))
    return summary


def prepare(cfg: PrepareConfig, sources: dict | None = None) -> dict:
    """Prepare the frame cache of ``cfg.manifest`` in ``cfg.out``; returns the summary also saved in cache.json
    (with ``sources``, the per-source counts of a merged manifest).

    ``seconds`` counts the pipeline (its actors' start included) to the last shard, not an embedded cluster's start."""
    import ray

    from fas.ray_utils import init_ray

    check_pose_filter(cfg)
    manifest = read_manifest(cfg.manifest)
    writer = ShardWriter(fresh_output(cfg.out), cfg.rows_per_shard)
    init_ray(cfg.address)
    context = ray.data.DataContext.get_current()
    shown, context.enable_progress_bars = context.enable_progress_bars, cfg.progress
    start = time.perf_counter()
    try:
        for batch in build_pipeline(manifest, cfg).iter_batches(batch_size=None, batch_format="pyarrow"):
            writer.add(batch)
    finally:  # later datasets of the same driver (training, scoring) keep the caller's setting
        context.enable_progress_bars = shown
    return finish(cfg, manifest, writer.close(), time.perf_counter() - start, sources)


def face_workers(cfg: PrepareConfig) -> int:
    """``cfg.face_workers``, or as many actors as the cluster's CPUs hold: the stage is CPU-bound, and the
    driver (which writes the shards) and Ray Data's executor need too little to reserve a CPU of their own."""
    if cfg.face_workers:
        return cfg.face_workers
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1) // cfg.cpus_per_face_worker))


def manifest_blocks(manifest: pa.Table, cfg: PrepareConfig, workers: int) -> list[pa.Table]:
    """Manifest slices of about ``cfg.frames_per_block`` frames, and at least 4 per worker where the manifest
    allows: one slice is one task, so it must outweigh a task's overhead (ms), and the last ones must be short
    enough that no worker idles long at the end."""
    weights = [cfg.frames if media == "video" else 1 for media in manifest["media"].to_pylist()]
    target = max(1, min(cfg.frames_per_block, sum(weights) // (4 * workers)))
    blocks, start, acc = [], 0, 0
    for i, weight in enumerate(weights):
        if acc and acc + weight > target:
            blocks.append(manifest.slice(start, i - start))
            start, acc = i, 0
        acc += weight
    return blocks + [manifest.slice(start)]


def build_pipeline(manifest: pa.Table, cfg: PrepareConfig):
    """The streaming Ray Data plan: manifest slices (file paths only) -> frame rows on a fixed actor pool, started
    whole at once (an autoscaling pool starts with one actor and grows late on a short job)."""
    import ray

    from fas.ray_utils import actor_pool

    workers = face_workers(cfg)
    blocks = manifest_blocks(manifest, cfg, workers)
    pool = actor_pool(min(workers, len(blocks)))
    return ray.data.from_arrow(blocks).map_batches(
        FrameStage, fn_constructor_kwargs={"cfg": cfg}, batch_size=None, batch_format="pyarrow", compute=pool,
        num_cpus=cfg.cpus_per_face_worker,
    )


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


def crop_record(cache_dir: str | Path) -> dict | None:
    """How the cache's frames were cropped, as a model folder's ``face`` record (``fas predict``, Serve and
    ``fas label`` crop new images the same way): the whole frame when it was prepared without a detector, else the
    face crop of its detector, margin and size. None when the cache records no preparation settings."""
    index = Path(cache_dir) / CACHE_INDEX
    config = json.loads(index.read_text()).get("config") if index.is_file() else None
    if not config or "detector" not in config:
        return None
    if config["detector"] == "none":
        return {"input": "frame", "detector": "none", "size": config["size"]}
    return {"input": "face", "detector": config["detector"], "detector_weights": config.get("detector_weights"),
            "margin": config["margin"], "size": config["size"]}


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
             f"no face (dropped): {summary['no_face_dropped']}  deviated pose (dropped): "
             f"{summary.get('pose_dropped', 0)}",
             f"shards: {len(summary['shards'])}  time: {summary['seconds']} s  ({summary['frames_per_second']} frames/s)"]
    for source, counts in summary.get("sources", {}).items():
        lines.append(f"source {source}: {', '.join(counts['domains'])}, {counts['samples']} samples "
                     f"({counts['real']} bona fide, {counts['attack']} attacks)")
    for key, counts in summary["manifest_counts"].items():
        lines.append(f"{key.replace('_', ' ')}: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
    skipped = summary["skipped_files"]
    lines.append(f"files skipped: {len(skipped)}")
    lines += [f"  - {s['path']}: {s['reason']}" for s in skipped]
    return "\n".join(lines)
