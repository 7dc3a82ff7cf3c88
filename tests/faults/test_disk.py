"""A full disk or a read-only folder while fas writes (fault drills disk_full_cache, read_only_report; tmpfs, root):
an error naming the path, no partial file under a final name, everything finished before left as it was.

disk_full_checkpoint (a real Ray Train run on a filling tmpfs) runs in ``fas drill`` only: it takes minutes.
"""

from __future__ import annotations

import errno
import json
import shutil

import pytest
import torch

from fas.drills import small_filesystem
from fas.drills.disk import digests, disk_full_cache, leftovers, read_only_report
from fas.integrity import StorageError


def test_a_full_disk_keeps_finished_shards_and_the_resume_redoes_only_the_rest(tmp_path):
    result = disk_full_cache(tmp_path)
    assert result.passed, result.figures
    f = result.figures
    assert f["error_is_enospc"] and f["error_names_shard"] and f["leftover_files"] == []
    assert f["finished_shards_unchanged"] and f["shards_finished"] * 8 == f["rows_finished"] == f["resume_skips"]
    assert f["rewritten"] == f["frames"] - f["rows_finished"] and f["frames_lost"] == 8
    assert f["frames_after_resume"] == f["unique_after_resume"] == f["frames"] == 96


def test_a_read_only_report_folder_is_named_and_the_old_report_kept(tmp_path):
    result = read_only_report(tmp_path)
    assert result.passed, result.figures
    f = result.figures
    assert f["error_is_erofs"] and f["report_unchanged"]
    assert f["error"].startswith(f"[Errno 30] cannot write {tmp_path}/eval/scores.csv: Read-only file system")
    assert f["written_elsewhere"] == f["files_before"]


def test_a_model_folder_that_does_not_fit_leaves_the_previous_one_whole(tmp_path):
    """A checkpoint's portable folder written next to an earlier one on a disk with room for one."""
    from fas.methods import read_model_meta
    from fas.methods.base import write_model_folder

    state = {"weight": torch.ones(64, 1024)}  # 256 KiB of fp32
    meta = {"method": "pdle", "preprocess": {}}
    with small_filesystem(tmp_path / "disk", "400k") as disk:
        write_model_folder(disk / "checkpoint_1", state, meta)
        before = digests(disk / "checkpoint_1")
        with pytest.raises(StorageError, match=f"cannot write {disk}/checkpoint_2/model.pt: No space left") as caught:
            write_model_folder(disk / "checkpoint_2", state, meta)
        assert caught.value.errno == errno.ENOSPC
        assert leftovers(disk / "checkpoint_2", "*.json") == []  # no partial model.pt under any name
        assert digests(disk / "checkpoint_1") == before
        assert read_model_meta(disk / "checkpoint_1")["method"] == "pdle"  # checksums still match


def test_publishing_to_a_full_disk_keeps_the_published_model(tmp_path):
    from fas.drills.integrity import publish_pdle, score
    from fas.methods import get_method
    from fas.quickstart import publish_model

    checkpoint = publish_pdle(tmp_path / "checkpoint")
    eval_dir = tmp_path / "eval"
    eval_dir.mkdir()
    (eval_dir / "metrics.json").write_text(json.dumps({"threshold": 0.4}))
    size = sum(p.stat().st_size for p in checkpoint.iterdir()) * 3 // 2  # room for one copy, not two
    with small_filesystem(tmp_path / "disk", f"{size // 1024}k") as disk:
        target = publish_model(checkpoint, eval_dir, disk / "pdle", get_method("pdle"))
        before = digests(target)
        with pytest.raises(StorageError, match=f"cannot write {disk}/pdle.tmp: No space left"):
            publish_model(checkpoint, eval_dir, target, get_method("pdle"))
        assert sorted(p.name for p in disk.iterdir()) == ["pdle"] and digests(target) == before
        assert score(target) == score(checkpoint)
    shutil.rmtree(tmp_path / "checkpoint")


def test_an_unreadable_controller_record_is_set_aside_and_the_newest_complete_checkpoint_resumed(tmp_path):
    """A disk that filled while Ray Train's controller rewrote its snapshot leaves it empty (the
    disk_full_checkpoint drill); the rerun must not refuse to start, nor start over when a checkpoint is whole."""
    from fas.engine.loop import DS_TAG, SNAPSHOT_FILE, STATE_FILE, recover_snapshot

    run = tmp_path / "run"
    for name, whole in (("checkpoint_epoch_000000", True), ("checkpoint_epoch_000001", False)):
        (run / name / DS_TAG).mkdir(parents=True)
        if whole:  # train_state.json is written last: a folder without it was cut short
            (run / name / STATE_FILE).write_text("{}")
    assert recover_snapshot(run) is None  # no record yet: nothing to recover
    (run / SNAPSHOT_FILE).write_text('{"checkpoint_results": []}')
    assert recover_snapshot(run) is None and (run / SNAPSHOT_FILE).is_file()  # a readable record is Ray's to use
    (run / SNAPSHOT_FILE).write_text("")
    assert recover_snapshot(run) == str(run / "checkpoint_epoch_000000")
    assert not (run / SNAPSHOT_FILE).exists()
    assert [p.read_text() for p in run.glob(f"{SNAPSHOT_FILE}.unreadable-*")] == [""]  # kept for a post-mortem
