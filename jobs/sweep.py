"""Sweep a method's hyperparameters with Ray Tune (embedded or under `ray job submit`); resumes an interrupted sweep.

    python jobs/sweep.py --space tune_spaces/pdle_k.yaml --cache cache/ocim --protocol 'O&C&I->M' --asha
"""

from fas.jobs import run_job
from fas.tune.sweep import SweepConfig, run_sweep


def report(cfg, results) -> str:
    best = results.get_best_result()
    return f"best trial: {best.config} -> {best.metrics.get('val_auc')} val_auc"


if __name__ == "__main__":
    run_job(SweepConfig, run_sweep, report, __doc__)
