"""AG-FAS anomalous cues for a whole frame cache: Ray Data batch inference with an actor pool of generators.

The output is a sibling frame cache: every row of the source cache (all its columns) plus ``cue`` (the
standardised residual input - reconstruction as float16 ``.npy`` bytes, shape 3 x S x S), ``cue_rms`` (the
residual's RMS in [-1, 1] pixel units: the raw anomaly score) and ``cue_error`` (why a frame has no cue; empty
when it has one). Evaluation, protocols and training read it like any frame cache. With ``mask`` (AG-FAS's DFG†,
``fas.methods.dfg.mask``) the cue is zero outside the face region, ``cue_rms`` is taken over the face, and every row
also holds ``cue_mask`` (S x S PNG bytes, 255 = face) and ``cue_mask_source`` (parsing | landmarks | box).

Resumable: shards are written atomically as the stream goes; a rerun skips the frames already in them and
``cache.json`` is written only when every frame of the source has a row. Each frame's noise is seeded by its
frame id, so a cue does not depend on batching, actor or restart.
"""

from __future__ import annotations

import dataclasses
import io
import json
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fas.data.cache import CACHE_INDEX, SHARD_DIR, load_index, write_shard

CUE_TYPES = {"cue": pa.binary(), "cue_rms": pa.float32(), "cue_error": pa.string(), "cue_mask": pa.binary(),
             "cue_mask_source": pa.string()}
CUE_COLUMNS = tuple(CUE_TYPES)
GENERATOR_CONFIG = "generator_config.json"  # what marks a generator folder (its ``method`` names the record)


@dataclasses.dataclass
class CueConfig:
    """``jobs/make_cues.py`` options; every field is also a flag."""

    generator: str = ""  # a generator checkpoint folder, or a training run folder (its latest checkpoint)
    cache: str = ""  # the source frame cache
    out: str = ""  # the cue cache to write (or resume)
    noise_step: int | None = None  # t of the partial noising; None: the generator config's (801; AnoDDPM 200)
    ddim_steps: int = 50  # the DDIM grid over the 1000 training steps; the steps <= t run
    mask: str = "none"  # none | parsing | landmarks: zero the cue outside the face (AG-FAS's DFG†)
    parsing_weights: str | None = None  # mask parsing: 79999_iter.pth of face-parsing.PyTorch, or its .onnx export
    batch_size: int = 16
    seed: int = 0
    actors: int = 1  # max actors of the generator pool
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0  # a GPU fraction per actor (fp16 there)
    rows_per_file: int = 256
    address: str | None = None


def latest_generator_checkpoint(path: str | Path) -> Path:
    """``path`` itself when it is a generator checkpoint, else its newest ``checkpoint_*`` holding one."""
    path = Path(path)
    if (path / GENERATOR_CONFIG).is_file():
        return path
    found = sorted(p for p in path.glob("checkpoint_*") if (p / GENERATOR_CONFIG).is_file())
    if not found:
        raise ValueError(f"{path} holds no generator checkpoint ({GENERATOR_CONFIG}); train one with "
                         "`jobs/train.py dfg` and pass its run folder or checkpoint folder")
    return found[-1]


def load_cue_maker(folder: str | Path, device: str | None = None, **settings):
    """The cue maker of a generator folder, by the method its ``generator_config.json`` names."""
    from fas.methods import get_method
    from fas.methods.base import resolve

    meta = json.loads((Path(folder) / GENERATOR_CONFIG).read_text())
    method = get_method(meta.get("method", "dfg"), meta.get("method_module"))
    if method.cue_maker is None:
        raise ValueError(f"{folder}: method {method.name!r} makes no cues")
    return resolve(method.cue_maker)(folder, device, **settings)


def encode_cue(cue: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, cue.astype(np.float16), allow_pickle=False)
    return buffer.getvalue()


def decode_cues(blobs) -> np.ndarray:
    """``cue`` column values -> float32 array (B, 3, S, S)."""
    return np.stack([np.load(io.BytesIO(bytes(b)), allow_pickle=False) for b in blobs]).astype(np.float32)


