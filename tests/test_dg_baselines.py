"""SSAN-R and SA-FAS, the ResNet-18 domain-generalisation baselines of AG-FAS: their pieces (style shuffle, AdaIN,
contrastive loss; SupCon, PG-IRM alignment), their "*" batches with extra real faces, and training on Ray."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

# importing a method's modules runs its package's __init__, which registers it (until it joins BUILTIN)
from fas.methods.safas.model import (create_safas, domain_bce, head_misalignment, pg_irm_project_,
                                     supcon_loss)
from fas.methods.safas.task import row_heads
from fas.methods.ssan.model import adain, contrast_loss, create_ssan, style_permutation

LOO = "synth-cam-a&synth-cam-b->synth-cam-c"
SOURCES = ["synth-cam-a", "synth-cam-b"]


# ---------------------------------------------------------------- SSAN-R pieces
def test_style_shuffle_keeps_the_batch_styles_and_moves_every_one():
    rng = np.random.default_rng(0)
    for n in range(2, 12):
        for _ in range(20):
            perm = style_permutation(n, rng)
            assert sorted(perm.tolist()) == list(range(n))  # the batch's set of styles, each used once
            assert all(perm != np.arange(n))  # no sample keeps its own style
    with pytest.raises(ValueError, match="at least 2 samples"):
        style_permutation(1, rng)


def test_the_shuffled_assembly_is_the_content_with_the_other_samples_style():
    torch.manual_seed(0)
    model = create_ssan("ssan-tiny", None).eval()
    images, perm = torch.randn(4, 3, 64, 64), torch.tensor([2, 0, 3, 1])
    with torch.no_grad():
        out = model(images, perm)
        content, gamma, beta = model.encode(images)
        assert torch.allclose(out["shuffled"], model.assemble(content, gamma[perm], beta[perm]), atol=1e-6)
        assert torch.allclose(model(images, torch.arange(4))["shuffled"], out["features"], atol=1e-6)
        assert torch.allclose(model.predict(images)["score"], out["score"], atol=1e-6)
        assert not torch.allclose(out["shuffled"], out["features"], atol=1e-3)  # the style matters


def test_adain_output_has_the_style_statistics():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 5, 8, 8, generator=g) * 4 + 7
    gamma, beta = torch.rand(3, 5, generator=g) + 0.5, torch.randn(3, 5, generator=g)
    out = adain(x.double(), gamma.double(), beta.double())
    assert torch.allclose(out.mean(dim=(2, 3)), beta.double(), rtol=0, atol=1e-5)
    assert torch.allclose(out.std(dim=(2, 3), correction=0), gamma.double(), rtol=0, atol=1e-5)


def test_contrast_loss_is_zero_for_identical_features_and_has_the_official_gradient():
    g = torch.Generator().manual_seed(2)
    features, same = torch.randn(6, 16, generator=g), torch.tensor([1, 0, 1, 1, 0, 0], dtype=torch.bool)
    assert contrast_loss(features, features.clone(), same).item() == pytest.approx(0.0, abs=1e-6)
    anchor = features.clone().requires_grad_()
    shuffled = torch.randn(6, 16, generator=g, requires_grad=True)
    contrast_loss(anchor, shuffled, same).backward()
    assert anchor.grad is None or not anchor.grad.any()  # stop-gradient on the self-assembly
    plain = shuffled.detach().clone().requires_grad_()
    sign = same.float() * 2 - 1  # solver.py: -(cos * label).mean() with label +1 / -1
    (-(F.cosine_similarity(features, plain, dim=-1) * sign).mean()).backward()
    assert torch.allclose(shuffled.grad, plain.grad, atol=1e-7)


def test_ssan_discriminator_sees_the_content_through_reversed_gradients():
    torch.manual_seed(3)
    model = create_ssan("ssan-tiny", None, num_domains=3).train()
    out = model(torch.randn(6, 3, 64, 64), style_perm=torch.tensor([1, 2, 3, 4, 5, 0]), grl_coeff=0.5)
    assert out["domain_logits"].shape == (6, 3) and out["shuffled"].shape == out["features"].shape
    assert out["score"].min() >= 0 and out["score"].max() <= 1
    F.cross_entropy(out["domain_logits"], torch.tensor([0, 1, 2, 0, 1, 2])).backward()
    content_grad = model.content[0].weight.grad
    assert content_grad is not None and content_grad.abs().sum() > 0
    assert model.classifier.weight.grad is None  # the domain loss never reaches the liveness classifier


# ---------------------------------------------------------------- SA-FAS pieces
def test_supcon_matches_a_hand_computed_value():
    """One view of four unit vectors: a = e0, b at angle theta from a (same class), c = -e0 and d = e1 (class 1)."""
    theta, t, base = 0.6, 0.5, 0.07
    a, b, c, d = [1.0, 0.0], [math.cos(theta), math.sin(theta)], [-1.0, 0.0], [0.0, 1.0]
    vectors = torch.tensor([a, b, c, d])
    dot = [[sum(x * y for x, y in zip(u, v)) for v in (a, b, c, d)] for u in (a, b, c, d)]

    def anchor_loss(i: int, positives: list[int]) -> float:
        log_denominator = math.log(sum(math.exp(dot[i][k] / t) for k in range(4) if k != i))
        return -sum(dot[i][p] / t - log_denominator for p in positives) / len(positives)

    expected = (t / base) * (anchor_loss(0, [1]) + anchor_loss(1, [0]) + anchor_loss(2, [3]) + anchor_loss(3, [2])) / 4
    loss = supcon_loss(vectors[:, None, :], torch.tensor([0, 0, 1, 1]), temperature=t)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="needs a positive"):
        supcon_loss(vectors[:, None, :], torch.tensor([0, 1, 2, 2]))


def test_supcon_takes_the_other_view_of_a_row_as_its_positive():
    features = F.normalize(torch.randn(3, 2, 8, generator=torch.Generator().manual_seed(4)), dim=-1)
    two_views = supcon_loss(features, torch.tensor([0, 1, 2]))
    rows = torch.cat([features[:, 0], features[:, 1]])[:, None, :]  # the same 6 vectors as single-view rows
    assert two_views.item() == pytest.approx(supcon_loss(rows, torch.tensor([0, 1, 2, 0, 1, 2])).item(), rel=1e-6)


def test_alignment_is_zero_and_the_projection_a_fixed_point_when_all_directions_agree():
    direction = F.normalize(torch.randn(16, generator=torch.Generator().manual_seed(5)), dim=0)
    heads = torch.stack([2.0 * direction, 0.5 * direction, 3.0 * direction])
    assert head_misalignment(heads).item() == pytest.approx(0.0, abs=1e-6)
    projected = heads.clone()
    pg_irm_project_(projected, alpha=0.9)
    assert torch.allclose(projected, heads, atol=1e-6)


def test_projection_moves_each_head_towards_its_farthest_and_keeps_its_norm():
    e = torch.eye(3)
    heads = torch.stack([2 * e[0], 3 * (e[0] + e[1]) / math.sqrt(2), 0.5 * e[2]])
    before = head_misalignment(heads).item()
    projected = heads.clone()
    pg_irm_project_(projected, alpha=0.8)
    # farthest: head 0 -> head 2 (cos 0, the first of the ties), head 1 -> head 2, head 2 -> head 0
    expected = [F.normalize(0.8 * e[0] + 0.2 * e[2], dim=0) * 2,
                F.normalize(0.8 * (e[0] + e[1]) / math.sqrt(2) + 0.2 * e[2], dim=0) * 3,
                F.normalize(0.8 * e[2] + 0.2 * e[0], dim=0) * 0.5]
    assert torch.allclose(projected, torch.stack(expected), atol=1e-6)
    assert torch.allclose(projected.norm(dim=1), heads.norm(dim=1), atol=1e-6)
    assert head_misalignment(projected).item() < before


def test_each_head_learns_from_its_own_rows_and_extra_faces_go_round_the_heads():
    logits = torch.tensor([[2.0, -1.0], [0.5, 3.0], [-1.0, 1.0], [1.0, -2.0]])
    labels, heads = torch.tensor([1, 0, 1, 0]), torch.tensor([0, 1, 1, 0])
    bce = F.binary_cross_entropy_with_logits
    expected = (bce(torch.tensor([2.0, 1.0]), torch.tensor([1.0, 0.0]))
                + bce(torch.tensor([3.0, 1.0]), torch.tensor([0.0, 1.0]))) / 2
    assert domain_bce(logits, labels, heads).item() == pytest.approx(expected.item(), rel=1e-6)
    assert row_heads(np.array([0, 1, 2, 2, 0, 2, 2, 1]), 2).tolist() == [0, 1, 0, 1, 0, 0, 1, 1]


def test_safas_score_is_the_mean_of_the_heads_probabilities():
    torch.manual_seed(6)
    model = create_safas("safas-tiny", None, num_heads=3).eval()
    with torch.no_grad():
        out = model(torch.randn(5, 3, 60, 60))
        assert out["logits"].shape == (5, 3)
        assert torch.allclose(out["score"], out["logits"].sigmoid().mean(dim=1))


def test_safas_alignment_refuses_deepspeed():
    from fas.config import from_dict
    from fas.methods.safas.config import SAFASConfig
    from fas.methods.safas.task import prepare

    with pytest.raises(ValueError, match="use `engine: ddp`"):
        prepare(from_dict(SAFASConfig, {"cache": "unused", "engine": "deepspeed"}))


# ---------------------------------------------------------------- pretrained backbones
def test_a_resnet_checkpoint_with_its_classifier_loads_into_both_backbones(tmp_path):
    import timm

    from fas.methods.ssan.common import read_arch

    arch = read_arch("ssan-tiny", "SSAN", "ssan-")
    torch.manual_seed(7)
    source = timm.create_model(arch["backbone"], num_classes=1000, **arch["backbone_kwargs"])
    torch.save(source.state_dict(), tmp_path / "resnet.bin")  # an ImageNet checkpoint: fc.* included
    ssan = create_ssan("ssan-tiny", str(tmp_path / "resnet.bin"))
    safas = create_safas("safas-tiny", str(tmp_path / "resnet.bin"), num_heads=2)
    for name in ("conv1", "layer1", "layer2", "layer3"):
        mine = ssan.stem[0] if name == "conv1" else getattr(ssan, name)
        theirs = getattr(source, name)
        assert all(torch.equal(a, b) for a, b in zip(mine.state_dict().values(), theirs.state_dict().values()))
    assert all(torch.equal(v, source.state_dict()[k]) for k, v in safas.backbone.state_dict().items())


def test_missing_imagenet_weights_name_the_hub_repo(empty_hub_cache):
    from fas.models.weights import WeightsNotFound

    with pytest.raises(WeightsNotFound, match="hf download timm/resnet18.a1_in1k model.safetensors"):
        create_ssan("ssan-resnet18", "imagenet")
    with pytest.raises(WeightsNotFound, match="hf download timm/resnet18.a1_in1k model.safetensors"):
        create_safas("safas-resnet18", "imagenet", num_heads=3)


# ---------------------------------------------------------------- the "*" rows: extra real faces
@pytest.fixture(scope="module")
def extra_cache(class8_cache, tmp_path_factory) -> Path:
    """Extra bona fide faces: the held-out camera's real frames, renamed to a domain of their own, as a frame cache
    (what `fas prepare` writes: shards + cache.json)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from fas.data.cache import read_cache_table

    table = read_cache_table(class8_cache / "cache")
    real = table.filter(pc.and_(pc.equal(table["label"], 1), pc.equal(table["domain"], "synth-cam-c")))
    real = real.set_column(real.schema.get_field_index("domain"), "domain", pa.array(["extra-faces"] * real.num_rows))
    out = tmp_path_factory.mktemp("extra") / "cache"
    (out / "shards").mkdir(parents=True)
    pq.write_table(real, out / "shards" / "part-extra.parquet")
    (out / "cache.json").write_text(json.dumps({"shards": ["part-extra.parquet"], "frames_written": real.num_rows}))
    return out


