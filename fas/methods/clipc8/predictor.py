"""CLIPC8 inference: the 8 class probabilities, the top category and P(real) as the liveness score."""

from __future__ import annotations

from fas.methods.base import Predictor, numpy_out


class CLIPC8Predictor(Predictor):
    def __init__(self, model, meta: dict, device="cpu"):
        super().__init__(model, meta, device)
        self.categories = meta["categories"]

    @staticmethod
    def build(meta: dict):
        from fas.methods.clipc8.model import create_clipc8

        return create_clipc8(meta["model"], None, meta["prompts"])[0]

    def predict(self, images) -> dict:
        return numpy_out(self.model.predict(self.images(images)))
