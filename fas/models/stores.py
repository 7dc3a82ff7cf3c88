"""Weight stores laid out exactly as the real ones are, filled with random tensors of the real shapes.

Paper-size weights cannot be downloaded on the machines that test this project, yet the code that loads them must
run before a user's first GPU job does. These functions write what the real sources hold: a Hugging Face hub cache
(``models--ORG--NAME/{blobs,refs,snapshots}``, snapshot files linked to content-addressed blobs, ``refs/main``
naming the snapshot, as ``huggingface_hub`` lays it out), with each repository's file names, formats and
state-dict key names (open_clip's for the OpenAI ViT-L/14, timm's for its ImageNet backbones, diffusers' for
SD-1.5's ``vae/`` and ``unet/``, including the VAE's pre-0.14 attention names that diffusers renames on load),
and an ArcFace ONNX export with insightface's IResNet-50 (w600k_r50) graph. Tests and ``fas bench --gpu`` load
them through the same code a user's machine runs.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Callable

import torch
from torch import nn

OPENAI_VIT_L14 = "timm/vit_large_patch14_clip_224.openai"
RESNET18_IN1K = "timm/resnet18.a1_in1k"
VIT_B16_IN21K = "timm/vit_base_patch16_224.augreg_in21k"
SD15 = "stable-diffusion-v1-5/stable-diffusion-v1-5"

SD15_VAE_CONFIG = {
    "_class_name": "AutoencoderKL", "_diffusers_version": "0.6.0", "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512], "down_block_types": ["DownEncoderBlock2D"] * 4, "in_channels": 3,
    "latent_channels": 4, "layers_per_block": 2, "norm_num_groups": 32, "out_channels": 3, "sample_size": 512,
    "up_block_types": ["UpDecoderBlock2D"] * 4}
SD15_UNET_CONFIG = {
    "_class_name": "UNet2DConditionModel", "_diffusers_version": "0.6.0", "act_fn": "silu", "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280], "center_input_sample": False, "cross_attention_dim": 768,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "downsample_padding": 1, "flip_sin_to_cos": True, "freq_shift": 0, "in_channels": 4, "layers_per_block": 2,
    "mid_block_scale_factor": 1, "norm_eps": 1e-05, "norm_num_groups": 32, "out_channels": 4, "sample_size": 64,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]}


def hub_file(cache: str | Path, repo: str, filename: str, write: Callable[[Path], None]) -> Path:
    """Put one file of ``repo`` into the hub cache at ``cache`` as ``huggingface_hub`` does: the content in
    ``blobs/<sha256>``, a relative link to it at ``snapshots/<commit>/<filename>``, ``refs/main`` -> commit."""
    folder = Path(cache) / f"models--{repo.replace('/', '--')}"
    commit = hashlib.sha1(repo.encode()).hexdigest()  # one fixed snapshot per repo
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text(commit)
    (folder / "blobs").mkdir(exist_ok=True)
    partial = folder / "blobs" / f"{filename.replace('/', '_')}.incomplete"
    write(partial)
    digest = hashlib.sha256()
    with open(partial, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 24), b""):
            digest.update(chunk)
    blob = folder / "blobs" / digest.hexdigest()
    os.replace(partial, blob)
    link = folder / "snapshots" / commit / filename
    link.parent.mkdir(parents=True, exist_ok=True)
    link.unlink(missing_ok=True)
    link.symlink_to(os.path.relpath(blob, link.parent))
    return link


def random_state(shapes: dict[str, tuple[tuple[int, ...], torch.dtype]], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors of the given shapes that keep a network's activations finite: norm scales near 1, running
    variances positive, CLIP's temperature at its trained value, everything else N(0, 0.02)."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, (shape, dtype) in shapes.items():
        leaf = name.rsplit(".", 1)[-1]
        if not dtype.is_floating_point:
            state[name] = torch.zeros(shape, dtype=dtype)
        elif leaf == "logit_scale":
            state[name] = torch.full(shape, math.log(100.0), dtype=dtype)
        elif leaf == "running_var":
            state[name] = 1.0 + torch.rand(shape, generator=generator, dtype=dtype) * 0.1
        elif len(shape) == 1 and leaf == "weight" and _is_norm(name):
            state[name] = 1.0 + torch.randn(shape, generator=generator, dtype=dtype) * 0.02
        else:
            state[name] = torch.randn(shape, generator=generator, dtype=dtype) * 0.02
    return state


def _is_norm(name: str) -> bool:
    parts = name.lower().split(".")
    return any(p.startswith(("norm", "ln", "bn", "group_norm", "conv_norm")) or p.endswith("norm") for p in parts)


def shapes_of(build: Callable[[], nn.Module]) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """The state-dict names, shapes and dtypes of a module, built on the meta device (no memory, no init time)."""
    with torch.device("meta"):
        module = build()
    return {k: (tuple(v.shape), v.dtype) for k, v in module.state_dict().items()}


def save_safetensors(state: dict[str, torch.Tensor]) -> Callable[[Path], None]:
    from safetensors.torch import save_file

    return lambda path: save_file({k: v.contiguous() for k, v in state.items()}, str(path), metadata={"format": "pt"})


def write_json(data: dict) -> Callable[[Path], None]:
    return lambda path: path.write_text(json.dumps(data, indent=2))


def openai_vit_l14(cache: str | Path, seed: int = 0) -> dict[str, torch.Tensor]:
    """``timm/vit_large_patch14_clip_224.openai`` as open_clip reads it: ``open_clip_model.safetensors`` (the
    whole CLIP, open_clip's key names) beside ``open_clip_config.json``. Returns what was written."""
    import open_clip

    state = random_state(shapes_of(lambda: open_clip.create_model("ViT-L-14", quick_gelu=True, device="meta")),
                         seed)
    config = {"model_cfg": open_clip.get_model_config("ViT-L-14"),
              "preprocess_cfg": {"mean": list(open_clip.OPENAI_DATASET_MEAN), "std": list(open_clip.OPENAI_DATASET_STD)}}
    hub_file(cache, OPENAI_VIT_L14, "open_clip_config.json", write_json(config))
    hub_file(cache, OPENAI_VIT_L14, "open_clip_model.safetensors", save_safetensors(state))
    return state


def timm_backbone(cache: str | Path, repo: str, arch: str, num_classes: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """A timm hub repo (``model.safetensors`` + ``config.json``) of ``arch`` with its pretrained classifier."""
    import timm

    state = random_state(shapes_of(lambda: timm.create_model(arch, pretrained=False, num_classes=num_classes)), seed)
    config = {"architecture": arch, "num_classes": num_classes,
              "pretrained_cfg": {"tag": repo.split(".", 1)[-1], "num_classes": num_classes}}
    hub_file(cache, repo, "config.json", write_json(config))
    hub_file(cache, repo, "model.safetensors", save_safetensors(state))
    return state


def resnet18_in1k(cache: str | Path, seed: int = 0) -> dict[str, torch.Tensor]:
    return timm_backbone(cache, RESNET18_IN1K, "resnet18", 1000, seed)


def vit_b16_in21k(cache: str | Path, seed: int = 0) -> dict[str, torch.Tensor]:
    return timm_backbone(cache, VIT_B16_IN21K, "vit_base_patch16_224", 21843, seed)


DEPRECATED_ATTENTION = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}


def sd15(cache: str | Path, parts: tuple[str, ...] = ("vae", "unet"), seed: int = 0) -> dict[str, dict]:
    """SD-1.5's ``vae/`` and ``unet/`` (``config.json`` + ``diffusion_pytorch_model.safetensors``) and its
    ``model_index.json``. The VAE's mid-block attention is written under its original names (``query``,
    ``key``, ``value``, ``proj_attn``) as in the real file. Returns each part's state as diffusers names it."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    classes = {"vae": (AutoencoderKL, SD15_VAE_CONFIG), "unet": (UNet2DConditionModel, SD15_UNET_CONFIG)}
    hub_file(cache, SD15, "model_index.json", write_json({
        "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.6.0",
        "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"]}))
    written = {}
    for i, part in enumerate(parts):
        cls, config = classes[part]
        plain = {k: v for k, v in config.items() if not k.startswith("_")}
        state = random_state(shapes_of(lambda: cls(**plain)), seed + i)
        on_disk = {_deprecated_name(k) if part == "vae" else k: v for k, v in state.items()}
        hub_file(cache, SD15, f"{part}/config.json", write_json(config))
        hub_file(cache, SD15, f"{part}/diffusion_pytorch_model.safetensors", save_safetensors(on_disk))
        written[part] = state
    return written


def _deprecated_name(key: str) -> str:
    if ".mid_block.attentions." not in key:
        return key
    for new, old in DEPRECATED_ATTENTION.items():
        if f".{new}." in key:
            return key.replace(f".{new}.", f".{old}.")
    return key


class IBasicBlock(nn.Module):
    """insightface's IResNet block: BN -> conv -> BN -> PReLU -> conv -> BN, plus the shortcut."""

    def __init__(self, inplanes: int, planes: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=1e-5)
        self.conv1 = nn.Conv2d(inplanes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, eps=1e-5)
        self.prelu = nn.PReLU(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes, eps=1e-5)
        self.downsample = None if stride == 1 and inplanes == planes else nn.Sequential(
            nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes, eps=1e-5))

    def forward(self, x):
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + (x if self.downsample is None else self.downsample(x))


