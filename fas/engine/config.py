"""The one engine config every method config nests, and the data-selection fields every method shares.

In YAML and on the command line the engine fields are written flat (``num_workers: 4``, ``--num-workers 4``) or
as an ``engine:`` section; ``engine: ddp`` alone picks the backend. A method sets its own defaults by giving
``engine = flat(lambda: EngineConfig(...), "backend")``: a partial section keeps them.
"""

from __future__ import annotations

import dataclasses

from fas.config import flat

BACKENDS = ("deepspeed", "ddp")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")


@dataclasses.dataclass
class EngineConfig:
    """How a run is scheduled, scaled, checkpointed and reported; the same fields for every method."""

    name: str = "run"  # run folder under storage_path; a rerun with the same name resumes it
    storage_path: str = "runs"  # local folder or shared/cloud URI every node can read
    epochs: int | None = None  # an epoch run: one pass over the training rows per epoch ...
    steps: int | None = None  # ... or a step run (set exactly one of the two)
    checkpoint_every: int = 1  # epochs or steps between checkpoints (each with validation and a report)
    log_every: int = 0  # steps between progress lines on rank 0 (0: none)
    validate: bool = True  # AUC/HTER of the live model on the source-side validation rows at each checkpoint
    # rows read into Ray's object store once when their columns fit (MiB, uncompressed): epochs then reread memory,
    # not the shards (a re-read costs seconds however few the rows); larger selections stream each epoch; 0: stream
    in_memory_mb: int = 1024
    backend: str = "deepspeed"  # deepspeed | ddp
    zero_stage: int = 2
    precision: str = "auto"  # auto (fp16 on GPU with DeepSpeed, else fp32) | fp32 | fp16 | bf16 (DeepSpeed only)
    # speed: batches decoded ahead of the step in a background thread (the task's prepare_batch) and, on a GPU,
    # pinned and copied without blocking; 0 decodes on the training thread. >1 decodes in several threads (the
    # batch order may then vary between runs).
    prefetch_batches: int = 1
    grad_checkpointing: bool = False  # recompute activations in backward (ViT-L/14, SD-1.5 UNet on 16 GB GPUs)
    channels_last: bool = False  # NHWC weights for convolutional models on GPU (ResNet, UNet)
    compile: bool = False  # torch.compile the module (minutes of compilation at start, then faster steps)
    peak_tflops: float | None = None  # the device's peak for MFU; None: looked up by GPU name (none on CPU)
    tensorboard: bool = False  # also write each checkpoint's numbers to RUN/tensorboard (tensorboardX event files)
    # also log each checkpoint's numbers (and the config as params) to MLflow: true = a file store in RUN/mlruns,
    # experiment and run named after the run; or a tracking URI (file:/..., http://...); needs fas[mlflow]
    mlflow: bool | str = False
    num_workers: int = 2
    use_gpu: bool = False
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 1.0  # with use_gpu: a GPU fraction per worker is allowed
    max_failures: int = 2  # worker restarts from the last checkpoint before the run fails
    keep_checkpoints: int = 2
    seed: int = 0
    address: str | None = None  # Ray cluster to join; None: $RAY_ADDRESS or an embedded local one
    # fine-tune a previous model: its model folder, or its run folder (the newest complete checkpoint), of the same
    # method and architecture; its weights replace the initial ones (a resumed run loads its own checkpoint instead)
    init_from: str | None = None
    # fault drills (`fas drill`): the last worker SIGKILLs itself in the middle of this step (after its backward,
    # before its optimizer step), once per run (RUN/drill_kill.json records it); 0: never
    drill_kill_at_step: int = 0

    @property
    def unit(self) -> str:
        return "step" if self.steps is not None else "epoch"

    @property
    def total(self) -> int:
        return int(self.steps if self.steps is not None else self.epochs)

    @property
    def half(self) -> str | None:
        """The reduced precision the engine trains in (``fp16``/``bf16``), or None for fp32."""
        if self.precision == "auto":
            return "fp16" if self.use_gpu and self.backend == "deepspeed" else None
        return None if self.precision == "fp32" else self.precision

    def check(self) -> None:
        """Errors a user can fix, before any worker starts."""
        if (self.epochs is None) == (self.steps is None):
            raise ValueError(f"run {self.name!r}: set exactly one of epochs ({self.epochs}) and steps ({self.steps})")
        if self.in_memory_mb < 0:
            raise ValueError(f"run {self.name!r}: in_memory_mb must be >= 0 (0 streams every epoch from the shards)")
        if self.total < 1 or self.checkpoint_every < 1:
            raise ValueError(f"run {self.name!r}: epochs/steps and checkpoint_every must be >= 1")
        if self.prefetch_batches < 0:
            raise ValueError(f"run {self.name!r}: prefetch_batches must be >= 0 (0 decodes on the training thread)")
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown engine backend {self.backend!r}; choose {' or '.join(BACKENDS)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; choose one of {list(PRECISIONS)}")
        if self.half and self.backend != "deepspeed":
            raise ValueError(f"precision {self.half} needs the deepspeed backend (ddp trains in fp32)")
        if self.half and not self.use_gpu:
            raise ValueError(f"precision {self.half} needs use_gpu: CPU workers train in fp32")


@dataclasses.dataclass
class TrainConfig:
    """What every method config starts with: which rows of which frame cache it trains on, and the engine."""

    cache: str = ""  # the frame cache to train on
    protocol: str | None = None  # train rows of this protocol (e.g. "O&C&I->M"); None: the train split
    fold: int | None = None
    engine: EngineConfig = flat(EngineConfig, "backend")
