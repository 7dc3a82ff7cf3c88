"""``fas quickstart``: the whole data plane on the embedded default (a local Ray cluster and generated data).

Steps: generate the synthetic dataset -> read it into manifests -> prepare frame caches -> train the tiny model of
``--method`` (CLIPC8 on Ray Train + DeepSpeed, or PDLE on Ray Train + DDP) -> evaluate it with the evaluation
harness and print its table -> copy the servable model (weights, config, metrics with the threshold) to
``OUT/models/<method>``, which ``serve/config.yaml`` serves.
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
    epochs: int | None = None  # training epochs; default: the method's tiny config (CLIPC8 10, PDLE 8)
    steps: int | None = None  # AG-FAS: stand-in VAE, generator and OA-Net steps; default: tiny configs' (100/100/200)
    protocol: str | None = None  # e.g. synth-cam-a&synth-cam-b->synth-cam-c; default: train/dev/test splits
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
    if cfg.method in TINY_CONFIGS and cfg.train:
        summaries[cfg.method] = train_and_evaluate(out, cfg)
    elapsed = time.perf_counter() - start
    (out / "quickstart_summary.json").write_text(json.dumps(summaries, indent=2, default=str))
    print(f"\nquickstart finished in {elapsed:.0f} s; manifests in {out / 'manifests'}, caches in {out / 'cache'}")
    return 0


TINY_CONFIGS = {"clipc8": "clipc8_tiny.yaml", "pdle": "pdle_tiny.yaml", "agfas": "oanet_tiny.yaml"}
QUICKSTART_DDIM_STEPS = 5  # 4 DDIM steps from t = 801 (the paper's 50-step grid runs 41): a CPU-budget choice


def _train_method(method: str, out: Path, cfg: QuickstartConfig):
    from fas.config import load_config

    overrides = {"cache": str(out / "cache" / "class8"), "storage_path": str(out.resolve() / "train"),
                 "epochs": cfg.epochs, "protocol": cfg.protocol, "address": cfg.address}
    if method == "agfas":
        return _train_agfas(out, cfg)
    if method == "clipc8":
        from fas.train.clipc8 import CLIPC8Config, train

        train_cfg = load_config(CLIPC8Config, TINY_CONFIGS[method], overrides)
        print(f"[4/5] training tiny CLIPC8 ({train_cfg.epochs} epochs, Ray Train + DeepSpeed ZeRO-2 on CPU)")
    else:
        from fas.train.pdle import PDLEConfig, train

        train_cfg = load_config(PDLEConfig, TINY_CONFIGS[method], overrides)
        print(f"[4/5] training tiny PDLE (K={train_cfg.k}, {train_cfg.epochs} epochs, Ray Train + "
              f"{train_cfg.engine.upper()} on CPU)")
    return train(train_cfg)


def _train_agfas(out: Path, cfg: QuickstartConfig):
    """Generator on real faces -> cues for every frame -> OA-Net with SSDG on the cue cache."""
    from fas.config import load_config
    from fas.cues import CueConfig, format_cue_summary, make_cues
    from fas.train import dfg, oanet

    common = {"storage_path": str(out.resolve() / "train"), "protocol": cfg.protocol, "address": cfg.address}
    steps = {"steps": cfg.steps} if cfg.steps else {}
    fit_steps = {"vae_fit_steps": cfg.steps} if cfg.steps else {}
    dfg_cfg = load_config(dfg.DFGConfig, "dfg_tiny.yaml", {**common, **steps, **fit_steps,
                                                                     "cache": str(out / "cache" / "class8")})
    print(f"[4/5] a. training the tiny De-fake Face Generator on real faces only ({dfg_cfg.steps} steps, stand-in "
          f"VAE fitted first; Ray Train + DeepSpeed ZeRO-{dfg_cfg.zero_stage} on CPU)")
    generator = dfg.train(dfg_cfg)
    print(f"      b. anomalous cues for every frame (t = 801, {QUICKSTART_DDIM_STEPS}-step DDIM grid)")
    cues = make_cues(CueConfig(generator=generator.checkpoint.path, cache=str(out / "cache" / "class8"),
                               out=str(out / "cues" / "class8"), ddim_steps=QUICKSTART_DDIM_STEPS, batch_size=32,
                               cpus_per_actor=1.0, address=cfg.address))
    print("      " + format_cue_summary(cues).replace("\n", "\n      "))
    oanet_cfg = load_config(oanet.OANetConfig, TINY_CONFIGS["agfas"], {**common, **steps,
                                                                        "cache": str(out / "cues" / "class8")})
    print(f"      c. training tiny OA-Net with SSDG on the cues ({oanet_cfg.steps} steps, Ray Train + "
          f"{oanet_cfg.engine.upper()} on CPU)")
    return oanet.train(oanet_cfg)


def train_and_evaluate(out: Path, cfg: QuickstartConfig) -> dict:
    """Tiny model on 2 Ray Train workers (CPU), the evaluation harness, and the servable copy in OUT/models."""
    from fas.evaluate import EvaluateConfig, evaluate

    result = _train_method(cfg.method, out, cfg)
    print(f"      final epoch: {result.metrics}")
    where = f"protocol {cfg.protocol}" if cfg.protocol else "the test split"
    print(f"[5/5] evaluating on {where} (threshold: EER on the dev split)")
    eval_dir = out / "eval" / cfg.method
    cache = out / ("cues" if cfg.method == "agfas" else "cache") / "class8"
    metrics = evaluate(EvaluateConfig(checkpoint=result.checkpoint.path, cache=str(cache),
                                      out=str(eval_dir), protocol=cfg.protocol, address=cfg.address))
    if metrics.get("categories"):
        print(format_category_accuracy(metrics))
    print(f"      HTER {metrics['hter']:.2%} at threshold {metrics['threshold']:.4f} ({metrics['threshold_rule']}), "
          f"AUC {metrics['auc']:.4f}; report: {eval_dir / 'report.md'}")
    served = publish_model(Path(result.checkpoint.path), eval_dir, out / "models" / cfg.method)
    print(f"      servable model: {served} (serve it: serve run serve/config.yaml)")
    summary = {"checkpoint": result.checkpoint.path, "report": str(eval_dir / "report.md"), "model": str(served),
               **{k: metrics[k] for k in ("auc", "hter", "eer")}}
    if metrics.get("categories"):
        summary["category_accuracy"] = category_accuracy(metrics)
    return summary


def publish_model(checkpoint: Path, eval_dir: Path, target: Path) -> Path:
    """Copy the portable weights, their config and the evaluation metrics (threshold included) to ``target``."""
    import shutil

    from fas.train.engine import WEIGHTS_FILE

    staging = target.with_name(target.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in (WEIGHTS_FILE, "model_config.json"):
        shutil.copy2(checkpoint / name, staging / name)
    shutil.copy2(eval_dir / "metrics.json", staging / "metrics.json")
    meta = json.loads((checkpoint / "model_config.json").read_text())
    if meta.get("cue"):  # AG-FAS: the generator that makes the cues travels with the detector
        from fas.train.dfg import copy_portable

        copy_portable(Path(meta["cue"]["generator"]), staging / "generator")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


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
