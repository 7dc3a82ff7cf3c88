"""Ray Tune sweeps: search spaces from YAML, trials on TorchTrainer, results table and plot, resume."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from fas.tune.sweep import SweepConfig, best_trial, param_space, read_space, sweep_markdown

LOO = "synth-cam-a&synth-cam-b->synth-cam-c"


def test_shipped_spaces_read_and_cover_the_papers_range():
    k = read_space("tune_spaces/pdle_k.yaml")
    assert k["method"] == "pdle" and k["params"]["k"]["grid"] == list(range(2, 18))
    assert read_space("tune_spaces/clipc8_lr.yaml")["params"]["lr"]["grid"][2] == 4e-6
    assert param_space({"k": {"grid": [2, 3]}})["k"] == {"grid_search": [2, 3]}


def test_a_bad_space_is_a_clear_error(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("method: pdle\nbase_config: pdle_tiny.yaml\nmetric: val_auc\nmode: max\nparams: {k: {range: 3}}\n")
    with pytest.raises(ValueError, match="params.k must be one of"):
        read_space(path)


@pytest.mark.slow
def test_a_small_pdle_k_sweep_writes_table_and_plot_and_resumes(tmp_path, class8_cache):
    from fas.tune.sweep import run_sweep

    space = tmp_path / "k.yaml"
    space.write_text("method: pdle\nbase_config: pdle_tiny.yaml\nmetric: val_auc\nmode: max\n"
                     "params:\n  k: {grid: [2, 6]}\n")
    cfg = SweepConfig(space=str(space), name="k", storage_path=str(tmp_path / "sweeps"),
                      cache=str(class8_cache / "cache"), protocol=LOO, epochs=2,
                      trial_cpus_per_worker=0.45,  # 2 CPUs: 0.9 for training leaves one for the data stages
                      mlflow=True)
    run_sweep(cfg)
    table = pd.read_csv(tmp_path / "sweeps" / "k" / "results.csv")
    assert table["k"].tolist() == [2, 6] and table["status"].tolist() == ["done", "done"]
    assert (table["epochs"] == 2).all()
    # each row holds what its trial reported (Tune's result.json, one line per epoch): the best epoch's val_auc
    # (mode max) and the last epoch's
    reported = {}
    for path in (tmp_path / "sweeps" / "k").glob("*/result.json"):
        k = json.loads((path.parent / "params.json").read_text())["k"]
        reported[k] = [json.loads(line) for line in path.read_text().splitlines()]
    assert sorted(reported) == [2, 6]
    for row in table.itertuples(index=False):
        lines = reported[row.k]
        assert [line["epoch"] for line in lines] == [0, 1]
        assert row.best_val_auc == pytest.approx(max(line["val_auc"] for line in lines))
        assert row.val_auc == pytest.approx(lines[-1]["val_auc"])
    assert_mlflow_has_every_report(tmp_path / "sweeps" / "k", reported)
    assert (tmp_path / "sweeps" / "k" / "val_auc_vs_k.png").stat().st_size > 1000
    assert "| k |" in (tmp_path / "sweeps" / "k" / "results.md").read_text()
    reports = sorted((tmp_path / "sweeps" / "k").glob("*/result.json"))
    before = [p.read_text() for p in reports]
    again = run_sweep(cfg)  # the folder exists: restored, and finished trials are not run again
    assert [p.read_text() for p in reports] == before and len(again) == 2
    assert all(json.loads(p.read_text().splitlines()[-1])["epoch"] == 1 for p in reports)


def assert_mlflow_has_every_report(folder, reported: dict) -> None:
    """Ray Tune's MLflowLoggerCallback (``mlflow: true``) logged one MLflow run per trial in ``SWEEP/mlruns``: its
    params are the trial's, its val_auc history is what the trial reported, by training iteration."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"file:{folder / 'mlruns'}")
    runs = client.search_runs([client.get_experiment_by_name(folder.name).experiment_id])
    assert sorted(int(run.data.params["k"]) for run in runs) == sorted(reported)
    for run in runs:
        lines = reported[int(run.data.params["k"])]
        history = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "val_auc"))
        assert history == [(line["training_iteration"], line["val_auc"]) for line in lines]


