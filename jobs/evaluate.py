"""Evaluate a trained checkpoint (any method) on a frame cache; writes scores.csv, metrics.json, report.md, roc.png."""

import argparse
import json

from fas.config import load_config
from fas.evaluate import EvaluateConfig, evaluate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default=None)
    for name in ("checkpoint", "cache", "out", "threshold_rule", "protocol", "address"):
        parser.add_argument("--" + name.replace("_", "-"), dest=name)
    args = vars(parser.parse_args())
    cfg = load_config(EvaluateConfig, args.pop("config"), args)
    metrics = evaluate(cfg)
    print(json.dumps({k: metrics.get(k) for k in ("auc", "eer", "hter", "acer", "threshold", "threshold_rule")}))
    print(f"report: {cfg.out}/report.md")


if __name__ == "__main__":
    main()