def _tiny_cfg(method: str, class8_cache: Path, name: str, **kw):
    from fas.methods import get_method

    return get_method(method).load_config(get_method(method).tiny_config, {
        "cache": str(class8_cache / "cache"), "storage_path": str(class8_cache / "dg_runs"), "name": name,
        "protocol": LOO, **kw})


def _rows(cache: Path | str, part: str, columns: list[str]) -> dict:
    """The protocol's ``train`` or ``validation`` rows as numpy columns (the tiny data: 21 attacks and 3 bona fide
    rows per source domain in each)."""
    from fas.data.cache import read_cache_table
    from fas.data.selection import selected_ids

    ids = set(selected_ids(str(cache), part, LOO))
    table = read_cache_table(cache, ["sample_id", *columns]).to_pydict()
    keep = [i for i, s in enumerate(table["sample_id"]) if s in ids]
    return {c: np.array([table[c][i] for i in keep], dtype=object if c == "image" else None) for c in columns}


def _worker(extra: Path):
    """A WorkerContext on this process whose ``extra_real`` stream is the extra cache's rows."""
    from fas.data.cache import read_cache_table
    from fas.methods.base import WorkerContext

    table = read_cache_table(extra, ["image"]).to_pydict()

    def open_stream(name: str, batch_size: int):
        assert name == "extra_real"
        images = table["image"]
        return iter({"image": np.array(images[i:i + batch_size], dtype=object)}
                    for i in range(0, len(images), batch_size))

    return WorkerContext(rank=0, world_size=1, device=torch.device("cpu"), dtype=torch.float,
                         rng=np.random.default_rng(0), open_stream=open_stream)


