"""Training pair of ``fas bench``: tiny CLIPC8 through Ray Train + DeepSpeed (the engine) against a bare PyTorch
loop, same model, rows, batch and total CPUs.

The rows: the generated CLASS-8 training images tiled to ``rows`` (the same decode work per row; a short epoch
would measure the per-epoch fixed costs instead of the steady state). Rates are the last epoch's images/s: the
first carries start-up (actors, DeepSpeed's op build, the first read). Ray's logical CPUs are set above the
machine's cores so that Ray Data's own tasks can be scheduled beside workers that hold every core; the physical
CPUs are the same for every row.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute  # noqa: F401 (pa.compute)
import pyarrow.parquet as pq
import torch

from fas.bench import pair

SIZES = {"full": {"rows": 2048, "epochs": 3, "synth": "quickstart"},
         "smallest": {"rows": 64, "epochs": 2, "synth": "tiny"}}
TARGETS = {1: ">= 0.90", 2: ">= 0.85"}
BOUNDS = {1: "CPU compute of the ViT (one rank: ZeRO-0); decoding (numpy, no torch: one OpenMP team per worker) "
             "runs ahead of the step in Ray Data's prefetch thread on the same cores",
          2: "CPU compute of the ViT (fwd+bwd); the distributed row adds gradient all-reduce (gloo) and per-epoch "
             "data start-up"}


def class8_cache(work: Path, synth: str) -> Path:
    """The generated CLASS-8 data read and prepared once (reused by later runs)."""
    from fas.data.cache import PrepareConfig, prepare
    from fas.data.manifest import write_manifest
    from fas.data.readers import read_dataset
    from fas.data.synth import generate

    cache = work / "class8_cache"
    if not (cache / "cache.json").is_file():
        generate(work / "data", seed=0, size=synth)
        manifest = write_manifest(read_dataset("class8", work / "data" / "class8"), work / "class8.parquet")
        prepare(PrepareConfig(manifest=str(manifest), out=str(cache), detector="none", size=112, no_face="keep",
                              progress=False))
    return cache


def tiled_cache(source: Path, out: Path, rows: int) -> Path:
    """A frame cache whose training split is ``source``'s training rows repeated to ``rows`` (new ids)."""
    from fas.data.cache import load_index, read_cache_table

    if (out / "cache.json").is_file():
        return out
    table = read_cache_table(source)
    train = table.filter(pa.compute.equal(table["split"], "train"))
    repeats = -(-rows // train.num_rows)
    tiles = []
    for i in range(repeats):
        tile = train
        for column in ("sample_id", "frame_id"):
            ids = pa.compute.binary_join_element_wise(tile[column], pa.scalar(f"~{i}"), "")
            tile = tile.set_column(tile.schema.get_field_index(column), column, ids)
        tiles.append(tile)
    table = pa.concat_tables(tiles).slice(0, rows)
    (out / "shards").mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out / "shards" / "part-00000.parquet")
    index = {**load_index(source), "shards": ["part-00000.parquet"], "frames_written": rows, "tiled_from": str(source)}
    (out / "cache.json").write_text(json.dumps(index, indent=2))
    return out


def bare_loop(cfg, epochs: int, threads: int) -> float:
    """The plain loop a user would write: decode, augment, forward, backward, Adam; images/s of the last epoch."""
    from fas.data.cache import read_cache_table
    from fas.methods.clipc8.model import create_clipc8
    from fas.methods.clipc8.task import category_index
    from fas.preprocess import Preprocess, clipc8_augment

    torch.set_num_threads(threads)
    table = read_cache_table(cfg.cache, columns=["image", "attack", "split"]).to_pandas()
    table = table[table.split == "train"]
    torch.manual_seed(0)
    model, meta = create_clipc8(cfg.model, cfg.pretrained, cfg.prompts)
    transform = Preprocess.from_meta(meta)
    optimizer = torch.optim.Adam(model.visual.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    rate = 0.0
    for _ in range(epochs):
        tick, seen = time.perf_counter(), 0
        for start in range(0, len(table), cfg.batch_size):
            rows = table.iloc[start:start + cfg.batch_size]
            logits = model(clipc8_augment(transform(rows["image"])))
            loss = torch.nn.functional.cross_entropy(logits, category_index(rows["attack"], cfg))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            seen += len(rows)
        rate = seen / (time.perf_counter() - tick)
    return rate


def ray_rate(cfg, workers: int, cpus: float, epochs: int, storage: Path) -> tuple[float, int]:
    """The last epoch's images/s through the engine, and the torch threads each worker trained with."""
    from fas.config import replace
    from fas.engine import train

    run = replace(cfg, num_workers=workers, cpus_per_worker=cpus, epochs=epochs, validate=False,
                  name=f"bench_{workers}w_{int(time.time())}", storage_path=str(storage))
    metrics = train(run).metrics
    return float(metrics["images_per_s"]), int(metrics["torch_threads"])


def train_section(work: Path, size: str = "full") -> list[dict]:
    """Bare loop (2 threads) | Ray Train + DeepSpeed 1 worker x 2 CPUs | 2 workers x 1 CPU."""
    import os

    from fas.config import load_config
    from fas.methods.clipc8.config import CLIPC8Config
    from fas.ray_utils import init_ray

    spec = SIZES[size]
    work.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count() or 2
    init_ray(num_cpus=2 * cores)  # logical CPUs for Ray Data beside workers holding every core; same cores
    cache = tiled_cache(class8_cache(work, spec["synth"]), work / f"tiled_{spec['rows']}", spec["rows"])
    cfg = load_config(CLIPC8Config, "clipc8_tiny.yaml", {"cache": str(cache)})
    threads = min(2, cores)
    bare = bare_loop(cfg, spec["epochs"], threads)
    rows = []
    for workers, cpus in ((1, float(threads)), (2, threads / 2)):
        rate, worker_threads = ray_rate(cfg, workers, cpus, spec["epochs"], work / "runs")
        what = (f"CLIPC8 tiny, Ray Train + DeepSpeed ZeRO-2, {workers} worker(s) x {worker_threads} thread(s) vs "
                f"bare loop {threads} threads, {spec['rows']} rows, batch {cfg.batch_size}")
        rows.append(pair("train", what, bare, rate, "img/s", TARGETS[workers], BOUNDS[workers], workers=workers,
                         threads_per_worker=worker_threads))
    return rows
