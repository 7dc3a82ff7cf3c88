"""CLIPC8: CLIP image-text matching over 8 class texts (1 real + 7 attack types).

The text tower is frozen and run once per prompt set; its normalised features become a buffer, and only the
image encoder trains. Prediction: softmax over the logit-scaled cosine similarities to the class texts; the
liveness score is the probability of the real class (index 0 by convention, configurable).
"""

from __future__ import annotations

import open_clip
import torch
import torch.nn.functional as F
from torch import nn

from fas.methods.clipc8.config import CLASS8_PROMPTS
from fas.models import MODEL_CONFIG_DIR
from fas.models.weights import WeightRef, WeightsNotFound  # noqa: F401 (re-exported)

open_clip.add_model_config(MODEL_CONFIG_DIR)

# Where open_clip's "openai" ViT-L/14 weights live on the Hugging Face hub.
HF_WEIGHTS = {("ViT-L-14", "openai"): ("timm/vit_large_patch14_clip_224.openai",
                                       ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"))}


def clip_weights(model_name: str, pretrained: str | None) -> WeightRef:
    """Where ``pretrained`` (a file path, or a tag such as ``openai``) of ``model_name`` lives."""
    repo, files = HF_WEIGHTS.get((model_name, pretrained), (None, ()))
    return WeightRef(f"CLIP {model_name}", pretrained, repo, files)


def config_weights(cfg) -> list[WeightRef]:
    """Every pretrained file a CLIPC8 config needs (``fas doctor``)."""
    return [clip_weights(cfg.model, cfg.pretrained)]


def resolve_pretrained(model_name: str, pretrained: str | None) -> str | None:
    """A local weights path for ``pretrained``, or None for random init."""
    return clip_weights(model_name, pretrained).resolve()


class CLIPC8(nn.Module):
    """CLIP image encoder + frozen class-text features -> class logits."""

    def __init__(self, visual: nn.Module, text_features: torch.Tensor, logit_scale: float, real_index: int = 0):
        super().__init__()
        self.visual = visual
        self.register_buffer("text_features", F.normalize(text_features.float(), dim=-1))
        self.register_buffer("logit_scale", torch.tensor(float(logit_scale)))
        self.real_index = real_index

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        image_features = F.normalize(self.visual(images), dim=-1)
        return self.logit_scale * image_features @ self.text_features.to(image_features.dtype).t()

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute the image tower's activations in backward (ViT-L/14 at batch 16 on a 16 GB GPU)."""
        self.visual.set_grad_checkpointing(enable)

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        probs = self.forward(images).float().softmax(dim=-1)
        return {"probs": probs, "category": probs.argmax(dim=-1), "score": probs[:, self.real_index]}


@torch.no_grad()
def encode_prompts(clip: nn.Module, model_name: str, texts: list[str]) -> torch.Tensor:
    tokenizer = open_clip.get_tokenizer(model_name)
    return clip.encode_text(tokenizer(texts)).float()


def create_clipc8(model_name: str = "ViT-L-14", pretrained: str | None = "openai",
                  texts: list[str] | None = None, real_index: int = 0) -> tuple[CLIPC8, dict]:
    """Build CLIPC8 and its preprocessing settings (image size, mean, std) from an open_clip architecture."""
    texts = texts or [t for _, t in CLASS8_PROMPTS]
    weights = resolve_pretrained(model_name, pretrained)
    clip = open_clip.create_model(model_name, pretrained=weights, quick_gelu=model_name == "ViT-L-14")
    clip.eval()
    text_features = encode_prompts(clip, model_name, texts)
    model = CLIPC8(clip.visual, text_features, clip.logit_scale.exp().item(), real_index)
    size = clip.visual.image_size
    preprocess = {"image_size": int(size[0] if isinstance(size, (tuple, list)) else size),
                  "mean": list(open_clip.OPENAI_DATASET_MEAN), "std": list(open_clip.OPENAI_DATASET_STD)}
    return model, preprocess
