"""``fas quickstart``: the whole data plane on the embedded default (a local Ray cluster and generated data).

Steps: generate the synthetic dataset -> read it into manifests -> prepare frame caches -> train the tiny config of
``--method`` (any registered method, through the one engine; a method that needs another run first, as AG-FAS's
OA-Net needs its generator, gets that run's tiny config trained first) -> evaluate it with the evaluation harness
and print its table -> copy the servable model (weights, config, metrics with the threshold, companions such as
the generator) to ``OUT/models/<method>``, which the configs in ``serve/`` serve.
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

    method: str = "clipc8"  # a registered method (or alias: agfas); the data plane is the same for all
    out: str = "runs/quickstart"
    seed: int = 0
    size: str = "quickstart"  # tiny | quickstart
    frames: int = 10
    detector: str = "haar"
    image_size: int = 128
    epochs: int | None = None  # epochs of epoch runs; default: the tiny config's (CLIPC8 10, PDLE 8)
    # steps of step runs (AG-FAS: generator and OA-Net; also caps a method's scaled_fields, e.g. the stand-in VAE's
    # fit steps); default: the tiny configs' (100/200)
    steps: int | None = None
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

    from fas.methods import get_method

    method = get_method(cfg.method)  # an unknown name fails here, before any work
    if cfg.train and method.predictor is None:
        raise ValueError(f"{method.name} gives no liveness score to evaluate; quickstart a detector that uses it "
                         "(e.g. --method agfas trains the generator first)")
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
    if cfg.train:
        summaries[cfg.method] = train_and_evaluate(out, cfg, method)
    elapsed = time.perf_counter() - start
    (out / "quickstart_summary.json").write_text(json.dumps(summaries, indent=2, default=str))
    print(f"\nquickstart finished in {elapsed:.0f} s; manifests in {out / 'manifests'}, caches in {out / 'cache'}")
    return 0


def tiny_config(method, out: Path, cfg: QuickstartConfig, **fields):
    """The method's tiny config on the generated CLASS-8 cache, with the quickstart's flags applied."""
    overrides = {"cache": str(out / "cache" / "class8"), "storage_path": str(out.resolve() / "train"),
                 "protocol": cfg.protocol, "address": cfg.address, **fields}
    loaded = method.load_config(method.tiny_config, overrides)
    length = cfg.epochs if loaded.engine.unit == "epoch" else cfg.steps
    return method.with_length(loaded, length) if length else loaded


def train_method(method, out: Path, cfg: QuickstartConfig):
    """The runs ``method`` needs first (e.g. OA-Net's generator), then the method itself."""
    from fas.engine import train
    from fas.methods import get_method

    fields = {}
    for field, needed in method.needs.items():
        dependency = get_method(needed)
        run_cfg = tiny_config(dependency, out, cfg)
        print(f"[4/5] training tiny {dependency.name} first ({dependency.summary}): {describe(run_cfg)}")
        fields[field] = train(run_cfg).checkpoint.path
    run_cfg = tiny_config(method, out, cfg, **fields)
    print(f"[4/5] training tiny {method.name} ({method.summary}): {describe(run_cfg)}")
    return train(run_cfg)


def describe(run_cfg) -> str:
    engine = run_cfg.engine
    backend = f"DeepSpeed ZeRO-{engine.zero_stage}" if engine.backend == "deepspeed" else engine.backend.upper()
    return f"{engine.total} {engine.unit}s on {engine.num_workers} Ray Train workers, {backend} on CPU"


def train_and_evaluate(out: Path, cfg: QuickstartConfig, method) -> dict:
    """Tiny model on Ray Train workers (CPU), the evaluation harness, and the servable copy in OUT/models."""
    from fas.evaluate import EvaluateConfig, evaluate

    run = train_method(method, out, cfg)
    print(f"      final checkpoint: {run.metrics}")
    where = f"protocol {cfg.protocol}" if cfg.protocol else "the test split"
    print(f"[5/5] evaluating on {where} (threshold: EER on the dev split)")
    eval_dir = out / "eval" / cfg.method
    metrics = evaluate(EvaluateConfig(checkpoint=run.checkpoint.path, cache=run.config.cache,
                                      out=str(eval_dir), protocol=cfg.protocol, address=cfg.address))
    if metrics.get("categories"):
        print(format_category_accuracy(metrics))
    print(f"      HTER {metrics['hter']:.2%} at threshold {metrics['threshold']:.4f} ({metrics['threshold_rule']}), "
          f"AUC {metrics['auc']:.4f}; report: {eval_dir / 'report.md'}")
    served = publish_model(Path(run.checkpoint.path), eval_dir, out / "models" / cfg.method, method)
    print(f"      servable model: {served} (serve it: an entry of models: in a serve config; serve/config.yaml "
          "serves clipc8, serve/config_fused.yaml clipc8, pdle and agfas)")
    summary = {"checkpoint": run.checkpoint.path, "report": str(eval_dir / "report.md"), "model": str(served),
               **{k: metrics[k] for k in ("auc", "hter", "eer")}}
    if metrics.get("categories"):
        summary["category_accuracy"] = category_accuracy(metrics)
    return summary


def publish_model(checkpoint: Path, eval_dir: Path, target: Path, method) -> Path:
    """Copy the portable weights, their config and ``checksums.json``, the evaluation metrics (threshold included)
    and the method's companion folders (AG-FAS: the generator that makes the cues) to ``target``; engine state
    stays behind. The copies are checked against the checksums before ``target`` is replaced (a checkpoint from
    before checksums gets them recorded here)."""
    import shutil

    from fas.engine.loop import DS_TAG, STATE_FILE
    from fas.integrity import CHECKSUMS_FILE, recorded_checksums, storage_errors, verify_folder, write_checksums
    from fas.methods.base import MODEL_CONFIG_FILE, WEIGHTS_FILE

    staging = target.with_name(target.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with storage_errors(staging):
            staging.mkdir(parents=True)
            for name in (WEIGHTS_FILE, MODEL_CONFIG_FILE, CHECKSUMS_FILE):
                if name != CHECKSUMS_FILE or (checkpoint / name).is_file():
                    shutil.copy2(checkpoint / name, staging / name)
            shutil.copy2(eval_dir / "metrics.json", staging / "metrics.json")
            meta = json.loads((checkpoint / MODEL_CONFIG_FILE).read_text())
            for name, source in method.companions(meta).items():
                shutil.copytree(source, staging / name, ignore=shutil.ignore_patterns(DS_TAG, STATE_FILE))
        if not verify_folder(staging, (WEIGHTS_FILE, MODEL_CONFIG_FILE)):
            write_checksums(staging, (WEIGHTS_FILE, MODEL_CONFIG_FILE))
        for name in method.companions(meta):
            if recorded_checksums(staging / name) is not None:
                verify_folder(staging / name)
    except BaseException:  # a full disk or a changed file: no half-published folder is left behind
        shutil.rmtree(staging, ignore_errors=True)
        raise
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
