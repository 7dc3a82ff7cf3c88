"""Sweep a method's hyperparameters with Ray Tune (embedded or under `ray job submit`); resumes an interrupted sweep.

    python jobs/sweep.py --space tune_spaces/pdle_k.yaml --cache cache/ocim --protocol 'O&C&I->M' --asha
"""

import argparse

from fas.config import add_config_flags, config_from_args
from fas.tune.sweep import SweepConfig, run_sweep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_flags(parser, SweepConfig)
    cfg = config_from_args(SweepConfig, parser.parse_args())
    results = run_sweep(cfg)
    best = results.get_best_result()
    print(f"best trial: {best.config} -> {best.metrics.get('val_auc')} val_auc")


if __name__ == "__main__":
    main()
