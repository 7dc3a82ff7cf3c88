"""AG-FAS end to end on Ray: ``fas quickstart --method agfas`` (generator, cues made for the run, OA-Net with SSDG
on them, the evaluation harness: what each noising-depth sweep trial runs) and the sweep's trial settings."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

PROTOCOL = "synth-cam-a&synth-cam-b->synth-cam-c"


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
def test_quickstart_runs_agfas_leave_one_domain_out_by_one_flag(tmp_path):
    """Generator, then OA-Net with its cues made first by that generator (the path each noising-depth sweep
    trial takes), trained on two camera domains and evaluated on the unseen third."""
    from tests.test_cli import _fas

    proc = _fas("quickstart", "--method", "agfas", "--size", "tiny", "--steps", "8", "--protocol", PROTOCOL,
                "--out", str(tmp_path / "qs"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "De-fake Face Generator" in proc.stdout and "of -residual RMS as liveness" in proc.stdout
    summary = json.loads((tmp_path / "qs" / "quickstart_summary.json").read_text())
    assert Path(summary["agfas"]["report"]).exists()
    cue_cache = tmp_path / "qs" / "train" / "oanet_tiny" / "cues"
    assert json.loads((cue_cache / "cache.json").read_text())["frames_with_cue"] == 216
    folder = Path(summary["agfas"]["checkpoint"])
    state = json.loads((folder / "train_state.json").read_text())
    assert state["step"] == 8 and [h["step"] for h in state["history"]] == [8]
    assert {"cls", "adv", "triplet", "val_auc"} <= set(state)
    meta = json.loads((folder / "model_config.json").read_text())
    assert meta["inputs"] == ["image", "cue"] and meta["cue"]["ddim_steps"] == 5 and meta["cue"]["noise_step"] == 801
    metrics = json.loads((tmp_path / "qs" / "eval" / "agfas" / "metrics.json").read_text())
    assert metrics["threshold_rule"] == "dev_eer" and metrics["level"] == "sample"
    scored = pd.read_csv(tmp_path / "qs" / "eval" / "agfas" / "scores.csv", float_precision="round_trip")
    assert len(scored) == 216 and scored["score"].between(0, 1).all()  # every frame has a cue in this cache
    test = scored[(scored.domain == "synth-cam-c") & (scored.split != "dev")]  # the unseen domain's rows
    assert metrics["n_real"] + metrics["n_attack"] == len(test)
    assert (metrics["n_real"], metrics["n_attack"]) == (int((test.label == 1).sum()), int((test.label == 0).sum()))
    # the reported figures, recomputed from the written scores: label 1 = bona fide, higher score = more real
    expected_auc = roc_auc_score(test["label"], test["score"])
    assert metrics["auc"] == pytest.approx(expected_auc) and summary["agfas"]["auc"] == pytest.approx(expected_auc)
    # accepted as real iff score >= threshold: HTER = (attacks accepted + bona fide rejected) / 2, pooled attacks
    accepted = test["score"] >= metrics["threshold"]
    attacks_accepted = accepted[test.label == 0].mean()
    reals_rejected = (~accepted[test.label == 1]).mean()
    assert metrics["hter"] == pytest.approx((attacks_accepted + reals_rejected) / 2)
    assert summary["agfas"]["hter"] == pytest.approx(metrics["hter"])
    served = tmp_path / "qs" / "models" / "agfas"
    assert json.loads((served / "model_config.json").read_text())["method"] == "oanet"
    assert (served / "generator" / "generator_config.json").is_file() and (served / "generator" / "unet").is_dir()
