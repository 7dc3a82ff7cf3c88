"""Train OA-Net with the SSDG strategy on a cue cache (embedded, or under `ray job submit -- python
jobs/train_oanet.py --config FILE`); every config field is a flag."""

import argparse
import json

from fas.config import add_config_flags, config_from_args
from fas.train.oanet import OANetConfig, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_config_flags(parser, OANetConfig)
    cfg = config_from_args(OANetConfig, parser.parse_args(), default="oanet.yaml")
    result = train(cfg)
    print(json.dumps({"metrics": result.metrics, "checkpoint": result.checkpoint.path if result.checkpoint else None}))


if __name__ == "__main__":
    main()
