"""A DeepSpeed worker SIGKILLed mid-step in PDLE, OA-Net and DFG training (issue 22, drill 1): the run resumes from
its last checkpoint, repeats at most ``checkpoint_every`` of work, continues its step counter, LR schedule and data
position, reports every checkpoint once, and its final model loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fas.drills.training import PDLE_TINY, worker_killed_oanet, worker_killed_pdle


def assert_drill(drill) -> None:
    f = drill.figures
    assert f["attempts"] == 2, f  # one kill, one resume
    assert f["reported"] == f["expected_reports"], f  # every checkpoint reported once, none twice
    assert 0 < f["steps_redone"] <= f["bound_steps"], f
    assert f["lr_continues"], f
    assert drill.passed and drill.recovery_s is not None and drill.recovery_s > 0


@pytest.mark.slow
def test_dfg_worker_killed_mid_step(dfg_killed):
    """The session's generator run is itself the drill (conftest ``dfg_killed``): killed in step 6 of 12."""
    cfg, result, drill = dfg_killed
    assert_drill(drill)
    f = drill.figures
    assert (f["killed_at_step"], f["resumed_at_step"], f["steps_redone"], f["final_step"]) == (6, 4, 2, 12)
    # a step run resumes inside its epoch, after the batches that epoch had given (the position was saved with it)
    state = json.loads((Path(result.checkpoint.path) / "train_state.json").read_text())
    assert state["step"] == 12 and [h["resumed_from"] for h in state["history"]] == [0, 4, 4]


@pytest.mark.slow
def test_pdle_worker_killed_mid_step(class8_cache, tmp_path):
    drill = worker_killed_pdle(tmp_path, cache=class8_cache / "cache")
    assert_drill(drill)
    f = drill.figures
    # killed in epoch 2 (step 4 of 3 epochs of about 3 steps): resumed from epoch 1's end, nothing of epoch 1 redone
    assert f["resumed_from"] == 1 and f["resumed_position"] == {"epoch": 1, "epoch_batches": 0}
    assert f["expected_reports"] == list(range(PDLE_TINY["epochs"]))
    from fas.methods import load_predictor  # the final model loads

    checkpoint = sorted((tmp_path / "runs" / "pdle").glob("checkpoint_epoch_*"))[-1]
    assert load_predictor(checkpoint) is not None


@pytest.mark.slow
def test_oanet_worker_killed_mid_step(cue_cache, tmp_path):
    drill = worker_killed_oanet(tmp_path, cues=cue_cache)
    assert_drill(drill)
    f = drill.figures
    assert (f["killed_at_step"], f["resumed_at_step"], f["steps_redone"], f["final_step"]) == (5, 3, 2, 9)