def test_an_upstream_run_needs_its_method_and_swept_params(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("method: oanet\nbase_config: oanet_tiny.yaml\nmetric: val_auc\nmode: max\n"
                    "upstream: {method: dfg, base_config: dfg_tiny.yaml, into: generator, params: [lr]}\n"
                    "params: {real_face_fraction: {grid: [0.5]}}\n")
    with pytest.raises(ValueError, match=r"upstream.params \['lr'\] are not among the swept params"):
        read_space(path)
    shipped = read_space("tune_spaces/agfas_real_faces.yaml")
    assert shipped["upstream"]["params"] == ["real_face_fraction"]
    assert shipped["params"]["real_face_fraction"]["grid"] == [0.25, 0.5, 1.0]


@pytest.mark.slow
def test_the_real_face_fraction_sweeps_generator_cues_and_oanet_in_each_trial(tmp_path, class8_cache):
    """AG-FAS Table VII end to end: every trial trains its own generator on its fraction of the real faces, makes
    the cues with it and trains OA-Net on them."""
    from fas.tune.sweep import run_sweep

    cache = class8_cache / "cache"
    space = tmp_path / "real.yaml"
    space.write_text(f"""method: oanet
base_config: oanet_tiny.yaml
metric: val_auc
mode: max
upstream:
  method: dfg
  base_config: dfg_tiny.yaml
  params: [real_face_fraction]
  fixed: {{cache: {cache}, steps: 2, checkpoint_every: 2, vae_fit_steps: 2, vae_fit_images: 32, num_workers: 1,
           cpus_per_worker: 0.9}}
  into: generator
fixed: {{source_cache: {cache}, steps: 2, checkpoint_every: 2, ddim_steps: 2, num_workers: 1, cpus_per_worker: 0.9}}
params:
  real_face_fraction: {{grid: [0.5, 1.0]}}
""")
    run_sweep(SweepConfig(space=str(space), name="real", storage_path=str(tmp_path / "sweeps"), protocol=LOO))
    table = pd.read_csv(tmp_path / "sweeps" / "real" / "results.csv")
    assert table["real_face_fraction"].tolist() == [0.5, 1.0] and table["status"].tolist() == ["done", "done"]
    generators = sorted((tmp_path / "sweeps" / "real_trials").glob("*_dfg/checkpoint_*/generator_config.json"))
    assert sorted(json.loads(p.read_text())["real_face_fraction"] for p in generators) == [0.5, 1.0]
    cue_indexes = sorted((tmp_path / "sweeps" / "real_trials").glob("*/cues/cache.json"))
    assert len(cue_indexes) == 2 and len({json.loads(p.read_text())["generator"] for p in cue_indexes}) == 2


def test_the_sweep_report_lists_every_trial_and_marks_the_best(tmp_path):
    from fas.eval.plots import plot_sweep

    table = pd.DataFrame({"k": [2, 2, 6, 10], "best_val_hter": [0.30, 0.10, 0.05, 0.20],
                          "val_auc": [0.7, 0.9, 0.95, 0.8], "val_hter": [0.3, 0.1, 0.06, 0.2],
                          "status": ["done", "done", "error", "done"]})
    space = {"method": "pdle", "metric": "val_hter", "mode": "min", "params": {"k": {}}}
    assert best_trial(table, space) == 1  # the errored trial's 0.05 does not win
    text = sweep_markdown(table, space)
    assert "Best trial: k = 2 (val_hter 0.1000); 4 trials." in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "best_val_hter" not in line]
    assert [r.startswith("| **best** |") for r in rows] == [False, True, False, False]
    path = plot_sweep(table, "k", "val_hter", 1, tmp_path / "val_hter_vs_k.png", title="pdle")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_a_sweep_whose_every_trial_errored_says_so_and_lists_the_errors(tmp_path):
    """No trial finished: the report says so, lists each trial with its error, and draws no plot (no best)."""
    from types import SimpleNamespace

    from fas.tune.sweep import write_sweep_report

    def errored(k, message, history=None):
        error = RuntimeError(f"Traceback ...\n  in run_trial\n{message}")  # Ray's: the exception's line last
        return SimpleNamespace(config={"k": k}, metrics=None if history is None else history.iloc[-1].to_dict(),
                               metrics_dataframe=history, error=error)

    one_epoch = pd.DataFrame({"epoch": [0], "val_auc": [0.8], "val_hter": [0.2], "loss": [0.5]})
    results = [errored(6, "ValueError: k=6 | too large"), errored(2, "MemoryError: worker OOM", one_epoch)]
    space = {"method": "pdle", "metric": "val_auc", "mode": "max", "params": {"k": {}}}
    paths = write_sweep_report(results, space, tmp_path)
    table = pd.read_csv(paths["csv"])
    assert table["k"].tolist() == [2, 6] and table["status"].tolist() == ["error", "error"]
    assert table["error"].tolist() == ["MemoryError: worker OOM", "ValueError: k=6 | too large"]
    assert table["best_val_auc"].tolist()[0] == 0.8 and table["epochs"].tolist() == [1, 0]
    assert best_trial(table, space) is None and "plot" not in paths
    text = paths["md"].read_text()
    assert "No trial finished (none completed with a val_auc): 2 of 2 trials errored." in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "best_val_auc" not in line]
    assert rows[0].startswith("|  | 2 | 0.8000 | 1 |") and rows[0].endswith("| error | MemoryError: worker OOM |")
    assert rows[1].endswith("| error | ValueError: k=6 \\| too large |")
    assert list(tmp_path.glob("*.png")) == []

