"""A trained MemAE's cue maker: its folder (``fas.methods.cue_maker``) rebuilt, reconstruction = the output."""

from __future__ import annotations

from fas.methods.cue_maker import ReconstructionCueMaker


class CueMaker(ReconstructionCueMaker):
    method = "memae"

    @staticmethod
    def build(meta: dict):
        from fas.methods.memae.model import MemAE

        return MemAE.from_config(meta["architecture"])
