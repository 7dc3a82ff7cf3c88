"""OA-Net inference: P(real) from a frame and its anomalous cue (or the frame alone: ``image_only``)."""

from __future__ import annotations

import torch

from fas.methods.base import Predictor, numpy_out


def cue_tensor(cues, size: int) -> torch.Tensor:
    """``cue`` column values -> (B, 3, size, size) float32, resized when the generator's size differs."""
    import torch.nn.functional as F

    from fas.cues import decode_cues

    c = torch.from_numpy(decode_cues(cues))
    return c if c.shape[-1] == size else F.interpolate(c, size=size, mode="bilinear", align_corners=False)


class OANetPredictor(Predictor):
    def __init__(self, model, meta: dict, device="cpu"):
        super().__init__(model, meta, device)
        self.inputs = tuple(meta["inputs"])

    @staticmethod
    def build(meta: dict):
        from fas.methods.oanet.model import create_oanet

        return create_oanet(meta["model"], None, meta["mode"], None)

    def predict(self, images, cues=None) -> dict:
        c = None if cues is None else cue_tensor(cues, self.transform.image_size).to(self.device, self.dtype)
        return numpy_out(self.model.predict(self.images(images), c))
