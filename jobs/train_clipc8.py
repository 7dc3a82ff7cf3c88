"""Train CLIPC8 (embedded, or under `ray job submit -- python jobs/train_clipc8.py --config FILE`)."""

import argparse
import json

from fas.config import load_config
from fas.train.clipc8 import CLIPC8Config, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="clipc8.yaml", help="YAML file (default: fas/configs/clipc8.yaml)")
    parser.add_argument("--cache")
    parser.add_argument("--storage-path", dest="storage_path")
    parser.add_argument("--num-workers", dest="num_workers", type=int)
    parser.add_argument("--use-gpu", dest="use_gpu", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--address")
    args = vars(parser.parse_args())
    cfg = load_config(CLIPC8Config, args.pop("config"), args)
    result = train(cfg)
    print(json.dumps({"metrics": result.metrics, "checkpoint": result.checkpoint.path if result.checkpoint else None}))


if __name__ == "__main__":
    main()
