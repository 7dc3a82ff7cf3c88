"""Train the De-fake Face Generator (embedded, or under `ray job submit -- python jobs/train_dfg.py --config FILE`);
every config field is a flag."""

import argparse
import json

from fas.config import add_config_flags, config_from_args
from fas.train.dfg import DFGConfig, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_config_flags(parser, DFGConfig)
    cfg = config_from_args(DFGConfig, parser.parse_args(), default="dfg.yaml")
    result = train(cfg)
    print(json.dumps({"metrics": result.metrics, "checkpoint": result.checkpoint.path if result.checkpoint else None}))


if __name__ == "__main__":
    main()
