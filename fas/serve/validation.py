"""Request validation in the ingress: cheap checks that turn every bad input into a 4xx with a JSON reason.

Order matters: byte counts first (Content-Length, then the stream), then the image header (format and
dimensions, read without decoding pixels, so a decompression bomb is refused before it is expanded), and only
then one integrity pass over the compressed data (truncated or corrupt files). The models never see bytes that
failed here.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import io
import json
import warnings

from PIL import Image

from fas.serve.config import LimitsConfig

MULTIPART = "multipart/form-data"
JSON = "application/json"
FIELD = "image"


class BadInput(Exception):
    """A client error: HTTP ``status``, a stable machine-readable ``code`` and a human ``detail``."""

    def __init__(self, status: int, code: str, detail: str):
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


@dataclasses.dataclass
class ImageInfo:
    format: str
    width: int
    height: int


def body_cap(limits: LimitsConfig) -> int:
    """The most request bytes worth reading: base64 grows data by 4/3, plus room for JSON or multipart framing."""
    return limits.max_bytes * 4 // 3 + 64 * 1024


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def check_declared_length(content_length: str | None, cap: int) -> None:
    if content_length is None:
        return
    if not content_length.isdigit():
        raise BadInput(400, "bad_content_length", f"Content-Length {content_length!r} is not a number")
    if int(content_length) > cap:
        raise BadInput(413, "too_large", f"request body of {content_length} bytes exceeds the limit of {cap}")


def check_media_type(mtype: str, field: str = FIELD) -> None:
    if mtype not in (MULTIPART, JSON):
        raise BadInput(415, "unsupported_media_type",
                       f"Content-Type {mtype or '(none)'!r} is not accepted; send {MULTIPART} with a file field "
                       f"'{field}', or {JSON} with {{\"{field}\": \"<base64>\"}}")


def image_from_json(body: bytes, field: str = FIELD) -> bytes:
    """``{"image": "<base64>"}`` (or ``field``: ``video``) -> bytes; a data URL prefix and line breaks (``base64``
    wraps at 76) are fine."""
    if not body:
        raise BadInput(400, "empty_body", "the request body is empty")
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInput(400, "malformed_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get(field), str):
        raise BadInput(400, f"missing_{field}", f"the JSON body must be an object with a base64 string '{field}'")
    text = doc[field]
    if text.startswith("data:") and "," in text:
        text = text.split(",", 1)[1]
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadInput(400, "bad_base64", f"'{field}' is not valid base64: {exc}") from None


def _open_header(data: bytes) -> Image.Image:
    """PIL reads only the header here; bombs beyond PIL's own hard limit surface as errors, not allocations."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own max_pixels check follows
        try:
            return Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as exc:
            raise BadInput(413, "too_many_pixels", str(exc)) from None
        except Exception as exc:  # any parser failure on untrusted bytes is the client's
            raise BadInput(400, "not_an_image", f"the bytes are not an image ({type(exc).__name__})") from None


def _check_integrity(img: Image.Image) -> None:
    """Decode once (JPEG at 1/8 scale: all entropy-coded data is read, little is computed) to catch truncation."""
    w, h = img.size
    img.draft("RGB", (max(1, w // 8), max(1, h // 8)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            img.load()
        except Exception as exc:  # truncated or corrupt stream: PIL raises OSError/SyntaxError/ValueError/...
            raise BadInput(400, "corrupt_image", f"the image data is truncated or corrupt: {exc}") from None


def check_image(data: bytes, limits: LimitsConfig) -> ImageInfo:
    """Size, format, dimensions and integrity of encoded image bytes, cheapest check first."""
    if not data:
        raise BadInput(400, "empty_image", "the image is empty (0 bytes)")
    if len(data) > limits.max_bytes:
        raise BadInput(413, "too_large", f"the image has {len(data)} bytes; the limit is {limits.max_bytes}")
    img = _open_header(data)
    if img.format not in limits.formats:
        raise BadInput(415, "unsupported_format", f"{img.format} images are not accepted; send one of {limits.formats}")
    w, h = img.size
    if w * h > limits.max_pixels:
        raise BadInput(413, "too_many_pixels", f"{w}x{h} = {w * h} pixels exceeds the limit of {limits.max_pixels}")
    if min(w, h) < limits.min_side:
        raise BadInput(422, "too_small", f"{w}x{h} is below the minimum side of {limits.min_side} pixels")
    _check_integrity(img)
    return ImageInfo(img.format, w, h)
