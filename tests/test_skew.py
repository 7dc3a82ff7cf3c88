"""Train/serve skew, the bug users meet first: one uploaded image gets the same crop bytes from Serve's face stage
as from the data plane, and the same score from the evaluation job, the predictor and the running Serve app."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.compute as pc
import pytest
import requests

from tests.test_serve import build_clipc8_folder, build_pdle_folder
from fas.serve.bench import free_port
from fas.serve.load import serving_port

BUILDERS = {"clipc8": build_clipc8_folder, "pdle": build_pdle_folder}
TINY = {"ray_actor_options": {"num_cpus": 0.05}}


def serve_scores(folders: dict[str, Path], upload: bytes) -> dict[str, float]:
    """Per-model scores of ``upload`` from the Serve application (face stage as the cache was prepared)."""
    from ray import serve

    from fas.serve.app import build_app

    port = serving_port(free_port())  # the running Serve's port when one runs
    models = [{"name": n, "path": str(p), "input": "frame", "deployment": TINY} for n, p in folders.items()]
    args = {"models": models, "face": {"detector": "none", "size": 112, "deployment": TINY},
            "fusion": {"deployment": TINY}, "ingress_deployment": TINY}
    try:
        serve.run(build_app(args), name="skew", route_prefix="/")
        answer = requests.post(f"http://127.0.0.1:{port}/v1/liveness", files={"image": ("x.png", upload)},
                               timeout=120)
    finally:
        serve.shutdown()
    assert answer.status_code == 200, answer.text
    return {n: m["score"] for n, m in answer.json()["models"].items()}


@pytest.mark.slow
def test_one_image_one_score_in_evaluation_predictor_and_serve(class8_cache, tmp_path):
    from fas.data.cache import read_cache_table
    from fas.evaluate import EvaluateConfig, evaluate
    from fas.methods import load_predictor
    from fas.serve.config import FaceConfig
    from fas.serve.pipeline import FacePipeline

    table = read_cache_table(class8_cache / "cache", columns=["frame_id", "path", "split", "image"])
    row = table.filter(pc.equal(table["split"], "test")).slice(0, 1).to_pylist()[0]
    upload = Path(row["path"]).read_bytes()  # what a client would send: the original file
    # Serve's face stage (the data plane's detector and crop, as the cache was prepared) gives the same bytes
    assert FacePipeline(FaceConfig(detector="none", size=112), {"frame"})(upload)["inputs"]["frame"] == row["image"]

    folders, evaluated, predicted = {}, {}, {}
    for name, build in BUILDERS.items():
        folders[name] = tmp_path / name
        folders[name].mkdir()
        build(folders[name], seed=7)
        (folders[name] / "metrics.json").write_text(json.dumps({"threshold": 0.5, "threshold_rule": "dev_eer"}))
        evaluate(EvaluateConfig(checkpoint=str(folders[name]), cache=str(class8_cache / "cache"),
                                out=str(tmp_path / f"eval_{name}"), threshold_rule="0.5"))
        scores = pd.read_csv(tmp_path / f"eval_{name}" / "scores.csv")
        evaluated[name] = float(scores.loc[scores.frame_id == row["frame_id"], "score"].iloc[0])
        predicted[name] = float(load_predictor(folders[name], "cpu").predict([row["image"]])["score"][0])
    served = serve_scores(folders, upload)
    for name in BUILDERS:
        assert predicted[name] == pytest.approx(evaluated[name], abs=1e-6), name
        assert served[name] == pytest.approx(evaluated[name], abs=1e-6), name
