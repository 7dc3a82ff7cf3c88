"""Evaluate a trained checkpoint (any method) on a frame cache; writes scores.csv, metrics.json, report.md, roc.png."""

import argparse
import json

from fas.config import add_config_flags, config_from_args
from fas.evaluate import EvaluateConfig, evaluate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_config_flags(parser, EvaluateConfig)
    cfg = config_from_args(EvaluateConfig, parser.parse_args())
    metrics = evaluate(cfg)
    print(json.dumps({k: metrics.get(k) for k in ("auc", "eer", "hter", "acer", "threshold", "threshold_rule")}))
    print(f"report: {cfg.out}/report.md")


if __name__ == "__main__":
    main()
