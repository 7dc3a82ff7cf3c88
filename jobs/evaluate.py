"""Evaluate a trained checkpoint (any method) on a frame cache; writes scores.csv, metrics.json, report.md, roc.png."""

import json

from fas.evaluate import EvaluateConfig, evaluate
from fas.jobs import run_job


def report(cfg, metrics) -> str:
    keys = ("auc", "eer", "hter", "acer", "threshold", "threshold_rule")
    return json.dumps({k: metrics.get(k) for k in keys}) + f"\nreport: {cfg.out}/report.md"


if __name__ == "__main__":
    run_job(EvaluateConfig, evaluate, report, __doc__)
