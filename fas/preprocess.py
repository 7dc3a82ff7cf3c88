"""The one path from encoded frame bytes to model input, used by training, validation, evaluation, the cue job,
Serve and every predictor: decode once, resize (INTER_AREA), scale to [0, 1], normalise, optionally centre-crop.

The settings travel with the model (``preprocess`` in ``model_config.json``, as timm's data config does), so a
served model sees exactly what it was evaluated on. Training augmentations run on the tensors this produces.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import torch
from torchvision.transforms import v2

from fas.data.faces import decode_image

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
SIGNED = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))  # [-1, 1]: what the VAE and ArcFace expect


def decode_resized(blob, size: int) -> np.ndarray:
    """Encoded bytes -> RGB uint8 at size x size; ``ValueError`` when the bytes are not an image."""
    return cv2.resize(decode_image(bytes(blob)), (size, size), interpolation=cv2.INTER_AREA)


def to_tensor(arrays, mean, std) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> normalised (B, 3, H, W) float32.

    In numpy on purpose: this runs in Ray Data's prefetch thread beside the training thread, and a torch op there
    would start a second OpenMP team in the worker; with more OpenMP threads than cores libgomp stops spin-waiting
    and every parallel region of the training step wakes its team through the kernel (issue 16: 0.74x -> see
    README)."""
    x = np.stack(arrays).astype(np.float32).transpose(0, 3, 1, 2) / np.float32(255)
    x = (x - np.asarray(mean, np.float32).reshape(1, 3, 1, 1)) / np.asarray(std, np.float32).reshape(1, 3, 1, 1)
    return torch.from_numpy(np.ascontiguousarray(x))


def decode_batch(images, size: int, mean, std) -> torch.Tensor:
    return to_tensor([decode_resized(b, size) for b in images], mean, std)


@dataclasses.dataclass(frozen=True)
class Preprocess:
    """Inference preprocessing of one model: ``image_size``, ``mean``/``std`` and an optional centre ``crop_size``."""

    image_size: int
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    crop_size: int | None = None

    @classmethod
    def from_meta(cls, meta: dict) -> "Preprocess":
        return cls(int(meta["image_size"]), tuple(meta["mean"]), tuple(meta["std"]), meta.get("crop_size"))

    def to_meta(self) -> dict:
        return {"image_size": self.image_size, "mean": list(self.mean), "std": list(self.std),
                "crop_size": self.crop_size}

    def finish(self, arrays) -> torch.Tensor:
        """Decoded, resized frames -> model input."""
        x = to_tensor(arrays, self.mean, self.std)
        return center_crop(x, self.crop_size) if self.crop_size else x

    def __call__(self, encoded) -> torch.Tensor:
        return self.finish([decode_resized(b, self.image_size) for b in encoded])

    def decode_each(self, encoded) -> tuple[list[np.ndarray | None], list[str]]:
        """Decode every frame once, keeping the reason of each one that fails (the others go on)."""
        arrays, errors = [], []
        for blob in encoded:
            try:
                arrays.append(decode_resized(blob, self.image_size))
                errors.append("")
            except (ValueError, TypeError, cv2.error) as exc:
                arrays.append(None)
                errors.append(f"undecodable image: {exc}")
        return arrays, errors


def random_flip(x: torch.Tensor, rng: np.random.Generator, *others: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Mirror a random half of the rows of ``x`` (and the same rows of ``others``), seeded by ``rng``."""
    mirror = torch.from_numpy(rng.random(len(x)) < 0.5).to(x.device)
    out = [t.clone() for t in (x, *others)]
    for t in out:
        t[mirror] = t[mirror].flip(-1)
    return tuple(out)


def clipc8_augment(x: torch.Tensor) -> torch.Tensor:
    """CLIPC8's only augmentations: random horizontal flip and random erasing (no crop, no colour jitter)."""
    aug = v2.Compose([v2.RandomHorizontalFlip(), v2.RandomErasing(p=0.5)])
    return torch.stack([aug(img) for img in x])


def flip_and_random_crop(x: torch.Tensor, crop: int) -> torch.Tensor:
    """PDLE training augmentation: random horizontal flip and a random ``crop`` x ``crop`` window."""
    aug = v2.Compose([v2.RandomHorizontalFlip(), v2.RandomCrop(crop)])
    return torch.stack([aug(img) for img in x])


def center_crop(x: torch.Tensor, crop: int) -> torch.Tensor:
    return v2.functional.center_crop(x, [crop, crop])