def mask_settings(mask: str = "none", parsing_weights: str | None = None) -> dict:
    """The cue maker's face-mask arguments; none at all without a mask (a cue maker need not know masks)."""
    return {} if mask == "none" else {"mask": mask, "parsing_weights": parsing_weights}


class CueBatch:
    """Ray Data ``map_batches`` callable: one cue maker per actor (on its GPU when it has one); every source row
    comes back with its cue, or with the reason it has none. ``crop`` (the source cache's ``margin`` and ``size``)
    places each row's face box and landmarks in its crop for a face mask."""

    def __init__(self, cfg: CueConfig, checkpoint: str, crop: dict | None = None):
        import torch

        from fas.engine.speed import set_worker_threads

        set_worker_threads(cfg.cpus_per_actor)  # Ray starts the actor with one torch thread whatever it holds
        device = "cuda" if cfg.gpus_per_actor > 0 and torch.cuda.is_available() else "cpu"
        self.maker = load_cue_maker(checkpoint, device, noise_step=cfg.noise_step, ddim_steps=cfg.ddim_steps,
                                    seed=cfg.seed, **mask_settings(cfg.mask, cfg.parsing_weights))
        self.crop = crop if cfg.mask != "none" else None

    def __call__(self, batch: pa.Table) -> pa.Table:
        from fas.methods.dfg.mask import row_geometries

        faces = row_geometries(batch, **self.crop) if self.crop else None
        columns = self.maker.columns(batch["image"].to_pylist(), batch["frame_id"].to_pylist(), faces)
        for name, values in columns.items():
            batch = batch.append_column(name, pa.array(values, CUE_TYPES[name]))
        return batch


class CueGenerator:
    """Encoded crops -> encoded cues with a model's generator and cue settings (Serve and in-process baselines).

    Each crop's noise is seeded by a hash of its bytes, so the same crop always gets the same cue. A masked cue
    (``cue["mask"]``) needs each crop's face geometry (``fas.methods.dfg.mask.geometry_from_face`` of the face
    stage's answer) for the landmark/box mask; the parsing mask reads the crop itself and uses the geometry only
    where the parser finds no face (the whole crop's ellipse when none is given)."""

    def __init__(self, generator: str, cue: dict, device: str | None = None):
        self.mask = cue.get("mask", "none")
        self.maker = load_cue_maker(generator, device, noise_step=cue["noise_step"], ddim_steps=cue["ddim_steps"],
                                    seed=cue.get("seed", 0), **mask_settings(self.mask, cue.get("parsing_weights")))

    def __call__(self, images: list[bytes], faces: list | None = None) -> list[bytes]:
        import hashlib

        if self.mask == "landmarks" and faces is None:
            raise ValueError("these cues are masked by the face's landmarks or box (mask: landmarks): pass each "
                             "crop's face geometry (fas.methods.dfg.mask.geometry_from_face of the face stage)")
        cues, _, errors = self.maker(images, [hashlib.sha256(b).hexdigest()[:16] for b in images], faces)
        bad = [e for e in errors if e]
        if bad:
            raise ValueError(f"cannot make the cue of {len(bad)} crops: {bad[0]}")
        return cues


def done_frames(shard_dir: Path) -> set[str]:
    return {f for p in sorted(shard_dir.glob("part-*.parquet"))
            for f in pq.read_table(p, columns=["frame_id"]).column("frame_id").to_pylist()}


