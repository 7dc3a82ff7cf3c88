"""CLIPC8: the model (frozen text features, cosine logits, configurable prompts) and its training on Ray Train."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

from fas.config import from_dict
from fas.methods.clipc8.config import CLASS8_PROMPTS, CLIPC8Config
from fas.methods.clipc8.model import WeightsNotFound, create_clipc8
from fas.methods.clipc8.task import category_index


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return create_clipc8("clipc8-tiny", None)


def test_only_the_image_encoder_trains_and_text_features_are_fixed(tiny):
    model, pre = tiny
    trainable = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"visual"} and pre["image_size"] == 112
    assert model.text_features.shape == (8, 128)
    assert torch.allclose(model.text_features.norm(dim=-1), torch.ones(8), atol=1e-5)


def test_logits_are_scaled_cosine_similarities_and_score_is_p_real(tiny):
    model, _ = tiny
    x = torch.randn(3, 3, 112, 112)
    with torch.no_grad():
        img = F.normalize(model.visual(x), dim=-1)
        expected = model.logit_scale * img @ model.text_features.t()
        assert torch.allclose(model(x), expected, atol=1e-5)
    out = model.predict(x)
    assert torch.allclose(out["probs"].sum(-1), torch.ones(3), atol=1e-5)
    assert torch.equal(out["score"], out["probs"][:, 0]) and torch.equal(out["category"], out["probs"].argmax(-1))


def test_prompt_sets_are_configuration(tiny):
    digits, _ = create_clipc8("clipc8-tiny", None, texts=[str(i) for i in range(1, 9)])
    assert not torch.allclose(digits.text_features, tiny[0].text_features)


def test_missing_weights_error_says_what_and_how(empty_hub_cache):
    with pytest.raises(WeightsNotFound, match="`hf download timm/vit_large_patch14_clip_224.openai "
                                              "open_clip_model.safetensors`"):
        create_clipc8("ViT-L-14", "openai")


def test_attack_types_map_to_categories_through_config():
    cfg = CLIPC8Config(attack_to_category={"print": "face_mask", "replay": "recaptured"})
    assert category_index(["real", "print", "replay", "id_card"], cfg).tolist() == [0, 2, 5, 1]
    with pytest.raises(ValueError, match="'hologram' maps to no category"):
        category_index(["hologram"], cfg)
    assert [k for k, _ in CLASS8_PROMPTS] == cfg.categories


def registered_checkpoints(run_dir: Path) -> int:
    """Checkpoints Ray Train's controller has registered (and would resume from), read from its snapshot file."""
    try:
        return len(json.loads((run_dir / "checkpoint_manager_snapshot.json").read_text())["checkpoint_results"])
    except (OSError, ValueError, KeyError):
        return 0


def own_train_workers() -> list:
    """Live Ray Train workers of this session's Ray cluster: children of its raylet. Another Ray instance on the
    machine (a second test run, a stopped process of an old one) has its own, which the drill must never kill."""
    import psutil
    import ray

    raylet = psutil.Process(ray._private.worker._global_node.all_processes["raylet"][0].process.pid)
    live = []
    for child in raylet.children():
        try:
            if "RayTrainWorker" in " ".join(child.cmdline()) and child.status() not in (
                    psutil.STATUS_ZOMBIE, psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP):
                live.append(child)
        except psutil.NoSuchProcess:  # it ended while we looked
            continue
    return live


def tensorboard_scalars(folder: Path) -> dict[str, dict[int, float]]:
    """tag -> {step: value} from tensorboardX's event files (TFRecords of Event protos: length, its CRC, the
    record, its CRC); a step logged twice (a resumed run) keeps its last value."""
    import struct

    from tensorboardX.proto.event_pb2 import Event

    scalars: dict[str, dict[int, float]] = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data, offset = path.read_bytes(), 0
        while offset < len(data):
            (length,) = struct.unpack("<Q", data[offset:offset + 8])
            event = Event.FromString(data[offset + 12:offset + 12 + length])
            offset += 12 + length + 4
            for value in event.summary.value:
                scalars.setdefault(value.tag, {})[event.step] = value.simple_value
    return scalars


