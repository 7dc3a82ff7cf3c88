"""Videos in the ingress: identify, bound, sample and aggregate, so each sampled frame can take the image route.

The container is identified from the bytes (FFmpeg's probe through PyAV, decoding from an in-memory buffer),
never from a file name. The limits are checked before anything is decoded: bytes, container and codec, frame
size, frame count and duration. When the container does not declare its frame count (Matroska/WebM), the video
stream's packets are counted without decoding, stopping past the limit, so a long video is refused cheaply and
no more than the limit is ever decoded. Frames are picked as the data plane picks them (``uniform_indices`` of
``fas.data.video``: N uniformly spaced, first and last included) and the video's score aggregates the frames'
fused scores as evaluation aggregates per video (``fas.eval.aggregate``).
"""

from __future__ import annotations

import dataclasses
import io
import time

import av
import numpy as np

from fas.data.video import uniform_indices
from fas.quality import CODES, decide
from fas.serve.config import LimitsConfig, ModelCard, ServeAppConfig
from fas.serve.schemas import FrameAnswer, VideoMeta, VideoModelResult, VideoResponse
from fas.serve.validation import BadInput, ImageInfo

MOV_DEMUXER = "mov,mp4,m4a,3gp,3g2,mj2"  # FFmpeg's one demuxer for the ISO/QuickTime family
MATROSKA_DEMUXER = "matroska,webm"
WEBM_CODECS = ("vp8", "vp9", "av1")  # WebM is Matroska restricted to these video codecs
DECODE_ERRORS = (av.error.FFmpegError, OSError, ValueError, IndexError)


@dataclasses.dataclass
class VideoInfo:
    format: str
    codec: str
    width: int
    height: int
    frames: int
    seconds: float | None
    fps: float | None

    def frame_info(self) -> ImageInfo:
        """What a frame's answer says about its image: the video's container/codec and the frame size."""
        return ImageInfo(f"{self.format}/{self.codec}", self.width, self.height)

    def meta(self) -> VideoMeta:
        return VideoMeta(**dataclasses.asdict(self))


@dataclasses.dataclass
class SampledFrame:
    index: int
    time_s: float | None
    rgb: np.ndarray


def video_body_cap(limits: LimitsConfig) -> int:
    """The most request bytes worth reading: base64 grows data by 4/3, plus room for JSON or multipart framing."""
    return limits.video_max_bytes * 4 // 3 + 64 * 1024


def open_container(data: bytes):
    try:
        return av.open(io.BytesIO(data), mode="r")
    except DECODE_ERRORS as exc:
        raise BadInput(400, "corrupt_video", f"the bytes are not a readable video ({type(exc).__name__}: {exc})"
                       ) from None


def container_format(container, codec: str) -> str:
    """mp4 / mov (by the ftyp brand; QuickTime files may have none), avi, webm (Matroska with a WebM codec), else
    the demuxer's own name (mkv, gif, mpegts, ...)."""
    name = container.format.name
    if name == MOV_DEMUXER:
        brand = container.metadata.get("major_brand", "").strip()
        return "mov" if brand in ("", "qt") else "3gp" if brand.startswith("3g") else "mp4"
    if name == MATROSKA_DEMUXER:
        return "webm" if codec in WEBM_CODECS else "mkv"
    return name


def check_frame_size(width: int, height: int, limits: LimitsConfig) -> None:
    if width * height > limits.max_pixels:
        raise BadInput(413, "too_many_pixels", f"{width}x{height} = {width * height} pixels per frame exceeds the "
                                               f"limit of {limits.max_pixels}")
    if min(width, height) < limits.min_side:
        raise BadInput(422, "too_small", f"{width}x{height} frames are below the minimum side of {limits.min_side}")


def count_frames(container, stream, cap: int) -> int:
    """The video stream's packets (one per frame), counted without decoding and no further than ``cap + 1``."""
    count = 0
    try:
        for packet in container.demux(stream):
            count += bool(packet.size)  # the demuxer ends with an empty flush packet
            if count > cap:
                break
    except DECODE_ERRORS as exc:
        raise BadInput(400, "corrupt_video", f"the video stream cannot be read after {count} frames: {exc}") from None
    return count


def duration_s(container, stream, frames: int, fps: float | None) -> float | None:
    if container.duration:
        return container.duration / av.time_base
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return frames / fps if fps else None