def make_cues(cfg: CueConfig) -> dict:
    """Write (or complete) the cue cache ``cfg.out`` for every frame of ``cfg.cache``; returns its summary."""
    from ray.data.expressions import col

    from fas.data.cache import read_cache, read_cache_table
    from fas.progress import Progress
    from fas.ray_utils import actor_pool, init_ray

    crop = mask_crop(cfg)  # bad mask settings fail before any work
    checkpoint = latest_generator_checkpoint(cfg.generator)
    if cfg.noise_step is None:  # the generator config's default, written into the index as used
        noise_step = json.loads((checkpoint / GENERATOR_CONFIG).read_text()).get("noise_step")
        cfg = dataclasses.replace(cfg, noise_step=noise_step)
    source_ids = read_cache_table(cfg.cache, columns=["frame_id"]).column("frame_id").to_pylist()
    out, start = Path(cfg.out), time.perf_counter()
    shard_dir = out / SHARD_DIR
    shard_dir.mkdir(parents=True, exist_ok=True)
    done = done_frames(shard_dir) & set(source_ids)
    check_resume_settings(out, cfg, checkpoint, resuming=bool(done))  # a refused rerun leaves the cache as it was
    (out / CACHE_INDEX).unlink(missing_ok=True)  # incomplete until every frame has its row
    pending = len(set(source_ids) - done)
    if pending:
        init_ray(cfg.address)
        ds = read_cache(cfg.cache)
        if done:
            ds = ds.filter(expr=col("frame_id").not_in(sorted(done)))
        gpus = {"num_gpus": cfg.gpus_per_actor} if cfg.gpus_per_actor > 0 else {}
        ds = ds.map_batches(CueBatch, fn_constructor_kwargs={"cfg": cfg, "checkpoint": str(checkpoint), "crop": crop},
                            batch_size=cfg.batch_size, batch_format="pyarrow", num_cpus=cfg.cpus_per_actor, **gpus,
                            compute=actor_pool(1, max(1, cfg.actors)))
        progress = Progress("cues", pending)
        for table in ds.iter_batches(batch_size=cfg.rows_per_file, batch_format="pyarrow"):
            write_shard(table, shard_dir)
            progress.update(table.num_rows)
        progress.close()
    return write_cue_index(cfg, checkpoint, source_ids, resumed=len(done), seconds=time.perf_counter() - start)


SETTINGS_FILE = "cue_settings.json"  # what the cues written so far were made with (a resume must match them)


def check_resume_settings(out: Path, cfg: CueConfig, checkpoint: Path, resuming: bool) -> None:
    """Record what makes a cue (generator, noising, mask), or refuse to complete a cache begun with other settings:
    its cues would mix two generators or noise depths and nothing downstream could tell."""
    settings = {"generator": str(checkpoint), "noise_step": cfg.noise_step, "ddim_steps": cfg.ddim_steps,
                "seed": cfg.seed, "mask": cfg.mask}
    path = out / SETTINGS_FILE
    if resuming and path.exists():
        before = json.loads(path.read_text())
        changed = {k: (before.get(k), v) for k, v in settings.items() if before.get(k) != v}
        if changed:
            said = "; ".join(f"{k}: {old!r} then, {new!r} now" for k, (old, new) in changed.items())
            raise ValueError(f"cue cache {out} was begun with other settings ({said}): finish it with the same "
                             f"settings, or write the new cues to another --out")
    path.write_text(json.dumps(settings, indent=2))


def mask_crop(cfg: CueConfig) -> dict | None:
    """Before any work: check the mask settings (the parsing weights load) and read how the source cache cut its
    crops (``margin``, ``size``), which place each frame's face box and landmarks in its crop."""
    from fas.methods.dfg.mask import check_mask

    check_mask(cfg.mask)
    if cfg.mask == "none":
        return None
    if cfg.mask == "parsing":
        from fas.methods.dfg.mask import FaceMasker

        FaceMasker(cfg.mask, cfg.parsing_weights)  # a missing or damaged file fails here, not in every actor
    made = load_index(cfg.cache).get("config", {})
    if "margin" not in made or "size" not in made:
        raise ValueError(f"{cfg.cache}/{CACHE_INDEX} records no crop margin/size (a cache of `fas prepare` does): "
                         f"the face mask cannot place its faces; make its cues with --mask none")
    return {"margin": float(made["margin"]), "size": int(made["size"])}


