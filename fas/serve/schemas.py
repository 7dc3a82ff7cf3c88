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


class LivenessResponse(BaseModel):
    live: bool = Field(description="score >= threshold")
    score: float = Field(description="fused liveness score, higher = more likely real")
    threshold: float
    fusion: str
    models: dict[str, ModelResult]
    face: FaceInfo
    image: ImageMeta
    model_versions: dict[str, str]
    latency_ms: float = Field(description="time spent in the service, from request to answer")


class ErrorResponse(BaseModel):
    error: str = Field(description="stable machine-readable reason, e.g. corrupt_image, no_face")
    detail: str


REQUEST_BODY = {"requestBody": {"required": True, "content": {
    MULTIPART: {"schema": {"type": "object", "required": [FIELD],
                           "properties": {FIELD: {"type": "string", "format": "binary"}}}},
    JSON: {"schema": {"type": "object", "required": [FIELD],
                      "properties": {FIELD: {"type": "string", "format": "byte",
                                             "description": "base64 of the image file (a data: URL works too)"}}}},
}}}

ERROR_RESPONSES = {
    400: {"model": ErrorResponse, "description": "empty, malformed, not an image, truncated or corrupt"},
    413: {"model": ErrorResponse, "description": "over the byte or pixel limit (decompression bombs included)"},
    415: {"model": ErrorResponse, "description": "wrong Content-Type or an image format that is not accepted"},
    422: {"model": ErrorResponse, "description": "too small, or no face / several faces when configured to reject"},
    503: {"model": ErrorResponse, "description": "a stage lost its replicas and is being replaced; retry"},
}
