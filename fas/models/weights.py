"""Pretrained weights resolved apart from the architecture: a local file, or a file in the Hugging Face cache.

Nothing is downloaded here (the machines this runs on may be offline). Every pretrained file a config needs is a
``WeightRef``: the model code resolves it, ``fas doctor`` lists it, and a missing one is a ``WeightsNotFound``
that names the command which supplies it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Sequence

import torch


TIMM_FILES = ("model.safetensors", "pytorch_model.bin")  # a timm hub repo's weights, in the order timm prefers


class WeightsNotFound(ValueError):
    """Pretrained weights are neither a local file nor in the Hugging Face cache."""


@dataclasses.dataclass(frozen=True)
class WeightRef:
    """One pretrained file a config needs: ``source`` as the config names it (a local path, or a tag/repo that
    ``repo`` holds), ``files`` the names it may have in the repo (the first one cached wins) and ``companions``
    files that must sit beside it (a diffusers ``config.json``). ``howto`` says how to make it where no hub
    repo has it (an ONNX export)."""

    what: str
    source: str | None
    repo: str | None = None
    files: tuple[str, ...] = ()
    companions: tuple[str, ...] = ()
    howto: str = ""

    @property
    def needed(self) -> bool:
        return bool(self.source)

    def locate(self) -> str | None:
        """The local path of the weights, or None where they are missing (or not needed)."""
        if not self.source:
            return None
        local = Path(self.source)
        if local.is_file():
            return str(local)
        if local.is_dir():
            for sub in (local / name for name in self.files):
                if sub.is_file() and all((sub.parent / Path(c).name).is_file() for c in self.companions):
                    return str(sub)
        if self.repo:
            from huggingface_hub import try_to_load_from_cache

            try:
                if all(isinstance(try_to_load_from_cache(self.repo, name), str) for name in self.companions):
                    hits = (try_to_load_from_cache(self.repo, name) for name in self.files)
                    return next((hit for hit in hits if isinstance(hit, str)), None)
            except ValueError:  # not a valid repo id (a mistyped local path): missing
                return None
        return None

    def supply(self) -> str:
        """The command (or the step) that puts these weights where ``locate`` finds them."""
        if self.repo:
            return f"hf download {self.repo} {' '.join((*self.companions, self.files[0]))}"
        return self.howto or f"put the weights file at {self.source}"

    def resolve(self) -> str | None:
        """``locate``, or a ``WeightsNotFound`` saying what is missing and how to supply it."""
        path = self.locate()
        if path or not self.source:
            return path
        where = f"no file {self.source!r}"
        if self.repo:
            wanted = f"{list(self.files)}" + (f" with {list(self.companions)}" if self.companions else "")
            where = f"no local file {self.source!r} and none of {wanted} from {self.repo} in the Hugging Face cache"
        raise WeightsNotFound(
            f"{self.what} weights {self.source!r} not found: {where}. Supply them with `{self.supply()}` (on a "
            "machine with internet; then copy its Hugging Face cache, ~/.cache/huggingface/hub or $HF_HUB_CACHE, "
            "here), or give a local path instead. Set it to null to start from random initialisation.")


def find_weights(what: str, pretrained: str | None, hub_repo: str | None, filenames: Sequence[str]) -> str | None:
    """A local path for ``pretrained`` (a file path or a tag with a known hub repo), or None for random init."""
    return WeightRef(what, pretrained, hub_repo, tuple(filenames)).resolve()


def timm_weights(what: str, pretrained: str | None, hub: dict) -> WeightRef:
    """A timm backbone's weights: ``pretrained`` is a file path or a tag that the architecture config's ``hub``
    maps to a repo (``imagenet`` -> ``timm/resnet18.a1_in1k``)."""
    return WeightRef(what, pretrained, hub.get(pretrained or ""), TIMM_FILES)


def diffusers_weights(what: str, source: str | None, subfolder: str | None = None,
                      companions: tuple[str, ...] = ("config.json",)) -> WeightRef:
    """A diffusers model's weights: ``source`` a local model folder, or a hub repo holding it in ``subfolder``
    (SD-1.5's ``vae/``, ``unet/``) beside its ``config.json``."""
    names = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
    prefix = f"{subfolder}/" if subfolder else ""
    if source and Path(source).is_dir():  # the model's own folder, or a pipeline folder holding it
        return WeightRef(what, source, None, names + tuple(prefix + n for n in names), companions)
    return WeightRef(what, source, source, tuple(prefix + n for n in names), tuple(prefix + c for c in companions))


def load_backbone_weights(model: torch.nn.Module, path: str, filter_fn: Callable | None = None) -> None:
    """Load a timm checkpoint strictly, without its classifier (an in21k head has 21843 classes, an ImageNet one
    1000; the methods put their own heads on). ``filter_fn`` is timm's ``checkpoint_filter_fn`` where the
    architecture needs one (it resizes position embeddings)."""
    from timm.models import load_state_dict

    state = load_state_dict(path)
    if filter_fn is not None:
        state = filter_fn(state, model)
    head = model.pretrained_cfg.get("classifier", "head")
    head = head if isinstance(head, str) else ""
    state = {k: v for k, v in state.items() if not (head and k.startswith(f"{head}."))}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(f"weights {path} do not fit {type(model).__name__}: missing {missing[:5]} "
                         f"({len(missing)}), unexpected {unexpected[:5]} ({len(unexpected)})")