def write_cue_index(cfg: CueConfig, checkpoint: Path, source_ids: list[str], resumed: int, seconds: float) -> dict:
    """Check coverage (every source frame exactly once) and write ``cache.json`` with the cue summary."""
    out = Path(cfg.out)
    shards = sorted(p.name for p in (out / SHARD_DIR).glob("part-*.parquet"))
    columns = ["frame_id", "label", "split", "cue_rms", "cue_error"] + (["cue_mask_source"] if cfg.mask != "none"
                                                                         else [])
    table = pa.concat_tables([pq.read_table(out / SHARD_DIR / s, columns=columns) for s in shards])
    ids = table.column("frame_id").to_pylist()
    missing, duplicated = set(source_ids) - set(ids), len(ids) - len(set(ids))
    if missing or duplicated:
        raise RuntimeError(f"cue cache {out} does not cover its source: {len(missing)} frames missing, "
                           f"{duplicated} duplicated; rerun to complete it")
    errors = table.filter(pc.not_equal(table["cue_error"], ""))
    source = load_index(cfg.cache)
    summary = {
        "shards": shards, "frames_written": table.num_rows, "frames_with_cue": table.num_rows - errors.num_rows,
        "skipped_frames": [{"frame_id": f, "reason": r} for f, r in zip(errors["frame_id"].to_pylist(),
                                                                          errors["cue_error"].to_pylist())],
        "resumed_frames": resumed, "seconds": round(seconds, 2), "synthetic": source.get("synthetic", False),
        "source_cache": str(cfg.cache), "generator": str(checkpoint), "config": dataclasses.asdict(cfg),
        "separation": cue_separation(table),
    }
    if cfg.mask != "none":  # how many frames each face-region source masked
        sources = [s for s in table["cue_mask_source"].to_pylist() if s]
        summary["mask_sources"] = {s: sources.count(s) for s in sorted(set(sources))}
    tmp = out / f".{CACHE_INDEX}.tmp"
    tmp.write_text(json.dumps(summary, indent=2))
    tmp.replace(out / CACHE_INDEX)
    return summary


def cue_separation(table: pa.Table) -> dict:
    """How well the residual alone tells real from attack: AUC of -cue_rms as a liveness score (real faces
    should come back nearly unchanged), and the mean RMS per class; over all frames and per split."""
    from fas.eval.metrics import auc

    def one(rows: pa.Table) -> dict:
        ok = rows.filter(pc.equal(rows["cue_error"], ""))
        rms, labels = np.asarray(ok["cue_rms"].to_pylist(), float), np.asarray(ok["label"].to_pylist(), int)
        result = {"frames": len(rms), "real_rms": float(rms[labels == 1].mean()) if (labels == 1).any() else None,
                  "attack_rms": float(rms[labels == 0].mean()) if (labels == 0).any() else None}
        if len(set(labels.tolist())) == 2:
            result["auc"] = auc(-rms, labels)
        return result

    splits = sorted(set(table["split"].to_pylist()))
    return {"all": one(table), **{s: one(table.filter(pc.equal(table["split"], s))) for s in splits}}


def format_cue_summary(summary: dict) -> str:
    lines = [f"cue cache: {summary['frames_written']} frames ({summary['frames_with_cue']} with a cue, "
             f"{len(summary['skipped_frames'])} skipped, {summary['resumed_frames']} from a previous run) in "
             f"{summary['seconds']} s"]
    if "mask_sources" in summary:
        lines.append(f"  cue masked to the face ({summary['config']['mask']}): "
                     + ", ".join(f"{n} by {s}" for s, n in summary["mask_sources"].items()))
    for name, s in summary["separation"].items():
        auc_text = f"AUC {s['auc']:.3f}" if "auc" in s else "AUC n/a"
        lines.append(f"  {name:>6}: {auc_text} of -residual RMS as liveness; mean RMS real "
                     f"{s['real_rms'] if s['real_rms'] is None else round(s['real_rms'], 4)} vs attack "
                     f"{s['attack_rms'] if s['attack_rms'] is None else round(s['attack_rms'], 4)} "
                     f"({s['frames']} frames)")
    return "\n".join(lines)
