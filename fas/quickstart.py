"""``fas quickstart``: the whole data plane on the embedded default (a local Ray cluster and generated data).

Steps: generate the synthetic dataset -> read it into manifests -> prepare frame caches -> print a summary.
CLASS-8 images keep the whole frame (CLIPC8 uses the background on purpose); OULU-NPU-style videos are
sampled and face-cropped with the offline Haar detector.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from fas.config import save_config


@dataclasses.dataclass
class QuickstartConfig:
    """``fas quickstart`` options; every field is also a flag (``--out``, ``--seed``, ...)."""

    method: str = "clipc8"  # the method later steps train; the data plane is the same for all
    out: str = "runs/quickstart"
    seed: int = 0
    size: str = "quickstart"  # tiny | quickstart
    frames: int = 10
    detector: str = "haar"
    image_size: int = 128
    address: str | None = None


def _prepare(manifest: Path, out: Path, cfg: QuickstartConfig, detector: str) -> dict:
    from fas.data.cache import PrepareConfig, prepare

    return prepare(PrepareConfig(manifest=str(manifest), out=str(out), frames=cfg.frames, detector=detector,
                                 size=cfg.image_size, no_face="keep", address=cfg.address))


def run_quickstart(cfg: QuickstartConfig) -> int:
    from fas.data.cache import format_prepare_summary
    from fas.data.manifest import format_summary, summarize, write_manifest
    from fas.data.readers import read_dataset
    from fas.data.synth import generate

    if cfg.method not in ("clipc8", "pdle", "agfas"):
        raise ValueError(f"unknown method {cfg.method!r}; choose clipc8, pdle or agfas")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "quickstart.yaml")
    start = time.perf_counter()
    print(f"[1/3] generating the SYNTHETIC dataset (seed {cfg.seed}, size {cfg.size}) in {out / 'data'}")
    generate(out / "data", seed=cfg.seed, size=cfg.size)
    summaries = {}
    for name, detector in (("class8", "none"), ("oulu_npu", cfg.detector)):
        print(f"[2/3] reading {name} into a manifest")
        table = read_dataset(name, out / "data" / name)
        manifest = write_manifest(table, out / "manifests" / f"{name}.parquet")
        print(format_summary(summarize(table), title=f"{name} manifest"))
        print(f"[3/3] preparing the {name} frame cache (detector {detector})")
        summaries[name] = _prepare(manifest, out / "cache" / name, cfg, detector)
        print(format_prepare_summary(summaries[name]))
    elapsed = time.perf_counter() - start
    (out / "quickstart_summary.json").write_text(json.dumps(summaries, indent=2))
    print(f"\nquickstart finished in {elapsed:.0f} s; manifests in {out / 'manifests'}, caches in {out / 'cache'}")
    return 0
