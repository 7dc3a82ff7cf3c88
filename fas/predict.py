"""Inference from the portable checkpoint files that training writes (no DeepSpeed, no training code).

``load_predictor(folder)`` reads ``model_config.json`` + ``model.pt`` and returns a predictor whose
``predict(encoded_images) -> dict`` gives per-image ``score`` (higher = more real) and, for CLIPC8,
``category`` indices and the class ``probs``. Used by ``jobs/evaluate.py`` and by serving.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from fas.train.engine import WEIGHTS_FILE
from fas.train.images import decode_batch


def _place(model: torch.nn.Module, device: str) -> tuple[torch.nn.Module, torch.dtype]:
    """Model on ``device`` for inference: fp16 on a GPU, fp32 on CPU."""
    dtype = torch.half if device.startswith("cuda") else torch.float
    return model.to(device=device, dtype=dtype).eval(), dtype


class CLIPC8Predictor:
    inputs = ("image",)  # the cache columns ``predict`` takes, in order

    def __init__(self, folder: Path, meta: dict, device: str = "cpu"):
        from fas.models.clipc8 import create_clipc8

        model, self.preprocess = create_clipc8(meta["model"], None, meta["prompts"])
        state = torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        self.model, self.dtype = _place(model, device)
        self.device = device
        self.categories = meta["categories"]

    def predict(self, images) -> dict[str, np.ndarray]:
        p = self.preprocess
        x = decode_batch(images, p["image_size"], p["mean"], p["std"]).to(self.device, self.dtype)
        return {k: v.float().cpu().numpy() if v.is_floating_point() else v.cpu().numpy()
                for k, v in self.model.predict(x).items()}


class PDLEPredictor:
    """Expected liveness score rho of a PDLE checkpoint, on centre-cropped faces."""

    inputs = ("image",)

    def __init__(self, folder: Path, meta: dict, device: str = "cpu"):
        from fas.models.pdle import create_pdle

        model = create_pdle(meta["model"], None, meta["num_levels"])
        model.load_state_dict(torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True))
        self.model, self.dtype = _place(model, device)
        self.device = device
        self.preprocess = meta["preprocess"]

    def predict(self, images) -> dict[str, np.ndarray]:
        from fas.train.images import IMAGENET_MEAN, IMAGENET_STD, center_crop

        p = self.preprocess
        x = center_crop(decode_batch(images, p["image_size"], IMAGENET_MEAN, IMAGENET_STD), p["crop_size"])
        return {k: v.float().cpu().numpy() for k, v in self.model.predict(x.to(self.device, self.dtype)).items()}


class OANetPredictor:
    """P(real) of an OA-Net checkpoint from a frame and its anomalous cue (or the frame alone: image_only)."""

    def __init__(self, folder: Path, meta: dict, device: str = "cpu"):
        from fas.models.oanet import create_oanet

        model = create_oanet(meta["model"], None, meta["mode"], None)
        model.load_state_dict(torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True))
        self.model, self.dtype = _place(model, device)
        self.device, self.preprocess = device, meta["preprocess"]
        self.inputs = tuple(meta.get("inputs", ["image", "cue"]))

    def predict(self, images, cues=None) -> dict[str, np.ndarray]:
        from fas.train.oanet import to_tensors

        if cues is None:  # image_only reads no cue
            x = decode_batch(images, self.preprocess["image_size"], self.preprocess["image_mean"],
                             self.preprocess["image_std"])
            c = None
        else:
            x, c = to_tensors(images, cues, self.preprocess)
        c = None if c is None else c.to(self.device, self.dtype)
        return {"score": self.model.predict(x.to(self.device, self.dtype), c)["score"].float().cpu().numpy()}


PREDICTORS = {"clipc8": CLIPC8Predictor, "pdle": PDLEPredictor, "oanet": OANetPredictor}


def read_checkpoint_meta(folder: str | Path) -> dict:
    """The model config saved beside the portable weights; a clear error when ``folder`` is not a checkpoint."""
    folder = Path(folder)
    meta_file = folder / "model_config.json"
    if not meta_file.is_file() or not (folder / WEIGHTS_FILE).is_file():
        raise ValueError(f"{folder} is not a checkpoint folder written by fas training "
                         f"(expected model_config.json and {WEIGHTS_FILE})")
    meta = json.loads(meta_file.read_text())
    if meta.get("method") not in PREDICTORS:
        raise ValueError(f"{meta_file}: unknown method {meta.get('method')!r}; known: {sorted(PREDICTORS)}")
    return meta


def load_predictor(folder: str | Path, device: str | None = None):
    """The checkpoint's predictor on ``device`` (default: the first GPU Ray gave this process, else CPU)."""
    meta = read_checkpoint_meta(folder)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return PREDICTORS[meta["method"]](Path(folder), meta, device)
