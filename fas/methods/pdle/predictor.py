"""PDLE inference: the expected liveness rho on centre-cropped faces, and the distribution over the K+1 levels."""

from __future__ import annotations

from fas.methods.base import Predictor, numpy_out


class PDLEPredictor(Predictor):
    @staticmethod
    def build(meta: dict):
        from fas.methods.pdle.model import create_pdle

        return create_pdle(meta["model"], None, meta["num_levels"])

    def predict(self, images) -> dict:
        return numpy_out(self.model.predict(self.images(images)))
