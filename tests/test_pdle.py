"""PDLE: patch exchange and its labels, the expected liveness score, gradient reversal, training on Ray Train."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fas.methods.pdle.model import create_pdle, expected_liveness
from fas.models.layers import reverse_gradient
from fas.methods.pdle.patch_exchange import OppositePool, draw_lambda, exchange_batch, random_box
from fas.config import from_dict
from fas.methods.pdle.config import PDLEConfig

LOO = "synth-cam-a&synth-cam-b->synth-cam-c"


@pytest.mark.parametrize("k", [2, 5, 10, 17])
@pytest.mark.parametrize("height,width", [(56, 56), (64, 48), (31, 97)])
def test_exchanged_label_is_the_fraction_of_real_pixels(k, height, width):
    """Real images are all ones, spoofs all zeros: the mean of an exchanged image is its fraction of real pixels."""
    rng = np.random.default_rng(k * height)
    one_row_or_column = max(height, width) / (height * width)
    for anchor_label in (0.0, 1.0):
        for _ in range(20):
            lam = draw_lambda(k, rng)
            n = 4
            anchors = torch.full((n, 3, height, width), anchor_label)
            others = torch.full((n, 3, height, width), 1.0 - anchor_label)
            labels = torch.full((n,), anchor_label)
            images, targets = exchange_batch(anchors, labels, np.ones(n, bool), others, lam, rng)
            real_fraction = images.mean(dim=(1, 2, 3))
            expected = 1.0 - lam if anchor_label == 1.0 else lam
            assert torch.allclose(targets, torch.full((n,), expected))  # the discretised label u/K
            assert (real_fraction - targets).abs().max() <= one_row_or_column + 1e-6


def test_lambda_is_discrete_uniform_on_1_to_k():
    rng = np.random.default_rng(0)
    draws = [draw_lambda(4, rng) for _ in range(2000)]
    assert set(draws) == {0.25, 0.5, 0.75, 1.0}
    assert all(abs(draws.count(v) / 2000 - 0.25) < 0.05 for v in set(draws))


def test_boxes_stay_inside_the_image():
    rng = np.random.default_rng(1)
    for lam in (0.05, 0.5, 0.95, 1.0):
        for _ in range(200):
            top, left, h, w = random_box(40, 70, lam, rng)
            assert 0 <= top and top + h <= 40 and 0 <= left and left + w <= 70 and h >= 1 and w >= 1


def test_unchosen_rows_keep_their_image_and_binary_label():
    rng = np.random.default_rng(2)
    images, labels = torch.rand(4, 3, 8, 8), torch.tensor([1.0, 0.0, 1.0, 0.0])
    chosen = np.array([True, False, False, True])
    out, targets = exchange_batch(images, labels, chosen, torch.zeros(2, 3, 8, 8), 0.5, rng)
    assert torch.equal(out[1:3], images[1:3]) and targets[1:3].tolist() == [0.0, 1.0]
    assert targets[0] == 0.5 and targets[3] == 0.5


def _tagged_stream(n: int = 5, batch: int = 3):
    """Real images "1-i" and spoof images "0-i", interleaved, in batches with their labels."""
    rows = [(f"{label}-{i}", label) for i in range(n) for label in (1, 0)]
    return iter([{"image": [r[0] for r in rows[j:j + batch]], "label": np.array([r[1] for r in rows[j:j + batch]])}
                 for j in range(0, len(rows), batch)])


def test_the_partner_always_has_the_opposite_label_from_the_whole_stream():
    opened = []
    pool = OppositePool(lambda: (opened.append(1), _tagged_stream())[1], capacity=100, rng=np.random.default_rng(0))
    drawn = set()
    for _ in range(30):
        labels = [1, 0, 0, 1, 1, 1, 0]
        partners = pool.opposite(labels)
        assert [int(p.split("-")[0]) for p in partners] == [1 - y for y in labels]
        drawn |= set(partners)
    assert drawn == {f"{label}-{i}" for label in (0, 1) for i in range(5)}  # every image of the stream is reachable
    assert len(opened) == 1  # an ended stream waits for the next epoch
    pool.new_epoch()
    pool.opposite([0, 1])
    assert len(opened) == 2


def test_the_reservoir_is_bounded():
    pool = OppositePool(lambda: _tagged_stream(n=50, batch=10), capacity=8, rng=np.random.default_rng(1))
    for _ in range(15):
        pool.opposite([0, 1])
    assert all(len(r) == 8 for r in pool._reservoir.values())


def test_a_label_with_no_images_is_a_clear_error():
    pool = OppositePool(lambda: iter([{"image": ["1-0"], "label": np.array([1])}]))
    with pytest.raises(ValueError, match="no training images with label 0"):
        pool.opposite([1])


def test_expected_liveness_stays_in_unit_interval():
    logits = torch.randn(500, 11) * 50
    rho = expected_liveness(logits)
    assert rho.min() >= 0 and rho.max() <= 1
    assert torch.allclose(expected_liveness(torch.tensor([[0.0, -1e4, -1e4], [-1e4, -1e4, 0.0]])),
                          torch.tensor([0.0, 1.0]))
    model = create_pdle("pdle-tiny", None, num_levels=11, num_domains=3)
    out = model(torch.randn(4, 3, 56, 56) * 10)
    assert out["score"].min() >= 0 and out["score"].max() <= 1 and out["domain_logits"].shape == (4, 3)


def test_gradient_reversal_flips_the_gradient_sign_numerically():
    torch.manual_seed(0)
    x = torch.randn(5, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(5, dtype=torch.float64)

    def f(v, coeff):
        return (weights * torch.tanh(reverse_gradient(v, coeff))).sum()

    f(x, 0.7).backward()
    eps, numeric = 1e-6, torch.zeros(5, dtype=torch.float64)
    with torch.no_grad():
        for i in range(5):
            step = torch.zeros(5, dtype=torch.float64)
            step[i] = eps
            numeric[i] = (f(x + step, 0.7) - f(x - step, 0.7)) / (2 * eps)  # the forward is the identity
    assert torch.allclose(x.grad, -0.7 * numeric, atol=1e-6)


def test_ablation_switches_change_the_head():
    assert PDLEConfig(k=10).num_levels == 11 and PDLEConfig(k=4).num_levels == 5
    assert PDLEConfig(label_encoding=False).num_levels == 2


def _tiny_cfg(cache_root: Path, name: str, **kw) -> PDLEConfig:
    base = dict(cache=str(cache_root / "cache"), storage_path=str(cache_root / "runs"), name=name, model="pdle-tiny",
                pretrained=None, epochs=6, batch_size=32, lr=1e-3, image_size=64, crop_size=56, num_workers=2,
                cpus_per_worker=0.5, protocol=LOO)
    return from_dict(PDLEConfig, {**base, **kw})


@pytest.mark.slow
def test_leave_one_domain_out_training_and_evaluation(class8_cache):
    """2 DDP workers train on two camera domains; the unseen one is scored with a source-selected threshold."""
    from fas.evaluate import EvaluateConfig, evaluate
    from fas.engine import train

    result = train(_tiny_cfg(class8_cache, "loo"))
    checkpoint = Path(result.checkpoint.path)
    state = json.loads((checkpoint / "train_state.json").read_text())
    losses = [h["loss"] for h in state["history"]]
    assert losses[-1] < losses[0], losses
    meta = json.loads((checkpoint / "model_config.json").read_text())
    assert meta["method"] == "pdle" and meta["num_levels"] == 11
    metrics = evaluate(EvaluateConfig(checkpoint=str(checkpoint), cache=str(class8_cache / "cache"),
                                      out=str(class8_cache / "eval_pdle"), protocol=LOO))
    assert metrics["threshold_rule"] == "dev_eer" and metrics["hter"] < 0.5, metrics["hter"]


# DeepSpeed PDLE and its resume from a checkpoint: the fault drill tests/faults/test_training_faults.py