@pytest.mark.parametrize("method", ["ssan", "safas"])
def test_star_batches_are_one_to_one_real_fake_and_dataset_extra(method, class8_cache, extra_cache):
    """Every batch a training step of the "*" variant uses: per domain 4 attacks and 2 of its bona fide rows, and as
    many extra faces as those bona fide rows together."""
    from fas.methods import get_method
    from fas.methods.base import StepInfo, resolve

    record = get_method(method)
    cfg = _tiny_cfg(method, class8_cache, f"{method}_star_units", extra_real=str(extra_cache), domains=SOURCES)
    torch.manual_seed(0)
    task = resolve(record.task)(cfg, _worker(extra_cache))
    draws, draw = [], task.rows.batches.draw
    task.rows.batches.draw = lambda: draws.append(draw()) or draws[-1]
    batch = _rows(class8_cache / "cache", "train", ["image", "label", "domain"])
    for step in range(3):
        losses = task.train_step(task.module, batch, StepInfo(step=step, epoch=0, progress=step / 3))
        losses["loss"].backward()
        assert torch.isfinite(losses["loss"])
    assert len(draws) == 3
    for rows in draws:
        label, domain, extra = (np.array(rows[k]) for k in ("label", "domain", "extra"))
        assert (label == 0).sum() == (label == 1).sum() == 8  # real : fake 1:1
        assert (label[~extra] == 1).sum() == extra.sum() == 4  # dataset real : extra real 1:1
        for d in (0, 1):
            assert ((domain == d) & (label == 0)).sum() == 4 and ((domain == d) & (label == 1)).sum() == 2
        assert set(domain[extra]) == {2} and set(label[extra]) == {1}
        if method == "safas":  # every head: its 2 bona fide rows, 2 extra faces, 4 attacks
            heads = row_heads(domain, 2)
            assert all(((heads == d) & extra).sum() == 2 for d in (0, 1))
    if method == "ssan":  # extra faces are a third domain of the discriminator
        assert task.module.model.discriminator[-1].out_features == 3


