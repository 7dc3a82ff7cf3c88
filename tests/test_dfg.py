"""AG-FAS De-fake Face Generator: reconstruction, identity tokens, weights resolution (fast); DeepSpeed training,
resume and the cue job on Ray (slow)."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch
from sklearn.metrics import roc_auc_score

from fas.methods.dfg.model import anomalous_cue, create_generator, noise_seeds
from fas.models.weights import WeightsNotFound


@pytest.fixture(scope="module")
def tiny_generator():
    torch.manual_seed(0)
    return create_generator("dfg-tiny").eval()


def faces(n: int, size: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_at_t0_the_reconstruction_is_the_vae_round_trip(tiny_generator):
    x = faces(3)
    recon = tiny_generator.reconstruct(x, noise_step=0, ddim_steps=50)
    round_trip = tiny_generator.decode(tiny_generator.encode(x)).clamp(-1, 1)
    assert torch.equal(recon, round_trip)
    cue, rms = anomalous_cue(x, recon)
    error = (x - round_trip).flatten(1)
    assert torch.allclose(rms, error.pow(2).mean(1).sqrt())
    assert torch.allclose(cue.flatten(1), (error - error.mean(1, keepdim=True)) / error.std(1, keepdim=True),
                          atol=1e-5)


def test_ddim_grid_starts_at_the_noise_step(tiny_generator):
    _, steps = tiny_generator.reconstruction_steps(801, 50)
    assert steps[0] == 801 and steps[-1] == 1 and len(steps) == 41
    assert len(tiny_generator.reconstruction_steps(1000, 50)[1]) == 50
    assert tiny_generator.reconstruction_steps(0, 50)[1] == []


def test_seeded_reconstructions_are_reproducible_and_independent_of_the_batch(tiny_generator):
    x = faces(3)
    seeds = noise_seeds(0, ["a#0", "b#0", "c#0"])
    first = tiny_generator.reconstruct(x, 801, 5, seeds)
    assert torch.equal(first, tiny_generator.reconstruct(x, 801, 5, seeds))
    alone = tiny_generator.reconstruct(x[1:2], 801, 5, seeds[1:2])
    assert torch.allclose(alone[0], first[1], atol=1e-5)
    other = tiny_generator.reconstruct(x, 801, 5, noise_seeds(1, ["a#0", "b#0", "c#0"]))
    assert not torch.allclose(other, first)


def test_identity_condition_is_49_tokens_and_only_the_unet_learns(tiny_generator):
    x = faces(2)
    tokens = tiny_generator.condition_tokens(x)
    assert tokens.shape == (2, 49, 128)
    assert not torch.allclose(tokens[0], tokens[1])  # each face its own identity
    tiny_generator.train()
    assert not tiny_generator.identity.training and not tiny_generator.vae.training
    loss = tiny_generator.training_loss(x)
    loss.backward()
    trained = {n.split(".")[0] for n, p in tiny_generator.named_parameters() if p.grad is not None}
    assert trained == {"unet"}
    assert tiny_generator.unet.encoder_hid_proj.weight.grad is not None  # the identity projection is the UNet's
    tiny_generator.unet.zero_grad(set_to_none=True)
    tiny_generator.eval()


def test_no_identity_variant_conditions_on_one_zero_token():
    torch.manual_seed(0)
    plain = create_generator("dfg-tiny", condition="none")
    assert plain.identity is None
    tokens = plain.condition_tokens(faces(2))
    assert tokens.shape == (2, 1, 128) and not tokens.any()
    assert torch.isfinite(plain.training_loss(faces(2)))


def test_anoddpm_variant_diffuses_in_pixel_space():
    from fas.methods.dfg.model import read_model_config

    torch.manual_seed(0)
    generator = create_generator("anoddpm-tiny", condition="none")
    assert generator.vae is None and read_model_config("anoddpm-tiny")["noise_step"] == 200
    x = faces(2, size=32)
    assert torch.equal(generator.encode(x), x)
    assert generator.reconstruct(x, 200, 50).shape == x.shape
    with pytest.raises(ValueError, match="no identity network"):
        create_generator("anoddpm-tiny", condition="identity")


def test_onnx_identity_network_gives_the_pre_pooling_feature_map(tmp_path):
    """An ArcFace-like ONNX graph (CNN -> flatten -> embedding): the tokens are its 4-D map before the flatten."""
    import timm

    from fas.methods.dfg.model import load_identity

    class FaceNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = timm.create_model("resnet18", num_classes=0, global_pool="", layers=[1, 1, 1, 1],
                                          channels=[8, 16, 32, 64], stem_width=8, output_stride=16)
            self.embedding = torch.nn.Linear(64 * 7 * 7, 32)

        def forward(self, x):
            return self.embedding(torch.flatten(self.body(x), 1))

    net = FaceNet().eval()
    path = tmp_path / "arcface.onnx"
    x = faces(2, size=112)
    torch.onnx.export(net, x, str(path), dynamo=False, input_names=["input"], output_names=["embedding"],
                      dynamic_axes={"input": {0: "batch"}})
    identity = load_identity({"kind": "onnx", "input_size": 112}, str(path))
    tokens = identity(x)
    expected = net.body(x).flatten(2).transpose(1, 2)
    assert tokens.shape == (2, 49, 64)
    assert torch.allclose(tokens, expected, atol=1e-4)
    with pytest.raises(WeightsNotFound, match="condition none"):
        load_identity({"kind": "onnx"}, str(tmp_path / "missing.onnx"))


def test_missing_sd_vae_names_what_to_download(empty_hub_cache):
    from fas.methods.dfg.model import load_vae

    with pytest.raises(WeightsNotFound, match="hf download stable-diffusion-v1-5/stable-diffusion-v1-5 "
                                              "vae/config.json vae/diffusion_pytorch_model.safetensors"):
        load_vae({"pretrained": "stable-diffusion-v1-5/stable-diffusion-v1-5", "subfolder": "vae"})


def test_unet_init_loads_every_weight_but_the_identity_projection(tmp_path):
    from diffusers import UNet2DConditionModel

    from fas.methods.dfg.model import build_unet, read_model_config

    spec = read_model_config("dfg-tiny")["unet"]
    plain = {k: v for k, v in spec.items() if not k.startswith("encoder_hid")}  # SD's UNet has no such layer
    torch.manual_seed(1)
    UNet2DConditionModel(**{**plain, "cross_attention_dim": 64}).save_pretrained(tmp_path / "unet")
    unet = build_unet(spec, str(tmp_path))
    source = UNet2DConditionModel.from_pretrained(tmp_path / "unet").state_dict()
    assert all(torch.equal(v, source[k]) for k, v in unet.state_dict().items() if k in source)
    assert {k for k in unet.state_dict() if k not in source} == {"encoder_hid_proj.weight", "encoder_hid_proj.bias"}


def test_cue_separation_reports_auc_of_the_residual():
    from fas.cues import cue_separation

    table = pa.table({"frame_id": list("abcd"), "label": [1, 1, 0, 0], "split": ["test"] * 4,
                      "cue_rms": [0.1, 0.2, 0.3, 0.15], "cue_error": ["", "", "", ""]})
    result = cue_separation(table)
    assert result["all"]["auc"] == pytest.approx(0.75)  # the real 0.2 ranks below the attack 0.15
    assert result["test"]["real_rms"] == pytest.approx(0.15)


# ------------------------------------------------------------------------------------------------- Ray (slow)
@pytest.mark.slow
def test_deepspeed_workers_train_the_unet_and_loss_falls(dfg_run):
    cfg, result = dfg_run
    state = json.loads((Path(result.checkpoint.path) / "train_state.json").read_text())
    losses = [h["loss"] for h in state["history"]]
    assert state["step"] == 12 and len(losses) == 3
    assert losses[-1] < losses[0]
    assert (Path(cfg.engine.storage_path) / "dfg" / "stand_in_vae" / "config.json").is_file()
    assert (Path(result.checkpoint.path) / "vae" / "config.json").is_file()  # the stand-in travels along


@pytest.mark.slow
def test_resumed_run_continues_from_its_step(dfg_run):
    from fas.config import replace
    from fas.engine import train

    cfg, _ = dfg_run
    resumed = train(replace(cfg, steps=16))
    state = json.loads((Path(resumed.checkpoint.path) / "train_state.json").read_text())
    assert state["step"] == 16
    assert [h["resumed_from"] for h in state["history"]] == [0, 4, 4, 12]  # killed in step 6 (dfg_killed)


def corrupt_copy(cache: Path, out: Path, bad_frame: int = 5) -> str:
    """A copy of ``cache`` whose ``bad_frame``-th row holds bytes that are not an image."""
    from fas.data.cache import read_cache_table, write_shard

    table = read_cache_table(cache)
    images = table["image"].to_pylist()
    images[bad_frame] = b"not an image"
    table = table.set_column(table.schema.get_field_index("image"), "image", pa.array(images, pa.binary()))
    (out / "shards").mkdir(parents=True)
    shard = write_shard(table, out / "shards")
    index = json.loads((cache / "cache.json").read_text())
    (out / "cache.json").write_text(json.dumps({**index, "shards": [shard]}))
    return table["frame_id"][bad_frame].as_py()


@pytest.mark.slow
def test_cue_job_covers_every_frame_and_resumes(dfg_run, class8_cache, tmp_path):
    from fas.cues import CueConfig, decode_cues, make_cues
    from fas.data.cache import read_cache_table

    cfg, result = dfg_run
    source = tmp_path / "source"
    bad = corrupt_copy(class8_cache / "cache", source)
    cue_cfg = CueConfig(generator=str(Path(cfg.engine.storage_path) / "dfg"), cache=str(source),
                        out=str(tmp_path / "cues"), ddim_steps=5, batch_size=16, rows_per_file=64, cpus_per_actor=0.5)
    summary = make_cues(cue_cfg)
    table = read_cache_table(tmp_path / "cues")
    assert sorted(table["frame_id"].to_pylist()) == sorted(read_cache_table(source)["frame_id"].to_pylist())
    assert summary["skipped_frames"] == [{"frame_id": bad, "reason": "undecodable image: bytes are not a "
                                                                    "decodable image"}]
    assert summary["frames_with_cue"] == table.num_rows - 1
    good = table.filter(pa.compute.equal(table["cue_error"], ""))
    cues = decode_cues(good["cue"].to_pylist()[:4])
    assert cues.shape == (4, 3, 64, 64)
    assert np.allclose(cues.reshape(4, -1).mean(1), 0, atol=1e-2)  # standardised per image
    # the separation figure, recomputed from the cue table: -residual RMS as liveness (label 1 = bona fide) over
    # the frames that have a cue
    rms, labels = np.asarray(good["cue_rms"].to_pylist(), float), np.asarray(good["label"].to_pylist(), int)
    separation = summary["separation"]["all"]
    assert separation["frames"] == good.num_rows == summary["frames_with_cue"]
    assert separation["auc"] == pytest.approx(roc_auc_score(labels, -rms))
    assert separation["real_rms"] == pytest.approx(rms[labels == 1].mean())
    assert separation["attack_rms"] == pytest.approx(rms[labels == 0].mean())

    # a rerun with other settings is refused before it touches the cache (a killed driver's rerun, which completes
    # the cache with the same cues, is the fault drill tests/faults/test_job_faults.py)
    with pytest.raises(ValueError, match=r"begun with other settings \(noise_step: \d+ then, 400 now\)"):
        make_cues(dataclasses.replace(cue_cfg, noise_step=400))  # would mix two noise depths in one cache
    assert read_cache_table(tmp_path / "cues").num_rows == table.num_rows  # still whole and readable
    shutil.rmtree(tmp_path / "cues")
