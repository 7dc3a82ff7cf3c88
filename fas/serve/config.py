"""Serving configuration: the builder's arguments as dataclasses, and the model cards read from checkpoint folders.

The Serve config file (``serve/config.yaml``) passes ``args`` to ``fas.serve.app:build_app``; they fill
``ServeAppConfig``. Everything about a model that training and evaluation already decided (method, categories,
decision threshold) is read from its folder, never repeated in the config.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
from pathlib import Path

from fas.config import ConfigError, from_dict
from fas.quality import QualityConfig

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
INPUT_KINDS = ("face", "frame")  # face: the detected face crop; frame: the whole frame (CLIPC8 keeps background)
FUSION_RULES = ("mean", "weighted_mean")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclasses.dataclass
class ModelEntry:
    """One model deployment: where its checkpoint folder is and how it is served."""

    name: str = ""
    path: str = ""  # portable checkpoint folder (model.pt, model_config.json, metrics.json)
    input: str = "face"  # face | frame: which crop of the face stage this model scores
    weight: float = 1.0  # used by the weighted_mean fusion rule
    threshold: float | None = None  # None: metrics.json's threshold (the evaluated operating point)
    max_batch_size: int = 8
    batch_wait_timeout_s: float = 0.01
    deployment: dict = dataclasses.field(default_factory=dict)  # Serve options: num_replicas, autoscaling, ...
    generator_deployment: dict = dataclasses.field(default_factory=dict)  # AG-FAS: the generator's (num_gpus, ...)
    onnx: str | None = None  # `fas export`'s ONNX file of this folder's model: scored with onnxruntime instead


@dataclasses.dataclass
class FaceConfig:
    """The face stage: same detector and crop code as the data plane (``fas.data.faces``)."""

    detector: str = "haar"  # none | haar | yunet
    detector_weights: str | None = None
    margin: float = 0.2
    size: int = 128  # crop side; match the --size the training cache was prepared with
    no_face: str = "whole_frame"  # whole_frame: decide on the whole frame | reject: 422
    multiple_faces: str = "largest"  # largest: score the largest face | reject: 422
    # empty: the stage runs in the ingress replica (no hop; scale it with ingress_deployment); Serve options
    # (num_replicas, ray_actor_options, ...): a FaceStage deployment of its own, one more hop per request
    deployment: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class FusionConfig:
    """How per-model scores become one decision."""

    rule: str = "mean"  # mean | weighted_mean (ModelEntry.weight)
    threshold: float | None = None  # None: the same rule applied to the models' thresholds
    deployment: dict = dataclasses.field(default_factory=dict)  # ignored (with a warning): fusion runs in the ingress


@dataclasses.dataclass
class LimitsConfig:
    """What the ingress accepts before anything heavy runs."""

    max_bytes: int = 10 * 1024 * 1024  # encoded image size
    max_pixels: int = 25_000_000  # width x height from the header (decompression bombs)
    min_side: int = 32
    formats: list[str] = dataclasses.field(default_factory=lambda: ["JPEG", "PNG"])  # PIL format names
    # videos (POST /v1/liveness/video): the upload, its length and what is decoded; frames also obey the above
    video_max_bytes: int = 50 * 1024 * 1024
    video_max_seconds: float = 60.0
    video_max_frames: int = 3600  # frames in the whole video (a minute at 60 fps), not the sampled ones
    video_formats: list[str] = dataclasses.field(default_factory=lambda: ["mp4", "avi", "mov", "webm"])
    video_codecs: list[str] = dataclasses.field(  # FFmpeg decoder names
        default_factory=lambda: ["h264", "hevc", "mpeg4", "mjpeg", "vp8", "vp9", "av1"])


@dataclasses.dataclass
class VideoConfig:
    """How the video route samples frames and turns their scores into the video's: as the data plane samples
    (``fas prepare --frames``) and as evaluation aggregates per video (``fas metrics --video-level``)."""

    frames: int = 10  # uniformly spaced, first and last included (the data plane's default)
    aggregation: str = "mean"  # mean | median | max | min of the frames' fused scores


@dataclasses.dataclass
class AuthConfig:
    """API keys for ``/v1/*`` (``fas.serve.auth``): none configured = open, with a warning at start when the HTTP
    proxy listens beyond loopback. Keys from both sources are accepted."""

    api_keys_file: str | None = None  # one `sha256:<hex>` per line, `#` comments; `python -m fas.serve.auth`
    api_keys_env: str = "FAS_API_KEYS"  # environment variable of comma-separated plain keys


@dataclasses.dataclass
class OverloadConfig:
    """Load shedding: past the queue a request is answered at once (503 + Retry-After) instead of timing out.

    ``max_queued_requests`` goes to every deployment behind the ingress (models, generators, face stage): their
    rejections reach the ingress, which answers a JSON 503. The ingress's own queue (at Serve's HTTP proxy) is
    ``ingress_deployment.max_queued_requests``; Serve answers those rejections itself (503, plain text), with the
    same Retry-After."""

    max_queued_requests: int = -1  # per caller and deployment; -1: no limit (Serve's default)
    retry_after_s: int = 1


@dataclasses.dataclass
class ServeAppConfig:
    """``build_app`` arguments (the ``args`` block of an application in serve/config.yaml)."""

    models: list[ModelEntry] = dataclasses.field(default_factory=list)
    face: FaceConfig = dataclasses.field(default_factory=FaceConfig)
    fusion: FusionConfig = dataclasses.field(default_factory=FusionConfig)
    limits: LimitsConfig = dataclasses.field(default_factory=LimitsConfig)
    video: VideoConfig = dataclasses.field(default_factory=VideoConfig)
    ingress_deployment: dict = dataclasses.field(default_factory=dict)
    retries: int = 1  # re-sends of a call to a stage whose replica died mid-call (every stage is idempotent)
    quality: QualityConfig = dataclasses.field(default_factory=QualityConfig)  # warnings + uncertain_band
    auth: AuthConfig = dataclasses.field(default_factory=AuthConfig)
    overload: OverloadConfig = dataclasses.field(default_factory=OverloadConfig)

    def __post_init__(self):
        check_app_config(self)


def _choice(value: str, allowed: tuple[str, ...], where: str) -> None:
    if value not in allowed:
        raise ConfigError(f"{where}: {value!r} is not one of {list(allowed)}")


def check_video_config(video: VideoConfig) -> None:
    from fas.eval.aggregate import HOW  # evaluation's own rules: a served video is scored as it is evaluated

    if video.frames < 1:
        raise ConfigError(f"video.frames: at least 1 frame is sampled per video, got {video.frames}")
    _choice(video.aggregation, HOW, "video.aggregation")


def check_app_config(cfg: ServeAppConfig) -> None:
    """Reject configs that would fail later, or silently do something else, with the field to fix."""
    if not cfg.models:
        raise ConfigError("models: at least one model is needed (name + path of a checkpoint folder)")
    names = [m.name for m in cfg.models]
    if len(set(names)) != len(names):
        raise ConfigError(f"models: names must be unique, got {names}")
    for m in cfg.models:
        if not NAME_PATTERN.match(m.name):
            raise ConfigError(f"models: name {m.name!r} must match {NAME_PATTERN.pattern} (it names a deployment)")
        _choice(m.input, INPUT_KINDS, f"models.{m.name}.input")
        if m.max_batch_size < 1 or m.deployment.get("max_ongoing_requests", m.max_batch_size) < m.max_batch_size:
            raise ConfigError(f"models.{m.name}: need 1 <= max_batch_size <= deployment.max_ongoing_requests")
    _choice(cfg.fusion.rule, FUSION_RULES, "fusion.rule")
    check_video_config(cfg.video)
    _choice(cfg.face.no_face, ("whole_frame", "reject"), "face.no_face")
    _choice(cfg.face.multiple_faces, ("largest", "reject"), "face.multiple_faces")
    if cfg.face.detector == "none" and "reject" in (cfg.face.no_face, cfg.face.multiple_faces):
        raise ConfigError("face: detector 'none' finds no face, so the reject policies would refuse every request")
    if cfg.fusion.rule == "weighted_mean" and sum(m.weight for m in cfg.models) <= 0:
        raise ConfigError("models: weighted_mean needs weights with a positive sum")
    check_overload(cfg.overload)


def check_overload(overload: OverloadConfig) -> None:
    if overload.max_queued_requests == 0 or overload.max_queued_requests < -1:
        raise ConfigError(f"overload.max_queued_requests: -1 (no limit) or at least 1, got "
                          f"{overload.max_queued_requests}")
    if overload.retry_after_s < 0:
        raise ConfigError(f"overload.retry_after_s: seconds >= 0, got {overload.retry_after_s}")


def parse_app_config(args: dict | None) -> ServeAppConfig:
    return from_dict(ServeAppConfig, args or {}, "build_app args")


@dataclasses.dataclass(frozen=True)
class ModelCard:
    """What serving knows about one model, resolved once at startup from its checkpoint folder."""

    name: str
    path: str  # absolute
    method: str
    version: str  # <method>-<sha256 prefix of model.pt>: changes whenever the weights change
    threshold: float
    threshold_rule: str
    input: str
    weight: float
    categories: tuple[str, ...] | None
    generator: str | None = None  # AG-FAS: the De-fake Face Generator checkpoint that makes the model's cues
    cue: dict | None = None  # AG-FAS: noise_step, ddim_steps, seed of the cues the model was trained on
    onnx: str | None = None  # absolute path of the ONNX file the replicas score with, if any

    @property
    def weights(self) -> str:
        """What a replica loads: the ONNX file when one is given, else the folder."""
        return self.onnx or self.path


def model_version(folder: Path, method: str, weights: Path | None = None) -> str:
    """``<method>-<sha256 prefix>`` of the weights scored (model.pt, or the ONNX file)."""
    digest = hashlib.sha256()
    with open(weights or folder / "model.pt", "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return f"{method}-{digest.hexdigest()[:12]}"


def read_threshold(folder: Path, entry: ModelEntry) -> tuple[float, str]:
    """The decision threshold the evaluation chose (or the config's override) and the rule that chose it."""
    if entry.threshold is not None:
        return float(entry.threshold), "config"
    metrics_file = folder / METRICS_FILE
    if not metrics_file.is_file():
        raise ConfigError(f"model {entry.name!r}: {metrics_file} is missing; evaluate the checkpoint "
                          f"(jobs/evaluate.py writes it) or set models[].threshold in the serve config")
    metrics = json.loads(metrics_file.read_text())
    if not isinstance(metrics.get("threshold"), (int, float)):
        raise ConfigError(f"model {entry.name!r}: {metrics_file} has no numeric 'threshold'")
    rule = str(metrics.get("threshold_rule", "unknown"))
    if rule == "test_eer":
        log.warning("model %s: its threshold was chosen on the test set (test_eer)", entry.name)
    return float(metrics["threshold"]), rule


def load_model_card(entry: ModelEntry) -> ModelCard:
    """Check the folder and read method, categories, threshold and version; errors say what to run."""
    from fas.cues import GENERATOR_CONFIG
    from fas.methods import model_inputs, read_model_meta

    folder = Path(entry.path).expanduser().resolve()
    if not folder.is_dir():
        raise ConfigError(f"model {entry.name!r}: checkpoint folder {entry.path} ({folder}) does not exist; run "
                          f"`fas quickstart` to train the default models, or point models[].path in the serve "
                          f"config at a checkpoint folder (model.pt + model_config.json + metrics.json)")
    meta = read_model_meta(folder)
    threshold, rule = read_threshold(folder, entry)
    categories = meta.get("categories")
    generator = None
    if "cue" in model_inputs(meta):
        generator = folder / meta.get("generator", "generator")
        if not (generator / GENERATOR_CONFIG).is_file():
            raise ConfigError(f"model {entry.name!r} reads anomalous cues but {generator} holds no generator "
                              "checkpoint; publish the model with its generator (fas quickstart --method agfas "
                              "does) or copy a `jobs/train.py dfg` checkpoint there")
    onnx = check_onnx(entry, folder, meta) if entry.onnx else None
    return ModelCard(name=entry.name, path=str(folder), method=meta["method"],
                     version=model_version(folder, meta["method"], onnx), threshold=threshold, threshold_rule=rule,
                     input=entry.input, weight=entry.weight, categories=tuple(categories) if categories else None,
                     generator=str(generator) if generator else None, cue=meta.get("cue"),
                     onnx=str(onnx) if onnx else None)


def check_onnx(entry: ModelEntry, folder: Path, meta: dict) -> Path:
    """The entry's ONNX file, exported from this folder's model (its sidecar JSON holds the same meta)."""
    import json

    path = Path(entry.onnx).expanduser().resolve()
    sidecar = path.with_suffix(".json")
    if not path.is_file() or not sidecar.is_file():
        raise ConfigError(f"model {entry.name!r}: onnx {entry.onnx} needs the file and its sidecar {sidecar.name} "
                          f"beside it; write both with `fas export {folder} --onnx {path}`")
    if json.loads(sidecar.read_text()).get("meta") != meta:
        raise ConfigError(f"model {entry.name!r}: {path} was exported from another model than {folder}; export "
                          f"it again with `fas export {folder} --onnx {path}`")
    return path
