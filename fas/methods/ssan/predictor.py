"""SSAN-R inference: P(real) of each face's self-assembly (its content with its own style)."""

from __future__ import annotations

from fas.methods.base import Predictor, numpy_out


class SSANPredictor(Predictor):
    @staticmethod
    def build(meta: dict):
        from fas.methods.ssan.model import create_ssan

        return create_ssan(meta["model"], None)

    def predict(self, images) -> dict:
        return numpy_out(self.model.predict(self.images(images)))
