"""Sweep a method's hyperparameters with Ray Tune (embedded or under `ray job submit`); resumes an interrupted sweep.

    python jobs/sweep.py --space tune_spaces/pdle_k.yaml --cache cache/ocim --protocol 'O&C&I->M' --asha
"""

from fas.jobs import run_job
from fas.tune.sweep import SweepConfig, run_sweep


def report(cfg, results) -> str:
    try:
        best = results.get_best_result()
    except RuntimeError:  # no trial reported the metric: every one errored (results.md lists their errors)
        best = None
    if best is None or best.error is not None:
        errored = sum(1 for result in results if result.error is not None)
        return f"no trial finished: {errored} of {len(results)} trials errored (their errors: the sweep's results.md)"
    return f"best trial: {best.config} -> {best.metrics.get('val_auc')} val_auc"


if __name__ == "__main__":
    run_job(SweepConfig, run_sweep, report, __doc__)