class IResNet50(nn.Module):
    """The ArcFace recogniser of insightface's w600k_r50: 112 px in, a 512x7x7 map, Flatten, FC, BN -> 512-d."""

    def __init__(self, layers=(3, 4, 14, 3)):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64, eps=1e-5)
        self.prelu = nn.PReLU(64)
        blocks, inplanes = [], 64
        for planes, count in zip((64, 128, 256, 512), layers):
            stage = [IBasicBlock(inplanes, planes, 2)] + [IBasicBlock(planes, planes, 1) for _ in range(count - 1)]
            blocks.append(nn.Sequential(*stage))
            inplanes = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = blocks
        self.bn2 = nn.BatchNorm2d(512, eps=1e-5)
        self.fc = nn.Linear(512 * 7 * 7, 512)
        self.features = nn.BatchNorm1d(512, eps=1e-5)

    def feature_map(self, x):
        x = self.prelu(self.bn1(self.conv1(x)))
        return self.bn2(self.layer4(self.layer3(self.layer2(self.layer1(x)))))

    def forward(self, x):
        return self.features(self.fc(torch.flatten(self.feature_map(x), 1)))


def arcface_onnx(path: str | Path, seed: int = 0) -> IResNet50:
    """An ONNX export of an IResNet-50 with random weights, w600k_r50's layout (input ``input.1``, 1x3x112x112,
    dynamic batch; the 512x7x7 map feeds a Flatten). Returns the torch network it was exported from."""
    net = IResNet50().eval()
    net.load_state_dict(random_state({k: (tuple(v.shape), v.dtype) for k, v in net.state_dict().items()}, seed))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(net, torch.zeros(1, 3, 112, 112), str(path), dynamo=False, input_names=["input.1"],
                      output_names=["683"], dynamic_axes={"input.1": {0: "None"}, "683": {0: "None"}},
                      opset_version=11)
    return net