def assert_mlflow_has_the_history(run_dir: Path, name: str, history: list[dict]) -> None:
    """Opt-in MLflow (``mlflow: true``): read back with MLflow's own client, every metric's history (epoch, value)
    is the run's ``train_state.json`` history, once per epoch though a worker was killed, and the params are its
    config. MLflow 3 opens a file store only with MLFLOW_ALLOW_FILE_STORE=true (the run set it when it wrote)."""
    from mlflow.tracking import MlflowClient

    from fas.engine.tracking import MLFLOW_DIR

    client = MlflowClient(tracking_uri=f"file:{run_dir / MLFLOW_DIR}")
    (logged,) = client.search_runs([client.get_experiment_by_name(name).experiment_id])
    assert logged.info.run_name == name and logged.info.status == "FINISHED"
    for key in ("loss", "lr", "val_auc", "val_hter"):
        points = sorted((m.step, m.value) for m in client.get_metric_history(logged.info.run_id, key))
        assert points == [(h["epoch"], h[key]) for h in history], key
    assert logged.data.params["engine.mlflow"] == "True" and logged.data.params["model"] == "clipc8-tiny"
    assert logged.data.params["engine.num_workers"] == "2"


@pytest.mark.slow
def test_deepspeed_workers_survive_a_killed_worker_and_the_checkpoint_evaluates(class8_cache, tmp_path):
    """2 DeepSpeed workers; one is SIGKILLed after two checkpoints: the run resumes from the last one, its loss
    falls, and its checkpoint evaluates on the test split and under a named protocol. It reads the shared cache and
    writes only under its own ``tmp_path``."""
    import signal
    import threading
    import time

    import pandas as pd

    from fas.engine import train
    from fas.evaluate import EvaluateConfig, evaluate

    cfg = from_dict(CLIPC8Config, dict(cache=str(class8_cache / "cache"), storage_path=str(tmp_path / "runs"),
                                       name="killed", model="clipc8-tiny", pretrained=None, epochs=6, lr=3e-4,
                                       num_workers=2, cpus_per_worker=0.5, batch_size=8, max_failures=2,
                                       tensorboard=True, mlflow=True))
    result = {}
    runner = threading.Thread(target=lambda: result.setdefault("r", train(cfg)))
    runner.start()
    run_dir, killed, deadline = tmp_path / "runs" / "killed", None, time.time() + 400
    while killed is None and runner.is_alive() and time.time() < deadline:
        # a checkpoint on disk is not yet one the controller resumes from: kill a training worker only once the
        # controller's own snapshot lists one (on a slow machine two epochs can land between its polls)
        if registered_checkpoints(run_dir) >= 1:
            workers = own_train_workers()
            if workers:
                killed = workers[0].pid
                workers[0].send_signal(signal.SIGKILL)
        time.sleep(0.1)
    runner.join(timeout=600)
    assert killed is not None, "no training worker was found to kill"
    checkpoint = Path(result["r"].checkpoint.path)
    state = json.loads((checkpoint / "train_state.json").read_text())
    assert state["epoch"] == 5
    resumed = {h["resumed_from"] for h in state["history"]}
    assert max(resumed) >= 1, f"the run restarted from epoch 0: {state['history']}"
    # every epoch is in the history exactly once: nothing after the checkpoint was lost, nothing ran twice
    assert [h["epoch"] for h in state["history"]] == list(range(6))
    losses = [h["loss"] for h in state["history"]]
    assert losses[-1] < 0.8 * losses[0], losses

    metrics = evaluate(EvaluateConfig(checkpoint=str(checkpoint), cache=str(class8_cache / "cache"),
                                      out=str(tmp_path / "eval")))
    assert metrics["threshold_rule"] == "dev_eer" and metrics["auc"] is not None
    assert {p.name for p in (tmp_path / "eval").iterdir()} >= {"scores.csv", "metrics.json", "report.md",
                                                               "roc.png", "config.yaml"}
    # provenance: the run wrote its whole config at start (a restart after the kill rewrites the same); the
    # evaluation names the checkpoint and that training, with the versions of what ran
    record = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert record["method"] == "clipc8" and record["config"] == json.loads(
        json.dumps(dataclasses.asdict(result["r"].config), default=str))
    assert record["deepspeed"]["zero_optimization"] == {"stage": 2} and "deepspeed" in record["package_versions"]
    assert sorted(p.name for p in run_dir.glob("config*.yaml")) == ["config.yaml"]
    last = state["history"][-1]  # the curves: each checkpoint's loss, LR and validation, as it reported them
    assert (last["loss"], last["lr"], last["val_auc"], last["val_hter"]) == (state["loss"], state["lr"],
                                                                            state["val_auc"], state["val_hter"])
    assert (tmp_path / "eval" / "training_curves.png").read_bytes() == (run_dir / "curves.png").read_bytes()
    assert "![Training curves (the evaluated run)](training_curves.png)" in (tmp_path / "eval" / "report.md").read_text()
    report = (tmp_path / "eval" / "report.md").read_text()
    assert "![Most wrong frames](worst_frames.png)" in report
    assert (tmp_path / "eval" / "worst_frames.png").read_bytes()[:4] == b"\x89PNG"
    logged = tensorboard_scalars(run_dir / "tensorboard")  # opt-in: each checkpoint's report, by epoch
    assert sorted(logged["train/loss"]) == list(range(6)) and logged["train/loss"][5] == pytest.approx(state["loss"])
    assert logged["train/val_auc"][5] == pytest.approx(state["val_auc"])
    assert_mlflow_has_the_history(run_dir, "killed", state["history"])

    evaluated = yaml.safe_load((tmp_path / "eval" / "config.yaml").read_text())
    assert evaluated["training"] == {"path": str(run_dir / "config.yaml"), **record}
    assert {"deepspeed", "open_clip_torch", "timm", "onnxruntime"} <= set(evaluated["package_versions"])
    assert (tmp_path / "eval" / "report.md").read_text().splitlines()[2:4] == [
        f"Evaluated: checkpoint `{checkpoint}`  ",
        f"Evaluated: trained as clipc8 (clipc8-tiny), deepspeed, ZeRO-2, precision auto, 6 epochs on 2 workers, "
        f"cache {class8_cache / 'cache'}, protocol train split  "]
    # a named protocol decides the rows: leave synth-cam-c out, threshold on the source domains' dev split
    loo = evaluate(EvaluateConfig(checkpoint=str(checkpoint), cache=str(class8_cache / "cache"),
                                  out=str(tmp_path / "eval_loo"), protocol="synth-cam-a&synth-cam-b->synth-cam-c"))
    scores = pd.read_csv(tmp_path / "eval_loo" / "scores.csv")
    assert loo["n_real"] + loo["n_attack"] == int(((scores.domain == "synth-cam-c") & (scores.split != "dev")).sum())


