"""Opt-in MLflow tracking of a training run: a local file store in the run folder, no server."""

from __future__ import annotations

import pytest

from fas.engine.tracking import MLFLOW_DIR, flat_params, mlflow_uri


def test_the_mlflow_setting_names_a_store_or_is_a_clear_error(tmp_path):
    run_dir = tmp_path / "runs" / "r"
    assert mlflow_uri(False, run_dir) is None and mlflow_uri("false", run_dir) is None
    assert mlflow_uri(True, run_dir) == mlflow_uri("true", run_dir) == f"file://{run_dir.resolve()}/{MLFLOW_DIR}"
    assert mlflow_uri("http://127.0.0.1:5000", run_dir) == "http://127.0.0.1:5000"
    with pytest.raises(ValueError, match="mlflow must be true, false or a tracking URI"):
        mlflow_uri("mlruns", run_dir)
    with pytest.raises(ValueError, match="give mlflow a tracking URI"):
        mlflow_uri(True, "s3://bucket/runs/r")
    assert flat_params({"k": 10, "engine": {"num_workers": 1, "address": None}}) == {
        "k": "10", "engine.num_workers": "1", "engine.address": "None"}


# a run's history and config read back from its MLflow store: tests/test_clipc8.py (a killed worker's run)