def probe(container, limits: LimitsConfig) -> VideoInfo:
    """Container, codec, frame size, frame count and duration, each against its limit, before any decoding."""
    if not container.streams.video:
        raise BadInput(400, "no_video_stream", f"the {container.format.name} file holds no video stream")
    stream = container.streams.video[0]
    codec = stream.codec_context.name
    fmt = container_format(container, codec)
    if fmt not in limits.video_formats:
        raise BadInput(415, "unsupported_container", f"{fmt} videos are not accepted; send one of "
                                                     f"{limits.video_formats}")
    if codec not in limits.video_codecs:
        raise BadInput(415, "unsupported_codec", f"{codec} video is not accepted; send one of {limits.video_codecs}")
    width, height = stream.codec_context.width, stream.codec_context.height
    check_frame_size(width, height, limits)
    frames = int(stream.frames or 0) or count_frames(container, stream, limits.video_max_frames)
    if frames > limits.video_max_frames:
        raise BadInput(413, "too_many_frames", f"the video has more than {limits.video_max_frames} frames")
    if frames == 0:
        raise BadInput(400, "corrupt_video", "the video stream holds no frames")
    fps = float(stream.average_rate) if stream.average_rate else None
    seconds = duration_s(container, stream, frames, fps)
    if seconds is not None and seconds > limits.video_max_seconds:
        raise BadInput(413, "too_long", f"the video lasts {seconds:.1f} s; the limit is {limits.video_max_seconds} s")
    return VideoInfo(fmt, codec, width, height, frames, seconds, fps)


def decode_frames(container, wanted: set[int], limits: LimitsConfig) -> list[SampledFrame]:
    """The frames numbered ``wanted`` (decoding order, as the data plane counts), decoding no further than needed."""
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    picked, last = [], max(wanted)
    try:
        for index, frame in enumerate(container.decode(stream)):
            check_frame_size(frame.width, frame.height, limits)  # the size may change inside a stream
            if index in wanted:
                picked.append(SampledFrame(index, None if frame.time is None else float(frame.time),
                                           frame.to_ndarray(format="rgb24")))
            if index >= last:
                break
    except DECODE_ERRORS as exc:
        raise BadInput(400, "corrupt_video", f"the video cannot be decoded after {len(picked)} sampled frames "
                                             f"({type(exc).__name__}: {exc})") from None
    if len(picked) < len(wanted):  # the container promised more frames than the stream holds
        raise BadInput(400, "corrupt_video", f"the video is truncated: {len(picked)} of the {len(wanted)} sampled "
                                             "frames could be decoded")
    return picked


def sample_video(data: bytes, limits: LimitsConfig, num_frames: int) -> tuple[VideoInfo, list[SampledFrame]]:
    """Check ``data`` against the limits, then decode ``num_frames`` uniformly spaced frames as the data plane
    would (``fas prepare --frames``). Every problem is a ``BadInput`` (4xx) with the reason."""
    if not data:
        raise BadInput(400, "empty_video", "the video is empty (0 bytes)")
    if len(data) > limits.video_max_bytes:
        raise BadInput(413, "too_large", f"the video has {len(data)} bytes; the limit is {limits.video_max_bytes}")
    with open_container(data) as container:
        info = probe(container, limits)
    with open_container(data) as container:  # probing may have read the whole stream: decode from the start
        return info, decode_frames(container, set(uniform_indices(info.frames, num_frames)), limits)


def aggregate_scores(scores: list[float], how: str) -> float:
    """Evaluation's per-video aggregation (``fas metrics --video-level``) of one video's frame scores; the label
    column it requires is unknown when serving and plays no part in the score."""
    import pandas as pd

    from fas.eval.aggregate import aggregate_by_video

    frames = pd.DataFrame({"video": 0, "label": 0, "score": scores})
    return float(aggregate_by_video(frames, how)["score"].iloc[0])


def frame_warnings(frames: list[FrameAnswer]) -> list[dict]:
    """Each warning code of the sampled frames once (in the order of ``fas.quality.CODES``), naming its frames."""
    where: dict[str, list[int]] = {}
    for frame in frames:
        for warning in frame.warnings:
            where.setdefault(warning.code, []).append(frame.index)
    return [{"code": code, "detail": f"{len(where[code])} of {len(frames)} sampled frames: {where[code]}"}
            for code in CODES if code in where]


def video_answer(frames: list[FrameAnswer], info: VideoInfo, cards: dict[str, ModelCard], cfg: ServeAppConfig,
                 start: float) -> VideoResponse:
    """The video's answer: the frames' fused scores (and each model's scores) aggregated, decided at the fused
    threshold (and each model's own) that decides an image, with the same uncertain band."""
    how, first = cfg.video.aggregation, frames[0]
    score = aggregate_scores([f.score for f in frames], how)
    models = {}
    for name in first.models:
        model_score = aggregate_scores([f.models[name].score for f in frames], how)
        models[name] = VideoModelResult(score=model_score, threshold=cards[name].threshold,
                                        live=model_score >= cards[name].threshold)
    return VideoResponse(live=score >= first.threshold, score=score, threshold=first.threshold, fusion=first.fusion,
                         aggregation=how, models=models, frames=frames, video=info.meta(),
                         model_versions=first.model_versions, warnings=frame_warnings(frames),
                         decision=decide(score, first.threshold, cfg.quality.uncertain_band),
                         latency_ms=(time.perf_counter() - start) * 1000)
