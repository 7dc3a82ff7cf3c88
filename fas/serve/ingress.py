"""The HTTP ingress (FastAPI on Serve): validate, face stage, the models (in parallel), fusion.

Validation runs here, before any call to another replica, so bad bytes cost one cheap header parse and never
reach a model. The face stage runs here too, in a worker thread (unless ``face.deployment`` gives it replicas of
its own), and so does the fusion: the batched model deployments are the only hop on the way of a request. Every
client error is a 4xx with ``{"error": code, "detail": reason}``; a call whose replica died mid-call is sent
again (every stage is idempotent) and only then answered with a 503.
"""

# No `from __future__ import annotations` here: FastAPI must see real types on the Serve-wrapped routes.
import asyncio
import dataclasses
import json
import logging
import math
import time
import uuid
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from ray import serve
from ray.exceptions import RayActorError
from ray.serve.exceptions import BackPressureError
from ray.serve.handle import DeploymentHandle

from fas.data.faces import encode_image
from fas.quality import decide
from fas.serve.auth import ApiKeys, RequireKey, warn_if_exposed
from fas.serve.config import FaceConfig, ModelCard, ServeAppConfig
from fas.serve.pipeline import InvalidImage, ThreadLocalFace, fuse, fused_threshold
from fas.serve.schemas import (ERROR_RESPONSES, REQUEST_BODY, VIDEO_ERROR_RESPONSES, VIDEO_FIELD, VIDEO_REQUEST_BODY,
                               ErrorResponse, FrameAnswer, LivenessResponse, VideoResponse)
from fas.serve.validation import (FIELD, JSON, BadInput, ImageInfo, body_cap, check_declared_length, check_image,
                                  check_media_type, image_from_json, media_type)
from fas.serve.video import SampledFrame, VideoInfo, sample_video, video_answer, video_body_cap

log = logging.getLogger("ray.serve")
READY_TIMEOUT_S = 5.0
EXPLAIN_FLAGS = {"1": True, "true": True, "0": False, "false": False}
WEB_PAGE = (resources.files("fas.serve") / "web" / "index.html").read_text(encoding="utf-8")  # package data

api = FastAPI(title="fas liveness", version="1",
              description="Face anti-spoofing: POST an image, get a live/spoof decision from the fused models.")
# /v1/* needs an API key when the replica has keys (fas.serve.auth); /healthz, /docs and the web page stay open
api.add_middleware(RequireKey, keys=lambda: serve.get_replica_context().servable_object.keys)


class Unavailable(Exception):
    """A stage of the graph failed on every attempt because its replicas died; the client should retry."""


class Overloaded(Exception):
    """A deployment behind the ingress refused the call because its queue is full (``max_queued_requests``)."""

    def __init__(self, stage: str, retry_after_s: float | None):
        super().__init__(f"{stage} is overloaded (its queue is full); retry later")
        self.retry_after_s = retry_after_s


@api.exception_handler(BadInput)
async def _bad_input(request: Request, exc: BadInput) -> JSONResponse:
    log.info("request %s: %d %s", request.headers.get("x-request-id"), exc.status, exc.code)
    return JSONResponse(ErrorResponse(error=exc.code, detail=exc.detail).model_dump(), status_code=exc.status,
                        headers=getattr(exc, "headers", None))


@api.exception_handler(Unavailable)
async def _unavailable(_: Request, exc: Unavailable) -> JSONResponse:
    body = ErrorResponse(error="unavailable", detail=str(exc)).model_dump()
    return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})


@api.exception_handler(Overloaded)
async def _overloaded(_: Request, exc: Overloaded) -> JSONResponse:
    body = ErrorResponse(error="overloaded", detail=str(exc)).model_dump()
    return JSONResponse(body, status_code=503, headers={"Retry-After": str(math.ceil(exc.retry_after_s or 1))})


