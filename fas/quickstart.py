"""``fas quickstart``: the whole data plane on the embedded default (a local Ray cluster and generated data).

Steps: generate the synthetic dataset -> read it into manifests -> prepare frame caches -> train tiny CLIPC8
on Ray Train + DeepSpeed -> evaluate it with the evaluation harness and print the per-category table.
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
    epochs: int = 10  # CLIPC8 training epochs of the quickstart (one cosine period)
    train: bool = True  # false: stop after preparing the data
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
    print(f"[1/5] generating the SYNTHETIC dataset (seed {cfg.seed}, size {cfg.size}) in {out / 'data'}")
    generate(out / "data", seed=cfg.seed, size=cfg.size)
    summaries = {}
    for name, detector in (("class8", "none"), ("oulu_npu", cfg.detector)):
        print(f"[2/5] reading {name} into a manifest")
        table = read_dataset(name, out / "data" / name)
        manifest = write_manifest(table, out / "manifests" / f"{name}.parquet")
        print(format_summary(summarize(table), title=f"{name} manifest"))
        print(f"[3/5] preparing the {name} frame cache (detector {detector})")
        summaries[name] = _prepare(manifest, out / "cache" / name, cfg, detector)
        print(format_prepare_summary(summaries[name]))
    if cfg.method == "clipc8" and cfg.train:
        summaries["clipc8"] = train_and_evaluate_clipc8(out, cfg)
    elapsed = time.perf_counter() - start
    (out / "quickstart_summary.json").write_text(json.dumps(summaries, indent=2, default=str))
    print(f"\nquickstart finished in {elapsed:.0f} s; manifests in {out / 'manifests'}, caches in {out / 'cache'}")
    return 0


def train_and_evaluate_clipc8(out: Path, cfg: QuickstartConfig) -> dict:
    """Tiny CLIPC8 on 2 Ray Train workers with DeepSpeed (CPU), then the evaluation harness on the test split."""
    from fas.config import load_config
    from fas.evaluate import EvaluateConfig, evaluate
    from fas.train.clipc8 import CLIPC8Config, train

    print(f"[4/5] training tiny CLIPC8 ({cfg.epochs} epochs, Ray Train + DeepSpeed ZeRO-2 on CPU)")
    train_cfg = load_config(CLIPC8Config, "clipc8_tiny.yaml", {
        "cache": str(out / "cache" / "class8"), "storage_path": str(out.resolve() / "train"), "epochs": cfg.epochs,
        "address": cfg.address})
    result = train(train_cfg)
    print(f"      final epoch: {result.metrics}")
    print("[5/5] evaluating on the test split (threshold: EER on the dev split)")
    eval_dir = out / "eval" / "clipc8"
    metrics = evaluate(EvaluateConfig(checkpoint=result.checkpoint.path, cache=str(out / "cache" / "class8"),
                                      out=str(eval_dir), address=cfg.address))
    print(format_category_accuracy(metrics))
    print(f"      HTER {metrics['hter']:.2%} at threshold {metrics['threshold']:.4f} ({metrics['threshold_rule']}), "
          f"AUC {metrics['auc']:.4f}; report: {eval_dir / 'report.md'}")
    return {"checkpoint": result.checkpoint.path, "report": str(eval_dir / "report.md"),
            "category_accuracy": category_accuracy(metrics), **{k: metrics[k] for k in ("auc", "hter", "eer")}}


def category_accuracy(metrics: dict) -> dict:
    """Per-category accuracy (correct category / count) and its mean, from the confusion matrix."""
    block = metrics["categories"]
    matrix = block["confusion_matrix"]
    acc = {name: row[i] / max(1, sum(row)) for i, (name, row) in enumerate(zip(block["categories"], matrix))}
    return {**acc, "mean": sum(acc.values()) / len(acc)}


def format_category_accuracy(metrics: dict) -> str:
    acc = category_accuracy(metrics)
    rows = [f"      {name:<22} {value:6.1%}" for name, value in acc.items() if name != "mean"]
    return "\n".join(["      per-category accuracy (chance = 12.5%):", *rows,
                      f"      {'mean':<22} {acc['mean']:6.1%}"])
