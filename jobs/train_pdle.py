"""Train PDLE (embedded, or under `ray job submit -- python jobs/train_pdle.py --config FILE`); every config field is a flag."""

import argparse
import json

from fas.config import add_config_flags, config_from_args
from fas.train.pdle import PDLEConfig, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_config_flags(parser, PDLEConfig)
    cfg = config_from_args(PDLEConfig, parser.parse_args(), default="pdle.yaml")
    result = train(cfg)
    print(json.dumps({"metrics": result.metrics, "checkpoint": result.checkpoint.path if result.checkpoint else None}))


if __name__ == "__main__":
    main()
