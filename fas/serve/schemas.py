"""The HTTP contract of the liveness endpoint (pydantic models: they drive the OpenAPI page at /docs)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from fas.serve.validation import FIELD, JSON, MULTIPART


class ModelResult(BaseModel):
    """One model's answer. Class outputs appear when the model has them (CLIPC8: ``category`` and ``probs``)."""

    model_config = ConfigDict(extra="allow")

    score: float = Field(description="higher = more likely real, in [0, 1]")
    threshold: float = Field(description="this model's evaluated decision threshold")
    live: bool = Field(description="score >= threshold")
    version: str
    input: str = Field(description="face (face crop) or frame (whole frame)")
    batch_size: int = Field(description="size of the dynamic batch this request was scored in")
    category: str | None = None
    probs: dict[str, float] | None = None
    explanation: dict | None = Field(None, description="with explain: fas.explain's numbers and base64 PNGs "
                                     "(images: probs and levels bar charts, AG-FAS's cue heat-map over the crop)")


class FaceInfo(BaseModel):
    detected: bool
    box: list[int] | None = Field(description="x0, y0, x1, y1 of the scored face in the uploaded image")
    num_faces: int
    used: str = Field(description="what face-input models scored: face, or whole_frame when no face was found")


class ImageMeta(BaseModel):
    """The decoded frame the box refers to (after any EXIF rotation, as the data plane decodes it)."""

    format: str
    width: int
    height: int


class QualityWarning(BaseModel):
    code: str
    detail: str


class Decision(BaseModel):
    """What every answer, of an image or of a video, starts with."""

    live: bool = Field(description="score >= threshold")
    score: float = Field(description="fused liveness score, higher = more likely real")
    threshold: float
    fusion: str
    decision: str = Field(description="live, spoof, or uncertain when the score is inside quality.uncertain_band")
    model_versions: dict[str, str]
    latency_ms: float = Field(description="time spent in the service, from request to answer")
    request_id: str | None = Field(None, description="the X-Request-ID of the request (also sent back as that "
                                                     "header; made by the service when the client sent none)")


class LivenessResponse(Decision):
    models: dict[str, ModelResult]
    face: FaceInfo
    image: ImageMeta
    warnings: list[QualityWarning] = Field(description="capture-quality warnings (none is fatal): no_face, "
                                           "several_faces, face_too_small, blurred, too_dark, too_bright, "
                                           "face_cut_by_border")


class ErrorResponse(BaseModel):
    error: str = Field(description="stable machine-readable reason, e.g. corrupt_image, no_face")
    detail: str


def request_body(field: str, what: str) -> dict:
    """The OpenAPI request body of an upload route: multipart with a file field, or JSON with its base64."""
    encoded = {"type": "string", "format": "byte", "description": f"base64 of the {what} file (a data: URL works too)"}
    return {"requestBody": {"required": True, "content": {
        MULTIPART: {"schema": {"type": "object", "required": [field],
                               "properties": {field: {"type": "string", "format": "binary"}}}},
        JSON: {"schema": {"type": "object", "required": [field], "properties": {field: encoded}}},
    }}}


REQUEST_BODY = request_body(FIELD, "image")

ERROR_RESPONSES = {
    400: {"model": ErrorResponse, "description": "empty, malformed, not an image, truncated or corrupt"},
    401: {"model": ErrorResponse, "description": "no API key (when keys are configured): send 'Authorization: "
                                                 "Bearer <key>' or 'X-API-Key: <key>'"},
    403: {"model": ErrorResponse, "description": "an API key that is not valid"},
    413: {"model": ErrorResponse, "description": "over the byte or pixel limit (decompression bombs included)"},
    415: {"model": ErrorResponse, "description": "wrong Content-Type or an image format that is not accepted"},
    422: {"model": ErrorResponse, "description": "too small, or no face / several faces when configured to reject"},
    503: {"model": ErrorResponse, "description": "overloaded (a queue is full) or a stage lost its replicas; retry "
                                                 "after Retry-After seconds"},
}


# ---------------------------------------------------------------- videos (POST /v1/liveness/video)
VIDEO_FIELD = "video"


class FrameAnswer(LivenessResponse):
    """One sampled frame, answered as the image route answers an image of it."""

    index: int = Field(description="the frame's number in the video, counted from 0 in decoding order")
    time_s: float | None = Field(description="the frame's presentation time in the video, in seconds")


class VideoMeta(BaseModel):
    format: str = Field(description="the container as sniffed from the bytes: mp4, avi, mov or webm")
    codec: str = Field(description="FFmpeg's name of the video codec, e.g. h264")
    width: int
    height: int
    frames: int = Field(description="frames in the video (as the container declares them, else counted)")
    seconds: float | None = None
    fps: float | None = None


class VideoModelResult(BaseModel):
    score: float = Field(description="this model's frame scores aggregated as the video's fused score is")
    threshold: float
    live: bool


class VideoResponse(Decision):
    aggregation: str = Field(description="mean, median, max or min of the frame scores, as evaluation aggregates")
    models: dict[str, VideoModelResult]
    frames: list[FrameAnswer] = Field(description="the sampled frames (uniformly spaced, as the data plane samples)")
    video: VideoMeta
    warnings: list[QualityWarning] = Field(description="each warning code of the sampled frames once, saying which "
                                           "frames carry it (each frame's own are in frames)")


VIDEO_REQUEST_BODY = request_body(VIDEO_FIELD, "video")

VIDEO_ERROR_RESPONSES = {
    **ERROR_RESPONSES,
    400: {"model": ErrorResponse, "description": "empty, malformed, not a video, no video stream, truncated or "
                                                 "corrupt (corrupt_video)"},
    413: {"model": ErrorResponse, "description": "over the byte, duration, frame-count or pixel limit"},
    415: {"model": ErrorResponse, "description": "wrong Content-Type, or a container or codec that is not accepted"},
    422: {"model": ErrorResponse, "description": "frames too small, or a sampled frame without a face / with several "
                                                 "faces when configured to reject"},
}
