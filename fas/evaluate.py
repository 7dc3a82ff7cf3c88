"""Evaluate a checkpoint on a frame cache: Ray Data batch inference, then the evaluation harness.

Threshold from the dev split (``dev_eer`` by default, the honest figure); test-set thresholds only when the
rule ``test_eer`` is named. Video samples are scored per video (mean of frame scores).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

SCORE_COLUMNS = ["sample_id", "frame_id", "split", "label", "attack", "domain", "subject", "media"]


@dataclasses.dataclass
class EvaluateConfig:
    checkpoint: str = ""
    cache: str = ""
    out: str = "runs/eval"
    threshold_rule: str = "dev_eer"
    protocol: str | None = None  # e.g. "O&C&I->M", "intra:oulu_npu"; when set it decides threshold and test rows
    dev_split: str = "dev"
    test_split: str = "test"
    batch_size: int = 64
    workers: int = 1
    cpus_per_worker: float = 1.0
    address: str | None = None


class ScoreBatch:
    """Actor-pool stage: one predictor per actor, scores a batch of encoded frames."""

    def __init__(self, checkpoint: str):
        from fas.methods import load_predictor

        self.predictor = load_predictor(checkpoint)

    def __call__(self, batch: dict) -> dict:
        out = self.predictor.predict(*[batch[c] for c in self.predictor.inputs])
        result = {c: batch[c] for c in SCORE_COLUMNS}
        result["score"] = out["score"]
        if "category" in out:
            result["pred_category"] = out["category"]
        return result


def score_cache(cfg: EvaluateConfig) -> pd.DataFrame:
    from ray.data.expressions import col

    from fas.data.cache import read_cache
    from fas.methods import model_inputs, read_model_meta
    from fas.ray_utils import actor_pool, init_ray

    init_ray(cfg.address)
    inputs = list(model_inputs(read_model_meta(cfg.checkpoint)))  # OA-Net also reads the cue column
    ds = read_cache(cfg.cache, columns=SCORE_COLUMNS + inputs)
    for column in inputs:  # a frame the cue job could not read has no cue (listed in the cue cache's index)
        ds = ds.filter(expr=col(column).is_not_null())
    if not cfg.protocol:  # without a protocol only the dev and test splits are scored
        ds = ds.filter(expr=col("split").is_in(sorted({cfg.dev_split, cfg.test_split})))
    ds = ds.map_batches(ScoreBatch, fn_constructor_kwargs={"checkpoint": cfg.checkpoint}, batch_size=cfg.batch_size,
                        batch_format="numpy", num_cpus=cfg.cpus_per_worker,
                        compute=actor_pool(1, cfg.workers))
    return ds.to_pandas()


def evaluate(cfg: EvaluateConfig) -> dict:
    from fas.eval.report import evaluate_scores, write_results
    from fas.eval.gallery import write_gallery
    from fas.methods import model_inputs, read_model_meta
    from fas.provenance import training_record

    meta = read_model_meta(cfg.checkpoint)
    scores = score_cache(cfg).rename(columns={"sample_id": "video"})
    categories = meta.get("categories")
    if categories:  # category tables only when every evaluated attack has a category
        from fas.eval.categories import attack_category

        truth = [attack_category(a, categories, meta.get("attack_to_category", {})) for a in scores["attack"]]
        if None in truth:
            scores = scores.drop(columns=["pred_category"])
        else:
            scores["category"] = truth
            scores["pred_category"] = scores["pred_category"].astype(int)
    video_level = bool((scores["media"] == "video").any())
    if cfg.protocol:
        from fas.eval.protocols import split_for_protocol

        parts = split_for_protocol(scores, cfg.protocol)
        test, dev = parts["test"], parts["threshold"]
    else:
        test, dev = scores[scores.split == cfg.test_split], scores[scores.split == cfg.dev_split]
    dev = None if cfg.threshold_rule == "test_eer" else dev
    kwargs = {"categories": categories} if categories else {}
    dev = None if dev is None else dev.reset_index(drop=True)
    options = dict(threshold_rule=cfg.threshold_rule, video_level=video_level, **kwargs)
    metrics = evaluate_scores(test.reset_index(drop=True), dev, **options)
    if cfg.protocol:
        from fas.eval.protocols import PUBLISHED, get_protocol
        from fas.eval.report import per_domain_metrics

        protocol = get_protocol(cfg.protocol)
        if len(protocol.test_domains) > 1:
            metrics["per_domain"] = per_domain_metrics(test, dev, protocol.test_domains, **options)
            metrics["published"] = PUBLISHED.get(protocol.name)
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    gallery = write_gallery(Path(cfg.out), scores, metrics["threshold"], cfg.cache,
                            with_cue="cue" in model_inputs(meta))
    config = {"evaluate": dataclasses.asdict(cfg), "model": meta, "training": training_record(cfg.checkpoint)}
    write_results(cfg.out, scores, metrics, config, pictures={"Most wrong frames": gallery.name} if gallery else None,
                  model_pictures=lambda folder, threshold: model_pictures(folder, scores, threshold, config))
    return metrics


def model_pictures(folder: Path, scores: pd.DataFrame, threshold: float, config: dict) -> dict[str, str]:
    """The report's pictures drawn with the evaluated model (its record's ``pictures``: CLIPC8's ``attention.png``,
    AG-FAS's ``cue_gallery.png``; caption -> file in ``folder``); none when ``config`` names no evaluated checkpoint
    and cache (a score table evaluated alone), the checkpoint is an ONNX export (no attention to hook), the scores
    have no frame ids or one class only, or the method draws none."""
    from fas.eval.gallery import best_and_worst
    from fas.methods import get_method, load_predictor
    from fas.methods.base import resolve

    evaluated = config.get("evaluate") or {}
    checkpoint, cache = evaluated.get("checkpoint"), evaluated.get("cache")
    if not checkpoint or not cache or str(checkpoint).endswith(".onnx") or "frame_id" not in scores.columns \
            or scores["label"].nunique() < 2:
        return {}
    predictor = load_predictor(checkpoint)
    method = get_method(predictor.meta["method"], predictor.meta.get("method_module"))
    if method.pictures is None:
        return {}
    return resolve(method.pictures)(folder, predictor, best_and_worst(scores), cache, checkpoint, threshold)
