"""Model folders changed after publishing (fault drills tampered_weights, truncated_weights, tampered_config) and
the checksums behind them: recorded at write time, copied and re-checked by publishing, checked at every load."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest
import torch

from fas.drills.integrity import publish_pdle, score, tampered_config, tampered_weights, truncated_weights
from fas.integrity import CHECKSUMS_FILE, IntegrityError, sha256_file

LOADERS = {"predict", "evaluate", "serve", "load_predictor"}


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Path:
    return publish_pdle(tmp_path_factory.mktemp("integrity") / "pdle")


def check_refused_everywhere(result) -> None:
    assert result.passed, result.figures
    assert result.figures["refused"] == dict.fromkeys(LOADERS, True)
    assert result.figures["error_names_file_and_digest"] == dict.fromkeys(LOADERS, True)
    assert result.figures["score_republished"] == result.figures["score_before"]


def test_tampered_weights_are_refused_by_every_loader(published, tmp_path):
    result = tampered_weights(tmp_path, model_folder=published)
    check_refused_everywhere(result)
    assert result.figures["digest_published"] == sha256_file(published / "model.pt")
    legacy = result.figures["unprotected"]  # without checksums the change goes unnoticed, bar a warning
    assert legacy["warned"] and legacy["error"] == "" and legacy["score"] != result.figures["score_before"]


def test_truncated_weights_are_refused_with_or_without_checksums(published, tmp_path):
    result = truncated_weights(tmp_path, model_folder=published)
    check_refused_everywhere(result)
    legacy = result.figures["unprotected"]
    assert legacy["score"] is None and f"{tmp_path}/legacy/model.pt cannot be read as weights" in legacy["error"]


def test_tampered_config_is_refused_by_every_loader(published, tmp_path):
    result = tampered_config(tmp_path, model_folder=published)
    check_refused_everywhere(result)
    assert "model_config.json does not match its recorded checksum" in result.figures["errors"]["serve"]
    assert result.figures["unprotected"]["score"] != result.figures["score_before"]


def test_checksums_record_both_files_and_publishing_copies_and_rechecks_them(published, tmp_path):
    from fas.methods import get_method
    from fas.quickstart import publish_model

    recorded = json.loads((published / CHECKSUMS_FILE).read_text())["files"]
    assert recorded == {name: sha256_file(published / name) for name in ("model.pt", "model_config.json")}
    eval_dir = tmp_path / "eval"
    eval_dir.mkdir()
    (eval_dir / "metrics.json").write_text(json.dumps({"threshold": 0.4}))
    target = publish_model(published, eval_dir, tmp_path / "models" / "pdle", get_method("pdle"))
    assert json.loads((target / CHECKSUMS_FILE).read_text())["files"] == recorded
    checkpoint = tmp_path / "checkpoint"
    shutil.copytree(published, checkpoint)
    (checkpoint / "model_config.json").write_text("{}")
    with pytest.raises(IntegrityError, match=r"\.tmp/model_config\.json does not match its recorded checksum"):
        publish_model(checkpoint, eval_dir, target, get_method("pdle"))
    assert sorted(p.name for p in target.parent.iterdir()) == ["pdle"]  # no half-published folder left
    assert score(target) == score(published)  # the earlier publication is untouched


def test_a_folder_from_before_checksums_loads_with_a_warning_naming_it(published, tmp_path):
    legacy = tmp_path / "legacy"
    shutil.copytree(published, legacy)
    (legacy / CHECKSUMS_FILE).unlink()
    with pytest.warns(UserWarning, match=f"{legacy} has no checksums.json"):
        assert score(legacy) == score(published)


class Payload:
    ran = False

    def __reduce__(self):
        return (Payload.mark, ())

    @staticmethod
    def mark():
        Payload.ran = True


def test_weights_are_read_without_running_pickled_code(published, tmp_path):
    legacy = tmp_path / "legacy"
    shutil.copytree(published, legacy)
    (legacy / CHECKSUMS_FILE).unlink()
    torch.save({"payload": Payload()}, legacy / "model.pt")
    with warnings.catch_warnings(), pytest.raises(IntegrityError, match="model.pt cannot be read as weights"):
        warnings.simplefilter("ignore")
        score(legacy)
    assert not Payload.ran


def test_generator_folders_are_checked_too(tmp_path):
    from fas.methods.cue_maker import read_generator, write_generator

    meta = {"method": "memae", "architecture": {"image_size": 32}}
    write_generator(tmp_path, {"w": torch.arange(4.0)}, meta)
    loaded, state = read_generator(tmp_path, "memae")
    assert loaded == meta and state["w"].tolist() == [0.0, 1.0, 2.0, 3.0]
    torch.save({"w": torch.zeros(4)}, tmp_path / "model.pt")
    with pytest.raises(IntegrityError, match=f"{tmp_path}/model.pt does not match its recorded checksum"):
        read_generator(tmp_path, "memae")
