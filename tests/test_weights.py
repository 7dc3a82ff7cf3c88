"""Every pretrained reference of the paper configs loads strictly, and unchanged, from a hub cache laid out as the
real one is (``paper_stores``: random tensors of the real shapes under the real file and key names)."""

from __future__ import annotations

import pytest
import torch
from huggingface_hub import try_to_load_from_cache
from safetensors.torch import load_file, save_file

from fas.models import stores
from fas.models.weights import WeightRef, WeightsNotFound, load_backbone_weights


def written(repo: str, filename: str) -> dict[str, torch.Tensor]:
    path = try_to_load_from_cache(repo, filename)
    assert isinstance(path, str), f"{repo}/{filename} is not in the tests' hub cache"
    return load_file(path)


def assert_same(state: dict[str, torch.Tensor], source: dict[str, torch.Tensor]) -> None:
    assert set(state) == set(source)
    different = [k for k, v in state.items() if not torch.equal(v, source[k])]
    assert not different, different[:5]


@pytest.mark.paper
def test_clipc8_loads_open_clips_openai_vit_l14_with_quick_gelu(paper_stores):
    from fas.methods.clipc8.model import create_clipc8

    model, preprocess = create_clipc8("ViT-L-14", "openai")
    source = written(stores.OPENAI_VIT_L14, "open_clip_model.safetensors")
    assert_same(model.visual.state_dict(), {k.removeprefix("visual."): v for k, v in source.items()
                                            if k.startswith("visual.")})
    assert type(model.visual.transformer.resblocks[0].mlp.gelu).__name__ == "QuickGELU"  # OpenAI's activation
    assert model.logit_scale.item() == pytest.approx(source["logit_scale"].exp().item())
    assert model.text_features.shape == (8, 768) and preprocess["image_size"] == 224


@pytest.mark.paper
def test_pdle_and_oanet_load_timms_backbones_without_their_classifiers(paper_stores):
    from fas.methods.oanet.model import create_oanet
    from fas.methods.pdle.model import create_pdle

    resnet = written(stores.RESNET18_IN1K, "model.safetensors")
    without_fc = {k: v for k, v in resnet.items() if not k.startswith("fc.")}
    assert_same(create_pdle("pdle-resnet18", "imagenet").encoder.state_dict(), without_fc)
    oanet = create_oanet("oanet-vitb16", "in21k", cue_pretrained="imagenet")
    vit = written(stores.VIT_B16_IN21K, "model.safetensors")
    assert vit["head.weight"].shape == (21843, 768)
    assert_same(oanet.vit.state_dict(), {k: v for k, v in vit.items() if not k.startswith("head.")})
    assert_same(oanet.cue_encoder.encoder.state_dict(), without_fc)


@pytest.mark.paper
def test_dfg_loads_sd15s_vae_and_unet_and_the_arcface_onnx(paper_stores):
    from fas.methods.dfg.model import create_generator

    generator = create_generator("dfg-sd15", identity=str(paper_stores["onnx"]), unet_init=stores.SD15)
    vae = written(stores.SD15, "vae/diffusion_pytorch_model.safetensors")
    assert "encoder.mid_block.attentions.0.query.weight" in vae  # the real file's pre-0.14 names, renamed on load
    assert_same(generator.vae.state_dict(), {k: vae[stores._deprecated_name(k)] for k in generator.vae.state_dict()})
    assert len(generator.vae.state_dict()) == len(vae)
    unet = written(stores.SD15, "unet/diffusion_pytorch_model.safetensors")
    state = generator.unet.state_dict()
    assert set(state) - set(unet) == {"encoder_hid_proj.weight", "encoder_hid_proj.bias"}  # ArcFace 512 -> 768
    assert_same({k: v for k, v in state.items() if k in unet}, unet)
    faces = torch.rand(2, 3, 112, 112) * 2 - 1
    tokens = generator.identity(faces)
    expected = paper_stores["arcface"].feature_map(faces).flatten(2).transpose(1, 2)
    assert tokens.shape == (2, 49, 512)
    assert torch.allclose(tokens, expected, atol=1e-4)


def test_backbone_weights_load_strictly_but_for_the_classifier(tmp_path):
    import timm

    model = timm.create_model("resnet18", num_classes=0, layers=[1, 1, 1, 1], channels=[8, 16, 32, 64],
                              stem_width=8)
    state = {**{k: torch.randn_like(v.float()).to(v.dtype) for k, v in model.state_dict().items()},
             "fc.weight": torch.zeros(1000, 64), "fc.bias": torch.zeros(1000)}
    save_file(state, tmp_path / "good.safetensors")
    load_backbone_weights(model, str(tmp_path / "good.safetensors"))
    assert torch.equal(model.conv1.weight, state["conv1.weight"])
    save_file({**state, "layer5.0.conv1.weight": torch.zeros(1)}, tmp_path / "extra.safetensors")
    with pytest.raises(ValueError, match=r"unexpected \['layer5.0.conv1.weight'\]"):
        load_backbone_weights(model, str(tmp_path / "extra.safetensors"))
    save_file({k: v for k, v in state.items() if k != "conv1.weight"}, tmp_path / "short.safetensors")
    with pytest.raises(ValueError, match=r"missing \['conv1.weight'\]"):
        load_backbone_weights(model, str(tmp_path / "short.safetensors"))


def test_a_hub_file_is_found_only_as_huggingface_hub_lays_it_out(empty_hub_cache):
    stores.hub_file(empty_hub_cache, "org/name", "sub/weights.bin", lambda p: p.write_bytes(b"x"))
    snapshot = next((empty_hub_cache / "models--org--name" / "snapshots").iterdir())
    assert (snapshot / "sub" / "weights.bin").is_symlink()
    assert (empty_hub_cache / "models--org--name" / "refs" / "main").read_text() == snapshot.name
    ref = WeightRef("thing", "tag", "org/name", ("sub/missing.bin", "sub/weights.bin"))
    assert ref.locate() == str(snapshot / "sub" / "weights.bin")
    needs_config = WeightRef("thing", "tag", "org/name", ("sub/weights.bin",), companions=("sub/config.json",))
    assert needs_config.locate() is None
    with pytest.raises(WeightsNotFound, match="`hf download org/name sub/config.json sub/weights.bin`"):
        needs_config.resolve()
    assert WeightRef("thing", None, "org/name", ("sub/weights.bin",)).resolve() is None  # not needed: random init
