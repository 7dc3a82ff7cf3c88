"""Train CLIPC8 (embedded, or under `ray job submit -- python jobs/train_clipc8.py --config FILE`); every config field is a flag."""

import argparse
import json

from fas.config import add_config_flags, config_from_args
from fas.train.clipc8 import CLIPC8Config, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_config_flags(parser, CLIPC8Config)
    cfg = config_from_args(CLIPC8Config, parser.parse_args(), default="clipc8.yaml")
    result = train(cfg)
    print(json.dumps({"metrics": result.metrics, "checkpoint": result.checkpoint.path if result.checkpoint else None}))


if __name__ == "__main__":
    main()
