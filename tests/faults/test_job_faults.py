"""The driver of ``fas prepare`` and of ``jobs/make_cues.py`` SIGKILLed halfway, then rerun (issue 22, drills 2
and 3): the partial cache is refused, never read as whole, and the rerun's cache equals an uninterrupted one."""

from __future__ import annotations

import pytest

from fas.drills.jobs import cue_driver_killed, prepare_killed


@pytest.mark.slow
def test_prepare_killed_halfway_then_rerun(class8_cache, tmp_path):
    # the session's cache was prepared uninterrupted with the same settings (fas.drills.fixtures.PREPARE)
    drill = prepare_killed(tmp_path, manifest=class8_cache / "class8.parquet", reference=class8_cache / "cache")
    f = drill.figures
    assert f["shards_at_kill"] >= 2 and f["refused_while_partial"], f
    assert f["identical_bytes"] and f["frames"] == f["rows"] == f["reference_frames"] == f["index_frames"], f
    assert drill.passed


@pytest.mark.slow
def test_cue_driver_killed_halfway_then_rerun(dfg_run, class8_cache, cue_cache, tmp_path):
    from pathlib import Path

    cfg, _ = dfg_run
    drill = cue_driver_killed(tmp_path, cache=class8_cache / "cache", generator=Path(cfg.engine.storage_path) / "dfg",
                              reference=cue_cache)
    f = drill.figures
    assert f["refused_while_partial"] and f["resumed_frames"] > 0, f
    # every source frame has exactly one cue row, equal to the uninterrupted run's
    assert f["rows"] == f["frames"] == f["source_frames"], f
    assert f["max_cue_difference"] <= 2e-3, f
    assert drill.passed
