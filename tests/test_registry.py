"""The method registry's contract: a method defined outside the package (tests/toy) is trained by the quickstart,
scored by the evaluation harness, swept by Tune and served by Serve, with no other file changing; and the package's
layering (methods know nothing of Ray, evaluation and data sit below the methods, nothing branches on a method)."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pandas as pd
import pytest
import requests

import tests.toy.method  # noqa: F401 (registers "toy")
from fas.serve.bench import free_port
from fas.serve.load import serving_port

PACKAGE = Path(__file__).resolve().parent.parent / "fas"


def imports_of(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_methods_never_import_ray_or_deepspeed():
    for path in (PACKAGE / "methods").rglob("*.py"):
        bad = {n for n in imports_of(path) if n.split(".")[0] in ("ray", "deepspeed") or n.startswith("fas.engine.")
               and n != "fas.engine.config"}
        assert not bad, f"{path.relative_to(PACKAGE)} imports {bad}"


def test_evaluation_and_data_sit_below_the_methods():
    for folder in ("eval", "data"):
        for path in (PACKAGE / folder).rglob("*.py"):
            bad = {n for n in imports_of(path) if n.startswith(("fas.methods", "fas.engine", "fas.train"))}
            assert not bad, f"{path.relative_to(PACKAGE)} imports {bad}"


def test_nothing_branches_on_a_method_name():
    names = "|".join(["clipc8", "pdle", "dfg", "oanet", "agfas", "ssan", "safas", "memae", "deepsvdd"])
    pattern = re.compile(rf"""(method|\.name)\s*(==|!=|in)\s*\(?["']({names})["']""")
    for path in PACKAGE.rglob("*.py"):
        hits = [line for line in path.read_text().splitlines() if pattern.search(line)]
        assert not hits, f"{path.relative_to(PACKAGE)} branches on a method: {hits}"


def test_lookup_by_name_alias_and_config():
    from fas.methods import get_method, method_of_config, method_names
    from fas.methods.oanet.config import OANetConfig

    assert get_method("agfas") is get_method("oanet") and method_of_config(OANetConfig()).name == "oanet"
    assert {"clipc8", "pdle", "dfg", "oanet", "toy"} <= set(method_names(with_aliases=False))
    with pytest.raises(ValueError, match="unknown method 'nope'; known: \\['agfas', 'clipc8'"):
        get_method("nope")


def test_engine_flags_are_the_same_for_every_method_flat_or_nested(tmp_path):
    import argparse

    from fas.config import add_config_flags, config_from_args, load_config
    from fas.methods import get_method

    for name in ("clipc8", "pdle", "dfg", "oanet", "ssan", "safas", "memae", "deepsvdd", "toy"):
        method = get_method(name)
        parser = argparse.ArgumentParser()
        add_config_flags(parser, method.config)
        args = parser.parse_args(["--num-workers", "3", "--engine", "ddp", "--storage-path", "s", "--no-validate"])
        cfg = config_from_args(method.config, args, default=method.tiny_config)
        assert (cfg.engine.num_workers, cfg.engine.backend, cfg.engine.storage_path, cfg.engine.validate) == \
            (3, "ddp", "s", False), name
    nested, flat = tmp_path / "nested.yaml", tmp_path / "flat.yaml"
    nested.write_text("k: 4\nengine: {num_workers: 3, backend: deepspeed}\n")
    flat.write_text("k: 4\nnum_workers: 3\nengine: deepspeed\n")
    pdle = get_method("pdle")
    assert load_config(pdle.config, nested) == load_config(pdle.config, flat)
    # a partial section keeps the method's own defaults (PDLE: 200 epochs), not the engine class's
    assert load_config(pdle.config, nested).engine.epochs == 200


@pytest.fixture(scope="module")
def toy_quickstart(ray_local, tmp_path_factory):
    from fas.quickstart import QuickstartConfig, run_quickstart

    out = tmp_path_factory.mktemp("toy_qs")
    assert run_quickstart(QuickstartConfig(method="toy", size="tiny", out=str(out), image_size=64)) == 0
    return out


@pytest.mark.slow
def test_quickstart_and_evaluation_run_a_method_registered_outside_the_package(toy_quickstart):
    summary = json.loads((toy_quickstart / "quickstart_summary.json").read_text())
    model = toy_quickstart / "models" / "toy"
    meta = json.loads((model / "model_config.json").read_text())
    assert meta["method"] == "toy" and meta["method_module"] == "tests.toy.method"
    scores = pd.read_csv(toy_quickstart / "eval" / "toy" / "scores.csv")
    assert set(scores["split"]) == {"dev", "test"} and len(scores) == 2 * 72  # 8 classes x 3 domains x 3 per split
    assert summary["toy"]["auc"] == json.loads((model / "metrics.json").read_text())["auc"]


@pytest.mark.slow
def test_tune_sweeps_a_method_registered_outside_the_package(toy_quickstart, tmp_path):
    from fas.tune.sweep import SweepConfig, run_sweep

    space = tmp_path / "toy.yaml"
    space.write_text(f"method: toy\nbase_config: {tests.toy.method.CONFIG}\nmetric: val_auc\nmode: max\n"
                     "params:\n  lr: {grid: [0.1, 1.0]}\n")
    run_sweep(SweepConfig(space=str(space), name="toy", storage_path=str(tmp_path / "sweeps"), epochs=1,
                          cache=str(toy_quickstart / "cache" / "class8"), trial_cpus_per_worker=0.45))
    table = pd.read_csv(tmp_path / "sweeps" / "toy" / "results.csv")
    assert table["lr"].tolist() == [0.1, 1.0] and table["status"].tolist() == ["done", "done"]
    assert (table["epochs"] == 1).all()


@pytest.mark.slow
def test_serve_answers_with_a_method_registered_outside_the_package(toy_quickstart):
    from ray import serve

    from fas.methods import load_predictor
    from fas.serve.app import build_app
    from fas.serve.pipeline import FacePipeline
    from fas.serve.config import FaceConfig

    port = serving_port(free_port())  # an earlier module's Serve may still run: serve.start would keep its port
    tiny = {"ray_actor_options": {"num_cpus": 0.05}}
    face = {"detector": "none", "size": 64, "deployment": tiny}
    args = {"models": [{"name": "toy", "path": str(toy_quickstart / "models" / "toy"), "input": "frame",
                        "deployment": tiny}], "face": face, "fusion": {"deployment": tiny}, "ingress_deployment": tiny}
    image = next((toy_quickstart / "data" / "class8").rglob("*.png")).read_bytes()
    try:
        serve.run(build_app(args), name="toy", route_prefix="/")
        answer = requests.post(f"http://127.0.0.1:{port}/v1/liveness", files={"image": ("x.png", image)}, timeout=60)
    finally:
        serve.shutdown()
    assert answer.status_code == 200, answer.text
    crop = FacePipeline(FaceConfig(detector="none", size=64), {"frame"})(image)["inputs"]["frame"]
    expected = float(load_predictor(toy_quickstart / "models" / "toy", "cpu").predict([crop])["score"][0])
    assert answer.json()["models"]["toy"]["score"] == pytest.approx(expected, abs=1e-6)


def test_validation_reads_the_columns_the_trained_model_will_read():
    from fas.config import replace
    from fas.engine.launch import validation_columns
    from fas.methods import get_method

    oanet, dfg = get_method("oanet"), get_method("dfg")
    cfg = oanet.load_config(oanet.tiny_config)
    assert validation_columns(oanet, cfg) == ("image", "cue")
    assert validation_columns(oanet, replace(cfg, mode="image_only")) == ("image",)  # needs no cue to validate
    assert validation_columns(oanet, replace(cfg, validate=False)) is None
    assert validation_columns(dfg, dfg.load_config(dfg.tiny_config)) is None  # a generator gives no score


def test_quickstart_steps_cap_the_fields_a_method_scales(tmp_path):
    from fas.methods import get_method
    from fas.quickstart import QuickstartConfig, tiny_config

    dfg = get_method("dfg")
    runs = {steps: tiny_config(dfg, tmp_path, QuickstartConfig(steps=steps)) for steps in (None, 6, 300)}
    assert {steps: (c.engine.steps, c.vae_fit_steps) for steps, c in runs.items()} == {
        None: (100, 100), 6: (6, 6), 300: (300, 100)}  # capped, never raised
