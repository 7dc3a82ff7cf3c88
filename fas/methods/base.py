"""What a method is to the rest of the system: a ``Method`` record, the per-worker ``Task`` it trains with, the
``Predictor`` that scores a portable model folder, and that folder's format.

A method's files hold its model, its loss and step, its predictor and its configs; they never mention Ray or
DeepSpeed. The engine (``fas.engine``) builds the task on every worker, wraps ``task.module`` in DDP or
DeepSpeed, runs epochs or steps, checkpoints, resumes, validates and reports.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

WEIGHTS_FILE = "model.pt"
MODEL_CONFIG_FILE = "model_config.json"


def resolve(ref):
    """A ``"module:attribute"`` reference (imported on first use, so records stay cheap to import) or the object."""
    if not isinstance(ref, str):
        return ref
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


@dataclasses.dataclass(frozen=True)
class DataNeeds:
    """What a method's training reads from the frame cache.

    ``columns`` of the training rows (rows where a ``required`` column is null are dropped; ``real_only`` keeps
    bona fide rows only; ``fraction`` < 1 a seeded subset of the samples); ``order``: ``shuffle`` (a global shuffle, epoch runs) or ``blocks`` (a random block
    order plus each worker's local shuffle buffer: cheap to re-read many times, step runs); ``streams``: extra
    unsplit streams every worker reads whole (name -> columns), e.g. PDLE's exchange partners; ``extra_real``: the
    bona fide rows (every split) of another frame cache as the stream ``extra_real`` (``fas.methods.balanced``).
    """

    columns: tuple[str, ...]
    required: tuple[str, ...] = ()
    real_only: bool = False
    fraction: float = 1.0
    order: str = "shuffle"
    local_shuffle: int = 0  # local shuffle buffer, in batches (order "blocks"; streamed "shuffle" rows get >= 8)
    streams: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    extra_real: str | None = None  # a frame cache of extra bona fide faces: the unsplit ``extra_real`` stream


@dataclasses.dataclass
class WorkerContext:
    """What the engine tells a task about its worker; no Ray object in it."""

    rank: int
    world_size: int
    device: torch.device
    dtype: torch.dtype  # the dtype inputs are fed in (half under DeepSpeed fp16)
    rng: np.random.Generator  # reseeded by the engine at every epoch (epoch runs) or resume point (step runs)
    open_stream: Callable[[str, int], Iterator[dict]]  # (stream name, batch size) -> a fresh pass over it

    def stream(self, name: str, batch_size: int) -> Callable[[], Iterator[dict]]:
        return lambda: self.open_stream(name, batch_size)


@dataclasses.dataclass
class StepInfo:
    """Where in the run a step is."""

    step: int  # steps done before this one, over the whole run
    epoch: int
    progress: float  # fraction of the run done, in [0, 1]


class Task:
    """A method's per-worker training state. Subclasses set ``module`` (what the engine wraps and checkpoints),
    ``optimizer``, optionally ``scheduler`` (stepped by the engine per epoch or per step), ``batch_size`` (rows
    per step from the training stream) and ``grad_clip``, and implement ``train_step`` and ``portable``."""

    module: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any = None
    batch_size: int = 32
    grad_clip: float | None = None

    def train_step(self, model, batch: dict[str, np.ndarray], info: StepInfo) -> dict[str, torch.Tensor]:
        """Losses of one batch (``loss`` is backpropagated); ``model`` is ``module`` as the engine wrapped it."""
        raise NotImplementedError

    def prepare_batch(self, batch: dict[str, np.ndarray]) -> dict:
        """Deterministic CPU work on a training batch (decoding), which the engine runs ahead of the step in a
        background thread; tensors returned here arrive in ``train_step`` pinned and on the worker's device. No
        randomness here (augment in ``train_step``, with ``ctx.rng`` or torch's generator). Work in numpy and hand
        torch the result (``torch.from_numpy``): a torch op on a large tensor in this thread starts a second OpenMP
        team in the worker, which slows every step of the training thread (``fas.preprocess.to_tensor``).
        Default: as read."""
        return batch

    def start_epoch(self, epoch: int) -> None:
        """Called before each epoch (epoch runs) or pass over the stream (step runs)."""

    def predictor(self):
        """The method's predictor over the live module, which source-side validation scores; None: no scores."""
        return None

    def portable(self, folder: Path) -> None:
        """Write what inference needs (weights + ``model_config.json``) into ``folder``."""
        raise NotImplementedError


def place(model: torch.nn.Module, device: str | torch.device) -> torch.nn.Module:
    """A model for inference on ``device``: fp16 on a GPU, fp32 on CPU, eval mode."""
    half = torch.device(device).type == "cuda"
    return model.to(device=device, dtype=torch.half if half else torch.float).eval()


class Predictor:
    """Scores decoded-once batches of a portable model folder. Subclasses give ``build(meta)`` (the bare
    architecture) and ``predict(*columns) -> {"score": ..., ...}`` over the cache columns named by ``inputs``."""

    inputs: tuple[str, ...] = ("image",)

    def __init__(self, model: torch.nn.Module, meta: dict, device: str | torch.device = "cpu"):
        from fas.preprocess import Preprocess

        self.model, self.meta, self.device = model, meta, device
        self.dtype = next(model.parameters()).dtype
        self.transform = Preprocess.from_meta(meta["preprocess"])

    @staticmethod
    def build(meta: dict) -> torch.nn.Module:
        raise NotImplementedError

    @classmethod
    def load(cls, folder: Path, meta: dict, device: str = "cpu") -> "Predictor":
        from fas.integrity import load_state

        model = cls.build(meta)
        model.load_state_dict(load_state(Path(folder) / WEIGHTS_FILE))
        return cls(place(model, device), meta, device)

    def images(self, encoded) -> torch.Tensor:
        """Encoded frames -> the model's input on its device: the one preprocessing path."""
        return self.transform(encoded).to(self.device, self.dtype)

    def predict(self, *columns) -> dict[str, np.ndarray]:
        raise NotImplementedError


def numpy_out(out: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {k: v.float().cpu().numpy() if v.is_floating_point() else v.cpu().numpy() for k, v in out.items()}


def write_model_folder(folder: Path, state: dict[str, torch.Tensor], meta: dict) -> None:
    """The portable model folder: fp32 weights + the config that rebuilds the model without training code, and
    ``checksums.json`` (their sha256, checked at every load). Each file is written whole or not at all."""
    from fas.integrity import save_state, storage_errors, write_checksums, write_text
    from fas.methods import get_method

    folder = Path(folder)
    with storage_errors(folder):
        folder.mkdir(parents=True, exist_ok=True)
    meta = {**meta, "method_module": get_method(meta["method"]).module}
    save_state(folder / WEIGHTS_FILE, state)
    write_text(folder / MODEL_CONFIG_FILE, json.dumps(meta, indent=2))
    write_checksums(folder, (WEIGHTS_FILE, MODEL_CONFIG_FILE))


def random_init(*fields: str) -> Callable:
    """A record's ``weightless``: the config with these pretrained-weight fields set to None (random init)."""
    return lambda cfg, folder: dataclasses.replace(cfg, **dict.fromkeys(fields))


@dataclasses.dataclass(frozen=True)
class Method:
    """One registered method: everything the CLI, quickstart, jobs, evaluation, Tune and Serve need to know.

    References may be objects or ``"module:attribute"`` strings, so that looking a method up imports no torch
    model code until it is used.
    """

    name: str
    config: type  # its config dataclass (a ``fas.engine.config.TrainConfig``)
    default_config: str  # YAML of the paper's defaults (a name under fas/configs, or a path)
    tiny_config: str  # YAML of the CPU-sized config (quickstart, tests)
    task: Any  # (cfg, WorkerContext) -> Task, built on every worker
    data: Callable[[Any], DataNeeds]  # cfg -> what training reads
    prepare: Callable[[Any], Any] | None = None  # cfg -> cfg, on the driver before launch (derived fields)
    predictor: Any = None  # Predictor class for its model folders; None: it has no liveness score (a generator)
    inputs: Callable[[dict], tuple[str, ...]] = lambda meta: ("image",)  # cache columns its predictor reads
    model_meta: Any = lambda cfg: {}  # cfg -> the model folder's meta as known before training (e.g. its inputs)
    needs: dict[str, str] = dataclasses.field(default_factory=dict)  # config field -> method whose run fills it
    scaled_fields: tuple[str, ...] = ()  # config fields capped by a shortened run (quickstart --steps/--epochs)
    phased_fields: tuple[str, ...] = ()  # config fields that mark a point of the run: scaled with its length
    companions: Callable[[dict], dict[str, str]] = lambda meta: {}  # model folder name -> folder published along
    weights: Any = lambda cfg: []  # cfg -> the pretrained files it needs (``WeightRef``s: ``fas doctor``)
    batch_field: str = "batch_size"  # the config field that sets the rows of one step per worker (``fas plan``)
    weightless: Any = lambda cfg, folder: cfg  # (cfg, folder) -> the same architecture, nothing to load (``fas plan``)
    cue_maker: Any = None  # generators: (folder, device) -> CueMaker, for the cue job and Serve
    commands: tuple[str, ...] = ()  # "module:function"s that add the method's own ``fas`` subcommands
    # (folder, predictor, chosen frames, cache, checkpoint, threshold) -> {caption: file}: the evaluation report's
    # pictures that need the model itself (CLIPC8's attention rollout, AG-FAS's cue gallery)
    pictures: Any = None
    aliases: tuple[str, ...] = ()
    summary: str = ""
    module: str = ""  # where the record is registered; saved in model folders so any process can find it

    def load_config(self, path: str | None = None, overrides: dict | None = None):
        from fas.config import load_config

        return load_config(self.config, path or self.default_config, overrides)

    def with_length(self, cfg, length: int):
        """``cfg`` run for ``length`` steps (or epochs): ``scaled_fields`` capped by it, ``phased_fields`` (e.g.
        Deep SVDD's switch from pre-training) moved in proportion, so a short run still has every phase."""
        from fas.config import replace

        ratio = length / cfg.engine.total
        capped = {name: min(getattr(cfg, name), length) for name in self.scaled_fields}
        phased = {name: round(getattr(cfg, name) * ratio) for name in self.phased_fields}
        return replace(cfg, **{f"{cfg.engine.unit}s": length}, **capped, **phased)
