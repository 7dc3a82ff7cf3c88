"""Pretrained weights resolved apart from the architecture: a local file, or a file in the Hugging Face cache.

Nothing is downloaded here (the machines this runs on may be offline); a missing file is a ``WeightsNotFound`` that
names what is missing and how to provide it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence


class WeightsNotFound(ValueError):
    """Pretrained weights are neither a local file nor in the Hugging Face cache."""


def find_weights(what: str, pretrained: str | None, hub_repo: str | None, filenames: Sequence[str]) -> str | None:
    """A local path for ``pretrained`` (a file path or a tag with a known hub repo), or None for random init."""
    if not pretrained:
        return None
    if Path(pretrained).is_file():
        return pretrained
    if hub_repo:
        from huggingface_hub import try_to_load_from_cache

        for name in filenames:
            hit = try_to_load_from_cache(hub_repo, name)
            if isinstance(hit, str):
                return hit
    raise WeightsNotFound(
        f"{what} weights {pretrained!r} not found: no local file {pretrained!r}"
        + (f" and none of {list(filenames)} from hub repo {hub_repo} in the Hugging Face cache" if hub_repo else "")
        + ". On a machine with internet run `huggingface-cli download " + (hub_repo or "<repo>")
        + "` and copy the cache (~/.cache/huggingface) here, or give the weights file's path as `pretrained`. "
        "Set pretrained to null to start from random initialisation.")
