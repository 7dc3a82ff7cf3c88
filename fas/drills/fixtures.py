"""What the drills run on when ``fas drill`` starts from nothing: the tiny generated CLASS-8 set, its frame cache,
a tiny generator and its cues. Built once per work folder (a rerun reuses them); tests pass their own instead."""

from __future__ import annotations

from pathlib import Path

from fas.data.cache import CACHE_INDEX

PREPARE = dict(detector="none", size=112, face_workers=1, progress=False)  # the tests' tiny frame cache


def generated_manifest(workdir: Path) -> Path:
    from fas.data.manifest import write_manifest
    from fas.data.readers import read_dataset
    from fas.data.synth import generate

    manifest = Path(workdir) / "class8.parquet"
    if not manifest.is_file():
        generate(Path(workdir) / "data", seed=0, size="tiny")
        write_manifest(read_dataset("class8", Path(workdir) / "data" / "class8"), manifest)
    return manifest


def generated_cache(workdir: Path) -> Path:
    """The tiny CLASS-8 frame cache (whole frames, 112 px)."""
    from fas.data.cache import PrepareConfig, prepare

    out = Path(workdir) / "cache"
    if not (out / CACHE_INDEX).is_file():
        prepare(PrepareConfig(manifest=str(generated_manifest(workdir)), out=str(out), **PREPARE))
    return out


DFG_TINY = dict(model="dfg-tiny", steps=12, batch_size=8, lr=1e-3, checkpoint_every=4, log_every=4,
                vae_fit_steps=20, vae_fit_images=64, engine="deepspeed", zero_stage=2, num_workers=2, use_gpu=False,
                cpus_per_worker=0.5)
CUES_TINY = dict(ddim_steps=5, batch_size=16, rows_per_file=32, cpus_per_actor=0.5)


def tiny_generator(workdir: Path, cache: Path) -> Path:
    """A tiny DFG generator run (2 DeepSpeed workers, 12 steps): its run folder."""
    from fas.config import from_dict
    from fas.engine import train
    from fas.methods.dfg.config import DFGConfig

    storage = Path(workdir) / "generator"
    if not any(storage.glob("dfg/checkpoint_*")):
        train(from_dict(DFGConfig, dict(cache=str(cache), storage_path=str(storage), name="dfg", **DFG_TINY)))
    return storage / "dfg"


def tiny_cues(workdir: Path, cache: Path, generator: Path) -> Path:
    from fas.cues import CueConfig, make_cues

    out = Path(workdir) / "cues"
    if not (out / CACHE_INDEX).is_file():
        make_cues(CueConfig(generator=str(generator), cache=str(cache), out=str(out), **CUES_TINY))
    return out
