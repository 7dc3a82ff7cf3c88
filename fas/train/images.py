"""Turn frame-cache batches (encoded image bytes) into normalised tensors, with the method's augmentation."""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torchvision.transforms import v2

from fas.data.faces import decode_image


def decode_batch(images, size: int, mean, std) -> torch.Tensor:
    arrays = [cv2.resize(decode_image(bytes(b)), (size, size), interpolation=cv2.INTER_AREA) for b in images]
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div_(255)
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def clipc8_augment(x: torch.Tensor) -> torch.Tensor:
    """CLIPC8's only augmentations: random horizontal flip and random erasing (no crop, no colour jitter)."""
    aug = v2.Compose([v2.RandomHorizontalFlip(), v2.RandomErasing(p=0.5)])
    return torch.stack([aug(img) for img in x])


IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def flip_and_random_crop(x: torch.Tensor, crop: int) -> torch.Tensor:
    """PDLE training augmentation: random horizontal flip and a random ``crop`` x ``crop`` window."""
    aug = v2.Compose([v2.RandomHorizontalFlip(), v2.RandomCrop(crop)])
    return torch.stack([aug(img) for img in x])


def center_crop(x: torch.Tensor, crop: int) -> torch.Tensor:
    return v2.functional.center_crop(x, [crop, crop])
