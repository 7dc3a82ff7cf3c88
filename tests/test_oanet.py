"""OA-Net (cue cross-attention on a ViT, its baselines) and the SSDG losses it is trained with."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from fas.methods.oanet.model import MODES, create_oanet, vit_features
from fas.models.weights import WeightsNotFound
from fas.methods.oanet.ssdg import SSDGLoss, SingleSideDiscriminator, asymmetric_triplet_loss
from fas.models.layers import grl_ramp

SIZE = 64


def _inputs(batch: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, SIZE, SIZE, generator=g), torch.randn(batch, 3, SIZE, SIZE, generator=g)


def _tiny(mode: str = "oanet", seed: int = 0, **kw):
    torch.manual_seed(seed)
    return create_oanet("oanet-tiny", None, mode=mode, **kw).eval()


def _perturb(projection: torch.nn.Linear, seed: int = 1) -> None:
    with torch.no_grad():
        projection.weight.copy_(torch.randn(projection.weight.shape, generator=torch.Generator().manual_seed(seed)))


def test_untrained_oanet_is_exactly_the_plain_vit():
    model, images_cues = _tiny(), _inputs()
    plain = _tiny("image_only", seed=1)
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if k.startswith(("vit.", "classifier."))})
    with torch.no_grad():
        oanet = model(*images_cues)["logits"]
        assert torch.allclose(oanet, plain(images_cues[0])["logits"], rtol=0, atol=1e-6)
        assert torch.allclose(oanet, model.classifier(vit_features(model.vit, images_cues[0])), rtol=0, atol=1e-6)
        _perturb(model.cross_blocks[1].attn.out_proj)
        assert not torch.allclose(model(*images_cues)["logits"], oanet, atol=1e-3)


def test_the_cue_matters_once_the_cross_attention_projection_is_nonzero():
    model, (images, cues) = _tiny(), _inputs()
    other_cues = _inputs(seed=5)[1]
    with torch.no_grad():
        assert torch.equal(model(images, cues)["logits"], model(images, other_cues)["logits"])
        for i, block in enumerate(model.cross_blocks):
            _perturb(block.attn.out_proj, seed=i)
        assert not torch.allclose(model(images, cues)["logits"], model(images, other_cues)["logits"], atol=1e-3)


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_runs_forward_and_backward(mode):
    model, (images, cues) = _tiny(mode).train(), _inputs(batch=4)
    out = model(images, cues)
    width = model.vit.num_features * (2 if mode == "dual_branch" else 1)
    assert out["logits"].shape == (4, 2) and out["features"].shape == (4, width)
    assert out["score"].min() >= 0 and out["score"].max() <= 1
    assert torch.allclose(out["score"], out["logits"].softmax(-1)[:, 1])
    F.cross_entropy(out["logits"], torch.tensor([0, 1, 1, 0])).backward()
    assert all(p.grad is not None for p in model.parameters()), [n for n, p in model.named_parameters()
                                                                 if p.grad is None]
    assert model.classifier.weight.grad.abs().sum() > 0
    if mode == "oanet":  # the zero projection still learns, and through it everything behind it will
        assert model.cross_blocks[0].attn.out_proj.weight.grad.abs().sum() > 0
    if mode in ("image_only", "cue_only"):  # the input a mode does not use may be left out
        only = (images, None) if mode == "image_only" else (None, cues)
        assert torch.allclose(model.eval().predict(*only)["score"], model(images, cues)["score"])


def test_pretrained_files_load_without_their_classifier(tmp_path):
    """A checkpoint with a foreign head (the in21k one has 21843 classes) loads into both backbones."""
    source = _tiny(seed=3)
    vit_state = {**source.vit.state_dict(), "head.weight": torch.randn(5, 48), "head.bias": torch.randn(5)}
    cue_state = {**source.cue_encoder.encoder.state_dict(), "fc.weight": torch.randn(7, 128), "fc.bias": torch.zeros(7)}
    torch.save(vit_state, tmp_path / "vit.bin")
    torch.save(cue_state, tmp_path / "cue.bin")
    model = create_oanet("oanet-tiny", str(tmp_path / "vit.bin"), cue_pretrained=str(tmp_path / "cue.bin"))
    for mine, theirs in ((model.vit, source.vit), (model.cue_encoder.encoder, source.cue_encoder.encoder)):
        assert all(torch.equal(mine.state_dict()[k], v) for k, v in theirs.state_dict().items())
    dual = create_oanet("oanet-tiny", str(tmp_path / "vit.bin"), mode="dual_branch")
    assert torch.equal(dual.cue_vit.pos_embed, source.vit.pos_embed)


def test_missing_pretrained_weights_name_the_hub_repo(empty_hub_cache):
    with pytest.raises(WeightsNotFound, match="hf download timm/vit_base_patch16_224.augreg_in21k model.safetensors"):
        create_oanet("oanet-vitb16", "in21k")
    with pytest.raises(WeightsNotFound, match="hf download timm/resnet18.a1_in1k model.safetensors"):
        create_oanet("oanet-vitb16", None, cue_pretrained="imagenet")
    with pytest.raises(ValueError, match="unknown OA-Net mode"):
        create_oanet("oanet-tiny", None, mode="both")


def _batch():
    """Six rows: real d0, spoof d0, real d1, spoof d1, real d1, spoof d0."""
    torch.manual_seed(0)
    labels, domains = torch.tensor([1, 0, 1, 0, 1, 0]), torch.tensor([0, 0, 1, 1, 1, 0])
    return torch.randn(6, 8, requires_grad=True), labels, domains


def test_the_discriminator_sees_only_real_faces():
    features, labels, domains = _batch()
    disc = SingleSideDiscriminator(8, num_domains=2, hidden=16)
    seen = []
    disc.mlp.register_forward_hook(lambda module, args, out: seen.append(args[0].detach()))
    disc(features, labels, domains, coeff=0.3)
    assert len(seen) == 1 and torch.equal(seen[0], features[labels == 1].detach())
    seen.clear()
    spoofs_only = disc(features[labels == 0], labels[labels == 0], domains[labels == 0])
    assert seen == [] and spoofs_only.item() == 0.0
    spoofs_only.backward()  # graph-connected, so a training step with no real row still runs


def test_the_discriminator_reverses_the_gradient_of_real_features_only():
    features, labels, domains = _batch()
    disc = SingleSideDiscriminator(8, num_domains=2, hidden=16).eval()  # no dropout: both passes see the same net
    disc(features, labels, domains, coeff=0.3).backward()
    real = labels == 1
    assert torch.equal(features.grad[~real], torch.zeros_like(features.grad[~real]))
    plain = features.detach()[real].requires_grad_()
    F.cross_entropy(disc.mlp(plain), domains[real]).backward()
    assert plain.grad.abs().sum() > 0
    assert torch.allclose(features.grad[real], -0.3 * plain.grad, atol=1e-7)


def test_grl_ramp():
    assert grl_ramp(0.0) == 0.0 and grl_ramp(1.0) == pytest.approx(0.9999, abs=1e-4)
    assert grl_ramp(0.5) == pytest.approx(2 / (1 + math.exp(-5)) - 1)
    values = [grl_ramp(p / 100) for p in range(101)]
    assert all(a < b for a, b in zip(values, values[1:]))


E = torch.eye(4)


def _triplet(rows, labels, domains, margin=0.1):
    return asymmetric_triplet_loss(torch.stack(rows), torch.tensor(labels), torch.tensor(domains), margin)


def test_triplet_is_zero_when_reals_coincide_and_spoofs_are_far():
    loss = _triplet([E[0], 2 * E[0], E[1], E[1], E[2], 3 * E[2]], [1, 1, 0, 0, 0, 0], [0, 1, 0, 0, 1, 1])
    assert loss.item() == 0.0


def test_triplet_matches_a_hand_computed_value():
    """Reals e0 (domain 0) and u (domain 1) at angle theta, a spoof equal to e0: only two anchors are valid."""
    theta, margin = 0.7, 0.25
    u = torch.tensor([math.cos(theta), math.sin(theta), 0.0, 0.0])
    d = 2 * math.sin(theta / 2)  # |e0 - u|
    loss = _triplet([E[0], u, E[0]], [1, 1, 0], [0, 1, 0], margin)
    # anchor e0: hardest positive u (d), hardest negative the spoof (0); anchor u: d - d; the lone spoof has no positive
    assert loss.item() == pytest.approx(((margin + d) + margin) / 2, abs=1e-6)


def test_triplet_is_asymmetric_spoof_domains_apart_reals_together():
    labels, domains = [1, 1, 0, 0, 0, 0], [0, 1, 0, 0, 1, 1]
    close = _triplet([E[0], E[0], E[1], E[1], E[1], E[1]], labels, domains)
    assert close.item() == pytest.approx(4 * 0.1 / 6)  # each spoof's nearest negative is the other domain's spoof
    apart = _triplet([E[0], E[0], E[1], E[1], E[2], E[2]], labels, domains)
    assert apart.item() == 0.0  # and the two domains' reals, at distance 0, are positives, not negatives
    assert _triplet([E[0], E[1]], [1, 0], [0, 0]).item() == 0.0  # no anchor with a positive: no triplet


def test_ssdg_loss_is_the_weighted_sum():
    features, labels, domains = _batch()
    logits = torch.randn(6, 2, requires_grad=True)
    criterion = SSDGLoss(8, 2, lambda_adv=0.3, lambda_triplet=2.0, hidden=16, dropout=0.0)
    out = criterion(logits, features, labels, domains, grl_coeff=0.5)
    expected = (F.cross_entropy(logits, labels) + 0.3 * criterion.discriminator(features, labels, domains)
                + 2.0 * asymmetric_triplet_loss(features, labels, domains))
    assert torch.allclose(out["loss"], expected) and out["adv"] > 0 and out["triplet"] > 0
    out["loss"].backward()
    assert logits.grad is not None and criterion.discriminator.mlp[0].weight.grad is not None