async def read_capped(request: Request, cap: int) -> bytes:
    """The body, refusing to buffer more than ``cap`` bytes even when no Content-Length was sent."""
    check_declared_length(request.headers.get("content-length"), cap)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise BadInput(413, "too_large", f"request body exceeds the limit of {cap} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def image_from_multipart(request: Request, body: bytes, field: str = FIELD) -> bytes:
    """The file field ``field`` (``image``, or ``video`` on the video route) of a multipart body read into memory."""

    async def replay() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=1, max_fields=16)
    except Exception as exc:  # python-multipart/Starlette raise several types for a malformed body
        raise BadInput(400, "malformed_multipart", f"the multipart body cannot be parsed: {exc}") from None
    try:
        part = form.get(field)
        if part is None:
            raise BadInput(400, f"missing_{field}", f"the multipart body has no field '{field}'")
        if isinstance(part, str):
            raise BadInput(400, f"missing_{field}", f"'{field}' must be a file upload, not a text field")
        return await part.read()
    finally:
        await form.close()


async def read_upload(request: Request, cap: int, field: str = FIELD) -> tuple[bytes, bool]:
    """The uploaded file (multipart file field ``field``, or JSON ``{field: "<base64>"}``), and whether
    explanations were asked for (``?explain=1`` or ``"explain": true``)."""
    mtype = media_type(request.headers.get("content-type"))
    check_media_type(mtype, field)
    body = await read_capped(request, cap)
    if not body:
        raise BadInput(400, "empty_body", "the request body is empty")
    data = image_from_json(body, field) if mtype == JSON else await image_from_multipart(request, body, field)
    return data, explain_requested(request, body if mtype == JSON else None)


def request_id(request: Request) -> str:
    """Serve's proxy sets ``X-Request-ID`` (the client's, or a new one) and returns it as a header."""
    return request.headers.get("x-request-id") or uuid.uuid4().hex


def explain_requested(request: Request, json_body: bytes | None) -> bool:
    """The query's ``explain`` (1/0, true/false), else the JSON body's (a boolean), else no."""
    flag = request.query_params.get("explain")
    if flag is not None:
        if flag.lower() not in EXPLAIN_FLAGS:
            raise BadInput(400, "bad_explain", f"explain={flag!r}: use one of {sorted(EXPLAIN_FLAGS)}")
        return EXPLAIN_FLAGS[flag.lower()]
    if json_body is None or b'"explain"' not in json_body:  # skip a second parse of a large body
        return False
    value = json.loads(json_body).get("explain", False)  # an object: image_from_json checked it
    if not isinstance(value, bool):
        raise BadInput(400, "bad_explain", f"'explain' must be true or false, got {value!r}")
    return value


def apply_face_policy(face: dict, cfg: FaceConfig) -> None:
    """No face / several faces: answered (documented in the response) unless the config says reject."""
    if cfg.no_face == "reject" and not face["detected"]:
        raise BadInput(422, "no_face", "no face was found in the image; capture the face in the frame")
    if cfg.multiple_faces == "reject" and face["num_faces"] > 1:
        raise BadInput(422, "multiple_faces", f"{face['num_faces']} faces were found; capture one face only")


def http_host() -> str | None:
    """The host Serve's HTTP proxies listen on (``http_options.host``), asked of the controller: the one place
    that knows it however Serve was started (``serve run``, ``serve deploy``, ``serve.start``)."""
    from ray.serve.context import _get_global_client  # Ray 2.60 has no public accessor for the HTTP options

    return _get_global_client().http_config.host