def test_zero_shot_checkpoint_is_the_pretrained_model_from_a_local_weights_file(tmp_path, class8_cache):
    """`fas zero-shot` resolves local weights, writes them untouched, and the harness evaluates the result."""
    import open_clip

    from fas.cli import main
    from fas.evaluate import EvaluateConfig, evaluate

    torch.manual_seed(3)
    pretrained = open_clip.create_model("clipc8-tiny")
    torch.save(pretrained.state_dict(), tmp_path / "clip.pt")
    out = tmp_path / "zs"
    assert main(["zero-shot", "--model", "clipc8-tiny", "--pretrained", str(tmp_path / "clip.pt"),
                 "--out", str(out)]) == 0
    saved = torch.load(out / "model.pt", weights_only=True)
    for name, value in pretrained.visual.state_dict().items():
        assert torch.equal(saved[f"visual.{name}"], value), name
    assert json.loads((out / "model_config.json").read_text())["zero_shot"] is True
    metrics = evaluate(EvaluateConfig(checkpoint=str(out), cache=str(class8_cache / "cache"), out=str(tmp_path / "e"),
                                      threshold_rule="0.5"))
    assert metrics["threshold"] == 0.5 and len(metrics["categories"]["confusion_matrix"]) == 8


def test_predictor_runs_on_the_requested_device_and_returns_numpy(tmp_path):
    import numpy as np

    from fas.data.faces import encode_image
    from fas.methods import load_predictor
    from fas.methods.base import write_model_folder
    from fas.methods.clipc8.task import portable_meta

    model, pre = create_clipc8("clipc8-tiny", None)
    write_model_folder(tmp_path, model.state_dict(), portable_meta(CLIPC8Config(model="clipc8-tiny"), pre))
    predictor = load_predictor(tmp_path, device="cpu")
    out = predictor.predict([encode_image(np.full((64, 64, 3), 128, np.uint8))])
    assert predictor.device == "cpu" and out["probs"].dtype == np.float32 and out["category"].dtype == np.int64
    assert np.allclose(out["probs"].sum(-1), 1.0, atol=1e-5)
