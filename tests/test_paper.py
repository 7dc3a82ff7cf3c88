"""One real step of every paper config on CPU: the paper-size architectures loaded from the fabricated weight
stores (``paper_stores``), one training step through the engine (Ray Train, DeepSpeed, one worker, fp32, batch 2),
a checkpoint, then one evaluation batch through what evaluation and Serve load from that checkpoint.

What changes from each paper config is only what a 2-core machine needs: the cache (the generated CLASS-8 frames,
no protocol), one step of batch 2 (OA-Net: one row per domain and label), one worker without a GPU."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import require_free_disk
from fas.config import replace
from fas.methods import get_method, load_predictor, model_inputs, read_model_meta

pytestmark = [pytest.mark.paper, pytest.mark.slow]

# peak disk of each one-step run (`df` sampled every 2 s during `pytest -m paper`), with a margin
RUN_DISK_GIB = {"clipc8": 2.5, "dfg-sd15": 14.0, "anoddpm": 3.0}
ONE_STEP = dict(steps=1, epochs=None, checkpoint_every=1, validate=False, num_workers=1, use_gpu=False,
                cpus_per_worker=1.0, max_failures=0)


@pytest.fixture(autouse=True)
def free_the_run_folder(request, tmp_path):
    """A paper checkpoint is gigabytes (DFG's: the UNet, its Adam moments and its portable copy, ~13 GiB) and
    pytest keeps every ``tmp_path`` until the session ends: five of them filled a CI machine's disk."""
    need = [gib for fragment, gib in RUN_DISK_GIB.items() if fragment in request.node.name]
    require_free_disk(tmp_path, max(need, default=1.5), "this paper config's one-step run and checkpoint")
    yield
    shutil.rmtree(tmp_path, ignore_errors=True)


def paper_config(method: str, cache: Path, storage: Path, **changes):
    """The method's paper config (its YAML under fas/configs) with only the CPU-run changes."""
    cfg = get_method(method).load_config()
    return replace(cfg, cache=str(cache), storage_path=str(storage), name=f"paper_{method}", protocol=None,
                   **{**ONE_STEP, **changes})


def train_one_step(cfg) -> Path:
    from fas.engine import train

    run = train(cfg)
    state = json.loads((Path(run.checkpoint.path) / "train_state.json").read_text())
    assert state["step"] == 1 and np.isfinite(state["history"][-1]["loss"]), state
    return Path(run.checkpoint.path)


def score_one_batch(checkpoint: Path, cache: Path, rows: int = 2) -> np.ndarray:
    """Scores of the cache's first rows from the checkpoint's model folder, as evaluation and Serve load it."""
    from fas.data.cache import read_cache_table

    meta = read_model_meta(checkpoint)
    columns = model_inputs(meta)
    table = read_cache_table(cache, columns=list(columns)).slice(0, rows)
    scores = load_predictor(checkpoint, "cpu").predict(*[table[c].to_pylist() for c in columns])["score"]
    assert scores.shape == (rows,) and np.isfinite(scores).all() and ((scores >= 0) & (scores <= 1)).all()
    return scores


def test_clipc8_paper_config_one_step(paper_stores, class8_cache, tmp_path):
    cfg = paper_config("clipc8", class8_cache / "cache", tmp_path, batch_size=2)
    assert (cfg.model, cfg.pretrained, cfg.engine.zero_stage) == ("ViT-L-14", "openai", 2)
    checkpoint = train_one_step(cfg)
    assert read_model_meta(checkpoint)["preprocess"]["image_size"] == 224
    score_one_batch(checkpoint, class8_cache / "cache")


def test_pdle_paper_config_one_step(paper_stores, class8_cache, tmp_path):
    cfg = paper_config("pdle", class8_cache / "cache", tmp_path, batch_size=2, backend="deepspeed")
    assert (cfg.model, cfg.k, cfg.crop_size) == ("pdle-resnet18", 10, 224)
    score_one_batch(train_one_step(cfg), class8_cache / "cache")


def test_oanet_paper_config_one_step(paper_stores, cue_cache, tmp_path):
    cfg = paper_config("oanet", cue_cache, tmp_path, per_group=1, backend="deepspeed")
    assert (cfg.model, cfg.mode) == ("oanet-vitb16", "oanet")
    score_one_batch(train_one_step(cfg), cue_cache)


@pytest.mark.parametrize("model,condition", [("dfg-sd15", "identity"), ("anoddpm", "none")])
def test_generator_paper_configs_one_step(model, condition, paper_stores, class8_cache, tmp_path):
    from fas.cues import load_cue_maker
    from fas.data.cache import read_cache_table

    cfg = paper_config("dfg", class8_cache / "cache", tmp_path, model=model, condition=condition, batch_size=2,
                       identity=str(paper_stores["onnx"]))
    checkpoint = train_one_step(cfg)
    maker = load_cue_maker(checkpoint, "cpu", ddim_steps=5)  # the paper's noising depth, a coarse DDIM grid
    table = read_cache_table(class8_cache / "cache", columns=["frame_id", "image"]).slice(0, 1)
    cues, rms, errors = maker(table["image"].to_pylist(), table["frame_id"].to_pylist())
    assert errors == [""] and np.isfinite(rms[0])


def test_the_gpu_benchs_paper_config_rows_load_from_the_stores(paper_stores):
    """What ``fas bench --gpu`` runs last on a GPU (clipc8.yaml and dfg.yaml from the fabricated stores), here on the
    CPU at batch 1 and stage 0 so that its first run on a lent GPU is not its first run."""
    import torch

    from fas.bench.gpu import GpuSpec, one_rank_group, paper_config_rows

    one_rank_group(torch.device("cpu"))
    rows = paper_config_rows(GpuSpec(warmup=1, steps=1), torch.device("cpu"), None, paper_stores["onnx"],
                             batch_size=1, zero_stage=0)
    assert [row["what"] for row in rows] == [
        "clipc8.yaml as configured (ViT-L-14, fp32 ZeRO-0, batch 1), weights from the fabricated stores",
        "dfg.yaml as configured (dfg-sd15, fp32 ZeRO-0, batch 1), weights from the fabricated stores"]
    # ViT-L/14 at 224 px, analytically: 257 tokens x 24 blocks of qkv, projection and a 4x MLP, the 14 px patch
    # embedding and the 768-d projection, forward; backward twice that, less the pixels' gradient. (The CPU's
    # scaled-dot-product attention is not counted by FlopCounterMode: a GPU count adds its 2 x 257^2 x 1024 x 24.)
    width, tokens = 1024, 257
    linear = 24 * tokens * (4 * width * width + 2 * width * 4 * width) + 256 * 3 * 14 * 14 * width + width * 768
    patch = 256 * 3 * 14 * 14 * width
    assert rows[0]["gflops_per_img"] == pytest.approx((6 * linear - 2 * patch) / 1e9, abs=0.05)