# ---------------------------------------------------------------- training on Ray
def _val_auc_of_untrained(method: str, cfg) -> float:
    """Source-side validation AUC of the run's model before its first step (the engine seeds torch with 0)."""
    from fas.engine.validation import validate
    from fas.methods import get_method
    from fas.methods.base import place, resolve

    record = get_method(method)
    meta = resolve(record.model_meta)(dataclasses.replace(cfg, domains=SOURCES))
    torch.manual_seed(0)
    predictor_cls = resolve(record.predictor)
    predictor = predictor_cls(place(predictor_cls.build(meta), "cpu"), meta)
    return validate(predictor, [_rows(cfg.cache, "validation", ["image", "label"])])["val_auc"]


@pytest.mark.slow
@pytest.mark.parametrize("method,star", [("ssan", False), ("safas", True)])
def test_training_learns_and_the_model_folder_scores(method, star, class8_cache, extra_cache):
    """2 DDP workers train on two camera domains (SA-FAS*: plus the extra real faces through the engine's
    ``extra_real`` stream): the source-side validation AUC beats chance, and the model folder loads and scores
    frames reproducibly. SSAN-R also beats its untrained self by a wide margin (~0.87 against ~0.33 on this data);
    SA-FAS's random features already reach ~0.66 here and its heavy view augmentation learns slowly at 64 px, so
    there its loss must fall instead."""
    from fas.data.cache import read_cache_table
    from fas.engine import train
    from fas.methods import load_predictor

    extra = {"extra_real": str(extra_cache)} if star else {}
    cfg = _tiny_cfg(method, class8_cache, f"{method}{'_star' if star else ''}", **extra)
    run = train(cfg)
    folder = Path(run.checkpoint.path)
    state = json.loads((folder / "train_state.json").read_text())
    assert state["step"] == cfg.engine.steps and run.config.domains == SOURCES
    assert state["val_auc"] > 0.5, state["val_auc"]
    if method == "ssan":
        untrained = _val_auc_of_untrained(method, cfg)
        assert state["val_auc"] > untrained + 0.2, (state["val_auc"], untrained)
    else:
        losses = [h["loss"] for h in state["history"]]
        assert len(losses) == 2 and losses[1] < losses[0], losses
        torch.manual_seed(0)  # the run's initial heads (the engine seeds torch with 0 before building the task)
        initial = head_misalignment(create_safas(cfg.model, None, len(SOURCES)).heads.weight).item()
        assert state["misalignment"] < initial - 0.2, (state["misalignment"], initial)  # directions pulled together
    predictor = load_predictor(folder, "cpu")
    frames = read_cache_table(cfg.cache, ["image"]).column("image").to_pylist()[:6]
    first, again = predictor.predict(frames)["score"], predictor.predict(frames[::-1])["score"][::-1]
    assert first.shape == (6,) and ((first >= 0) & (first <= 1)).all()
    np.testing.assert_allclose(first, again, rtol=0, atol=1e-6)