@serve.deployment(ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=32)
@serve.ingress(api)
class LivenessIngress:
    def __init__(self, face: DeploymentHandle | None, models: dict[str, DeploymentHandle], cfg: ServeAppConfig,
                 cards: list[ModelCard], keys: ApiKeys | None = None):
        self.face, self.models = face, models
        self.cfg = cfg
        self.cards = {c.name: c for c in cards}
        self.local_face = ThreadLocalFace(cfg.face, {c.input for c in cards}, cfg.quality) if face is None else None
        self.keys = keys or ApiKeys()
        warn_if_exposed(http_host(), self.keys, cfg.auth)

    @api.post("/v1/liveness", response_model=LivenessResponse, responses=ERROR_RESPONSES,
              openapi_extra=REQUEST_BODY)
    async def liveness(self, request: Request) -> LivenessResponse:
        """Multipart (file field ``image``) or JSON ``{"image": "<base64>"}``; JPEG or PNG by default."""
        start = time.perf_counter()
        data, explain = await read_upload(request, body_cap(self.cfg.limits))
        info = await asyncio.to_thread(check_image, data, self.cfg.limits)
        answer = await self._image_answer(data, info, start, explain)
        answer.request_id = request_id(request)
        log.info("request %s: %s %dx%d, face %s, warnings %s -> %s (score %.4f) in %.0f ms", answer.request_id,
                 info.format, info.width, info.height, answer.face.used, [w.code for w in answer.warnings],
                 answer.decision, answer.score, answer.latency_ms)
        return answer

    async def _image_answer(self, data: bytes, info: ImageInfo, start: float, explain: bool = False
                            ) -> LivenessResponse:
        """Face stage, models and fusion of one checked image: the image route's answer, and each video frame's."""
        try:
            stage = self._face_here if self.local_face else self._face_remote
            face, calls = await stage(data, explain)
        except InvalidImage as exc:
            raise BadInput(400, "corrupt_image", f"the image cannot be decoded: {exc}") from None
        results = await asyncio.gather(*calls.values())
        decision = fuse(dict(zip(calls, results)), self.cards, self.cfg.fusion)
        return self._answer(decision, face, info, start)

    def _score(self, names: list[str], inputs: dict[str, bytes], face: dict | None = None, explain: bool = False
               ) -> dict[str, asyncio.Future]:
        """The model calls for ``names``, started now, each on the crop its model reads (and, for a model whose
        cues are masked to the face (DFG†), where the face lies in that crop)."""
        extra = {"explain": True} if explain else {}
        return {n: asyncio.ensure_future(self._call(f"model {n}", self.models[n], inputs[self.cards[n].input],
                                                    *self._geometry(n, face), **extra))
                for n in names}

    def _masked(self, name: str) -> bool:
        return (self.cards[name].cue or {}).get("mask", "none") != "none"

    def _geometry(self, name: str, face: dict | None) -> tuple:
        from fas.methods.dfg.mask import geometry_from_face

        if not self._masked(name):
            return ()
        return (geometry_from_face(face, self.cfg.face.margin, self.cards[name].input),)

    async def _face_here(self, data: bytes, explain: bool = False) -> tuple[dict, dict[str, asyncio.Future]]:
        """The face stage in worker threads of this replica (OpenCV releases the GIL, so concurrent requests use
        every core): decode and the whole-frame crop first, whose models start at once and run while the detector
        does; then the face crop's models. A request the face policy refuses cancels the calls it started."""
        rgb, early = await asyncio.to_thread(self.local_face.start, data)
        calls = self._score([n for n in self.models if self.cards[n].input in early and not self._masked(n)], early,
                            explain=explain)
        try:
            face = await asyncio.to_thread(self.local_face.face, rgb)
            apply_face_policy(face, self.cfg.face)
        except BaseException:
            for call in calls.values():
                call.cancel()
            raise
        rest = [n for n in self.models if n not in calls]
        calls.update(self._score(rest, {**early, **face["inputs"]}, face, explain))
        return face, {n: calls[n] for n in self.models}

    async def _face_remote(self, data: bytes, explain: bool = False) -> tuple[dict, dict[str, asyncio.Future]]:
        """The face stage on its own deployment, then every model."""
        face = await self._call("face stage", self.face, data)
        apply_face_policy(face, self.cfg.face)
        return face, self._score(list(self.models), face["inputs"], face, explain)

    async def _call(self, stage: str, handle: DeploymentHandle, *args, **kwargs):
        """A call to another deployment; one whose replica dies mid-call is sent again (every stage is idempotent),
        and Serve routes it to a live replica or holds it until the replacement is up. A full queue is answered at
        once (503 + Retry-After), not retried: retrying would only add to the overload."""
        for attempt in range(self.cfg.retries + 1):
            try:
                return await handle.remote(*args, **kwargs)
            except BackPressureError as exc:
                raise Overloaded(stage, exc.retry_after_s) from None
            except RayActorError as exc:
                log.warning("%s: replica died during a call (attempt %d): %s", stage, attempt + 1, exc)
        raise Unavailable(f"{stage} is unavailable after {self.cfg.retries + 1} attempts")

    def _answer(self, decision: dict, face: dict, info: ImageInfo, start: float) -> LivenessResponse:
        models = {n: {**r, "input": self.cards[n].input} for n, r in decision["models"].items()}
        used = "face" if face["detected"] else "whole_frame"
        return LivenessResponse(
            live=decision["live"], score=decision["score"], threshold=decision["threshold"],
            fusion=decision["rule"], models=models,
            face={"detected": face["detected"], "box": face["box"], "num_faces": face["num_faces"], "used": used},
            image={"format": info.format, "width": face["width"], "height": face["height"]}, model_versions={n: r["version"] for n, r in models.items()},
            warnings=face["warnings"],
            decision=decide(decision["score"], decision["threshold"], self.cfg.quality.uncertain_band),
            latency_ms=(time.perf_counter() - start) * 1000)

    @api.post("/v1/liveness/video", response_model=VideoResponse, responses=VIDEO_ERROR_RESPONSES,
              openapi_extra=VIDEO_REQUEST_BODY)
    async def liveness_video(self, request: Request) -> VideoResponse:
        """Multipart (file field ``video``) or JSON ``{"video": "<base64>"}``; MP4, AVI, MOV or WebM by default.
        The sampled frames go through the image route's steps; the video's score aggregates theirs."""
        start = time.perf_counter()
        data, explain = await read_upload(request, video_body_cap(self.cfg.limits), VIDEO_FIELD)
        info, frames = await asyncio.to_thread(sample_video, data, self.cfg.limits, self.cfg.video.frames)
        answers = await asyncio.gather(*(self._frame_answer(frame, info, start, explain) for frame in frames),
                                       return_exceptions=True)
        refused = [a for a in answers if isinstance(a, BaseException)]
        if refused:  # the first refused frame in video order, whichever finished first
            raise refused[0]
        answer = video_answer(answers, info, self.cards, self.cfg, start)
        answer.request_id = request_id(request)
        log.info("request %s: video %s/%s %dx%d, %d frames sampled -> %s (score %.4f) in %.0f ms", answer.request_id,
                 info.format, info.codec, info.width, info.height, len(frames), answer.decision, answer.score,
                 answer.latency_ms)
        return answer

    async def _frame_answer(self, frame: SampledFrame, info: VideoInfo, start: float, explain: bool = False
                            ) -> FrameAnswer:
        """One sampled frame as the image route answers it (encoded losslessly, so its models see the decoded
        pixels); a frame the face policy refuses refuses the video, naming the frame."""
        png = await asyncio.to_thread(encode_image, frame.rgb, "png")
        try:
            answer = await self._image_answer(png, info.frame_info(), start, explain)
        except BadInput as exc:
            raise BadInput(exc.status, exc.code, f"frame {frame.index}: {exc.detail}") from None
        return FrameAnswer(index=frame.index, time_s=frame.time_s, **answer.model_dump())

    @api.get("/healthz")
    async def healthz(self) -> JSONResponse:
        """200 when every deployment of the graph answers within a few seconds, else 503 naming the laggards."""
        handles = {**({"face": self.face} if self.face is not None else {}),
                   **{f"model:{n}": h for n, h in self.models.items()}}
        ready = await asyncio.gather(*(self._ready(h) for h in handles.values()))
        status = dict(zip(handles, ready))
        ok = all(ready)
        return JSONResponse({"status": "ok" if ok else "unavailable", "deployments": status},
                            status_code=200 if ok else 503)

    @staticmethod
    async def _ready(handle: DeploymentHandle) -> bool:
        try:
            return bool(await asyncio.wait_for(handle.ready.remote(), READY_TIMEOUT_S))
        except Exception:  # a timeout or a dead replica both mean "not ready"; the body says which deployment
            return False

    @api.get("/v1/models")
    async def list_models(self) -> dict:
        """The served models (version, threshold and how it was chosen), the fusion rule and the input policies."""
        cards = list(self.cards.values())
        face = dataclasses.asdict(self.cfg.face)
        face.pop("deployment")
        return {"models": [dataclasses.asdict(c) for c in cards],
                "fusion": {"rule": self.cfg.fusion.rule, "threshold": fused_threshold(cards, self.cfg.fusion)},
                "face": face, "limits": dataclasses.asdict(self.cfg.limits),
                "quality": dataclasses.asdict(self.cfg.quality)}

    @api.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def web_page(self) -> HTMLResponse:
        """The web page (fas/serve/web/index.html): an image, a video or webcam frames in, the answer drawn."""
        return HTMLResponse(WEB_PAGE)
