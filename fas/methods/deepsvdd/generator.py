"""A trained Deep SVDD's cue maker: its folder (``fas.methods.cue_maker``) rebuilt; reconstruction = the
pre-trained decoder applied to the one-class encoder's output."""

from __future__ import annotations

from fas.methods.cue_maker import ReconstructionCueMaker


class CueMaker(ReconstructionCueMaker):
    method = "deepsvdd"

    @staticmethod
    def build(meta: dict):
        from fas.methods.deepsvdd.model import DeepSVDD

        return DeepSVDD.from_config(meta["architecture"])
