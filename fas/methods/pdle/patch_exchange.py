"""PDLE's pseudo-discretised label encoding: CutMix-style patch exchange between a real and a spoof image.

Per training step draw u ~ U{1..K}, lambda = u/K. An anchor x_a gets a rectangle of an opposite-label image x_b
covering a fraction lambda of its area: x~ = M * x_a + (1 - M) * x_b with M = 0 inside the box. The label is the
fraction of real pixels: 1 - lambda for a real anchor, lambda for a spoof anchor. The box always lies inside the
image (unlike CutMix, it is never clipped), so the realised area differs from lambda only by rounding the box
to whole rows and columns.

Opposite-label images come from the whole training set, not the batch: ``OppositePool`` streams an unsplit Ray
Data dataset of the training rows in a random block order into a bounded reservoir per label; each worker holds
the two reservoirs (``capacity`` encoded images each) and one batch of the stream, never the dataset.
"""

from __future__ import annotations

import math
from typing import Callable, Iterator

import numpy as np
import torch


def draw_lambda(k: int, rng: np.random.Generator) -> float:
    """lambda = u / K with u uniform on {1, ..., K}."""
    return int(rng.integers(1, k + 1)) / k


def random_box(height: int, width: int, lam: float, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """(top, left, box_h, box_w) inside the image with box_h * box_w ~ lam * height * width, random aspect."""
    if lam <= 0:
        return 0, 0, 0, 0
    area = lam * height * width
    low, high = math.log(max(1.0, area / width)), math.log(min(height, area))  # box_h range that fits both sides
    box_h = int(round(math.exp(rng.uniform(low, high)))) if high > low else int(round(math.exp(high)))
    box_h = min(max(box_h, 1), height)
    box_w = min(max(int(round(area / box_h)), 1), width)
    top = int(rng.integers(0, height - box_h + 1))
    left = int(rng.integers(0, width - box_w + 1))
    return top, left, box_h, box_w


def paste_box(anchor: torch.Tensor, other: torch.Tensor, box: tuple[int, int, int, int]) -> torch.Tensor:
    """``anchor`` (C, H, W) with the box's pixels taken from ``other``."""
    top, left, box_h, box_w = box
    out = anchor.clone()
    out[:, top:top + box_h, left:left + box_w] = other[:, top:top + box_h, left:left + box_w]
    return out


def exchanged_label(anchor_label: float, lam: float) -> float:
    """Fraction of real pixels after pasting a fraction ``lam`` of the opposite label."""
    return 1.0 - lam if anchor_label >= 0.5 else lam


def exchange_batch(images: torch.Tensor, labels: torch.Tensor, chosen: np.ndarray, others: torch.Tensor, lam: float,
                   rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace ``images[chosen]`` by their exchanged versions with ``others`` (opposite labels, same order).

    Returns new images and float labels: u/K-discretised for exchanged rows (the box's realised area matches within
    one row or column), 0/1 for the rest.
    """
    images, targets = images.clone(), labels.float().clone()
    height, width = images.shape[-2:]
    for row, other in zip(np.flatnonzero(chosen), others):
        box = random_box(height, width, lam, rng)
        images[row] = paste_box(images[row], other, box)
        targets[row] = exchanged_label(float(labels[row]), lam)
    return images, targets


class OppositePool:
    """Draws encoded images of a requested label from reservoirs fed by one stream over the whole training set.

    Each draw pulls at most one new batch (images with labels) of the stream into a reservoir per label of
    ``capacity`` images (a random one is replaced when full) and samples the partners from the reservoir. A stream
    that ends is reopened at the next epoch, not at once, so a small dataset does not restart a Ray Data execution
    on every step.
    """

    def __init__(self, open_stream: Callable[[], Iterator[dict]], capacity: int = 256,
                 rng: np.random.Generator | None = None):
        self._open = open_stream  # () -> iterator of {"image": [...], "label": [...]} batches over the training rows
        self.capacity = capacity
        self.rng = rng or np.random.default_rng()
        self._stream: Iterator[dict] | None = None
        self._ended = False
        self._reservoir: dict[int, list] = {0: [], 1: []}

    def new_epoch(self) -> None:
        self._ended = False

    def _pull(self) -> bool:
        """One batch from the stream into the reservoirs; False when the stream has ended for this epoch."""
        if self._ended:
            return False
        if self._stream is None:
            self._stream = self._open()
        try:
            batch = next(self._stream)
        except StopIteration:
            self._stream, self._ended = None, True
            return False
        for image, label in zip(batch["image"], batch["label"]):
            reservoir = self._reservoir[int(label >= 0.5)]
            if len(reservoir) < self.capacity:
                reservoir.append(image)
            else:
                reservoir[int(self.rng.integers(self.capacity))] = image
        return True

    def take(self, label: int, n: int) -> list:
        reservoir = self._reservoir[label]
        while self._pull() and not reservoir:
            pass
        if not reservoir:
            raise ValueError(f"no training images with label {label} to exchange patches with")
        return [reservoir[i] for i in self.rng.integers(len(reservoir), size=n)]

    def opposite(self, labels) -> list:
        """One image of the opposite label per entry of ``labels`` (0/1), in order."""
        labels = [int(v >= 0.5) for v in labels]
        drawn = {lab: iter(self.take(1 - lab, labels.count(lab))) for lab in (0, 1) if lab in labels}
        return [next(drawn[lab]) for lab in labels]
