"""AG-FAS end to end on Ray: cues made for a run, then OA-Net with SSDG on them through the evaluation harness
(what each noising-depth sweep trial runs), the sweep's trial settings, and ``fas quickstart --method agfas``."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

PROTOCOL = "synth-cam-a&synth-cam-b->synth-cam-c"


@pytest.fixture(scope="module")
def oanet_run(dfg_run, class8_cache, tmp_path_factory):
    """OA-Net with its cues made first by the generator of ``dfg_run`` (the path each noising-depth sweep trial
    takes), on a 2-step DDIM grid: fast, not faithful."""
    from fas.config import from_dict
    from fas.engine import train
    from fas.methods.oanet.config import OANetConfig

    generator, _ = dfg_run
    cfg = from_dict(OANetConfig, dict(
        generator=str(Path(generator.engine.storage_path) / generator.engine.name), ddim_steps=2,
        source_cache=str(class8_cache / "cache"), storage_path=str(tmp_path_factory.mktemp("oanet")), name="oanet",
        protocol=PROTOCOL, model="oanet-tiny", pretrained=None, cue_pretrained=None, steps=8, checkpoint_every=4,
        per_group=2, pool_size=16, stream_batch=16, lr=1e-3, engine="ddp", num_workers=2, use_gpu=False,
        cpus_per_worker=0.5))
    return cfg, train(cfg)


@pytest.mark.slow
def test_oanet_trains_on_cues_and_evaluates_leave_one_domain_out(oanet_run, tmp_path):
    from fas.evaluate import EvaluateConfig, evaluate

    cfg, result = oanet_run
    cue_cache = Path(cfg.engine.storage_path) / cfg.engine.name / "cues"
    assert json.loads((cue_cache / "cache.json").read_text())["frames_with_cue"] == 216
    folder = Path(result.checkpoint.path)
    state = json.loads((folder / "train_state.json").read_text())
    assert state["step"] == 8 and [h["step"] for h in state["history"]] == [4, 8]
    assert {"cls", "adv", "triplet", "val_auc"} <= set(result.metrics)
    meta = json.loads((folder / "model_config.json").read_text())
    assert meta["inputs"] == ["image", "cue"] and meta["cue"]["ddim_steps"] == 2 and meta["cue"]["noise_step"] == 801
    metrics = evaluate(EvaluateConfig(checkpoint=str(folder), cache=str(cue_cache), out=str(tmp_path / "eval"),
                                      protocol=PROTOCOL))
    assert 0 <= metrics["hter"] <= 1 and 0 <= metrics["auc"] <= 1
    scored = pd.read_csv(tmp_path / "eval" / "scores.csv")
    assert len(scored) == 216 and scored["score"].between(0, 1).all()  # every frame has a cue in this cache


@pytest.mark.slow
def test_oanet_without_a_cue_cache_is_a_clear_error(class8_cache, tmp_path):
    from fas.config import from_dict
    from fas.engine import train
    from fas.methods.oanet.config import OANetConfig

    with pytest.raises(ValueError, match="without cues; make its cues first"):
        train(from_dict(OANetConfig, dict(cache=str(class8_cache / "cache"), storage_path=str(tmp_path),
                                          model="oanet-tiny", pretrained=None, cue_pretrained=None, use_gpu=False)))


def test_noising_depth_sweep_sets_generator_and_depth_per_trial():
    from fas.tune.sweep import SweepConfig, read_space, trial_overrides

    space = read_space("tune_spaces/dfg_steps.yaml")
    assert space["method"] == "oanet" and space["params"]["noise_step"] == {"grid": [250, 500, 1000]}
    overrides = trial_overrides(space, SweepConfig(cache="c", trial_workers=2))
    assert overrides["generator"] == "runs/dfg" and overrides["source_cache"] == "cache/ocim"
    assert overrides["cache"] == "c" and overrides["num_workers"] == 2 and "protocol" not in overrides


@pytest.mark.slow
def test_quickstart_runs_agfas_by_one_flag(tmp_path):
    from tests.test_cli import _fas

    proc = _fas("quickstart", "--method", "agfas", "--size", "tiny", "--steps", "6", "--out", str(tmp_path / "qs"),
                cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "De-fake Face Generator" in proc.stdout and "of -residual RMS as liveness" in proc.stdout
    summary = json.loads((tmp_path / "qs" / "quickstart_summary.json").read_text())
    assert Path(summary["agfas"]["report"]).exists() and 0 <= summary["agfas"]["auc"] <= 1
    served = tmp_path / "qs" / "models" / "agfas"
    assert json.loads((served / "model_config.json").read_text())["method"] == "oanet"
    assert (served / "generator" / "generator_config.json").is_file() and (served / "generator" / "unet").is_dir()

