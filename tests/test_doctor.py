"""``fas doctor``: each missing thing with what supplies it, a non-zero exit while anything is missing."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from fas.doctor import method_for_config, run_doctor
from fas.models import stores


def doctor(*args, **kwargs) -> tuple[int, str]:
    lines = []
    return run_doctor(*args, out=lines.append, **kwargs), "\n".join(lines)


def test_doctor_names_each_missing_weight_and_the_command_that_supplies_it(empty_hub_cache, tmp_path):
    code, text = doctor(["clipc8.yaml", "dfg.yaml"])
    assert code == 1
    assert "MISSING  CLIP ViT-L-14 (openai): supply it: hf download timm/vit_large_patch14_clip_224.openai " \
           "open_clip_model.safetensors" in text
    assert "hf download stable-diffusion-v1-5/stable-diffusion-v1-5 vae/config.json " \
           "vae/diffusion_pytorch_model.safetensors" in text
    assert "identity network (ArcFace ONNX) (weights/arcface_w600k_r50.onnx)" in text
    assert text.endswith("  - dfg (dfg.yaml): frame cache cache/real_faces")
    assert "5 missing:" in text  # CLIP, its cache; the VAE, the identity network, their cache


def pdle_ready(hub, tmp_path):
    """A PDLE config whose ImageNet ResNet-18 is in ``hub`` and whose frame cache holds one shard."""
    stores.resnet18_in1k(hub)
    cache = tmp_path / "cache"
    cache.mkdir()
    pq.write_table(pa.table({"frame_id": ["a"]}), cache / "part-0.parquet")
    config = tmp_path / "mine.yaml"
    config.write_text(yaml.safe_dump({"cache": str(cache), "model": "pdle-resnet18", "pretrained": "imagenet"}))
    return config, cache


def test_doctor_passes_once_the_weights_and_the_cache_are_there(empty_hub_cache, tmp_path):
    config, cache = pdle_ready(empty_hub_cache, tmp_path)
    code, text = doctor([f"pdle={config}"])
    assert code == 0, text
    assert "ok       PDLE encoder resnet18 (imagenet): " + str(empty_hub_cache) in text
    assert f"ok       frame cache {cache}: {cache.resolve()} (1 Parquet files)" in text
    assert text.endswith("nothing missing")


def test_doctor_reports_an_unreachable_cluster(empty_hub_cache, tmp_path):
    config, _ = pdle_ready(empty_hub_cache, tmp_path)
    code, text = doctor([f"pdle={config}"], address="127.0.0.1:9")
    assert code == 1 and text.endswith("1 missing:\n  - Ray cluster 127.0.0.1:9")
    assert "MISSING  Ray cluster 127.0.0.1:9: not reachable" in text


def test_a_config_file_says_its_method_or_the_doctor_asks(tmp_path):
    assert method_for_config("oanet.yaml")[0].name == "oanet"  # a method's own paper config
    named = tmp_path / "any.yaml"
    named.write_text(yaml.safe_dump({"name": "pdle", "k": 4}))
    assert method_for_config(str(named))[0].name == "pdle"
    only_dfg = tmp_path / "gen.yaml"
    only_dfg.write_text(yaml.safe_dump({"condition": "none", "steps": 3}))  # only DFG has `condition`
    assert method_for_config(str(only_dfg))[0].name == "dfg"
    shared = tmp_path / "shared.yaml"
    shared.write_text(yaml.safe_dump({"lr": 0.1}))
    with pytest.raises(ValueError, match="write METHOD=.*shared.yaml"):
        method_for_config(str(shared))
    assert method_for_config(f"clipc8={shared}")[0].name == "clipc8"
