"""SA-FAS inference: the mean of the domain heads' P(real) on the centre crop."""

from __future__ import annotations

from fas.methods.base import Predictor, numpy_out


class SAFASPredictor(Predictor):
    @staticmethod
    def build(meta: dict):
        from fas.methods.safas.model import create_safas

        return create_safas(meta["model"], None, meta["num_heads"])

    def predict(self, images) -> dict:
        return numpy_out(self.model.predict(self.images(images)))
