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
import logging
import time

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from ray import serve
from ray.exceptions import RayActorError
from ray.serve.handle import DeploymentHandle

from fas.serve.config import FaceConfig, ModelCard, ServeAppConfig
from fas.serve.pipeline import InvalidImage, ThreadLocalFace, fuse, fused_threshold
from fas.serve.schemas import ERROR_RESPONSES, REQUEST_BODY, ErrorResponse, LivenessResponse
from fas.serve.validation import (FIELD, JSON, BadInput, ImageInfo, body_cap, check_declared_length, check_image,
                                  check_media_type, image_from_json, media_type)

log = logging.getLogger("ray.serve")
READY_TIMEOUT_S = 5.0

api = FastAPI(title="fas liveness", version="1",
              description="Face anti-spoofing: POST an image, get a live/spoof decision from the fused models.")


class Unavailable(Exception):
    """A stage of the graph failed on every attempt because its replicas died; the client should retry."""


@api.exception_handler(BadInput)
async def _bad_input(_: Request, exc: BadInput) -> JSONResponse:
    return JSONResponse(ErrorResponse(error=exc.code, detail=exc.detail).model_dump(), status_code=exc.status)


@api.exception_handler(Unavailable)
async def _unavailable(_: Request, exc: Unavailable) -> JSONResponse:
    body = ErrorResponse(error="unavailable", detail=str(exc)).model_dump()
    return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})


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


async def image_from_multipart(request: Request, body: bytes) -> bytes:
    """The file field ``image`` of a multipart body already read into memory."""

    async def replay() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=1, max_fields=16)
    except Exception as exc:  # python-multipart/Starlette raise several types for a malformed body
        raise BadInput(400, "malformed_multipart", f"the multipart body cannot be parsed: {exc}") from None
    try:
        part = form.get(FIELD)
        if part is None:
            raise BadInput(400, "missing_image", f"the multipart body has no field '{FIELD}'")
        if isinstance(part, str):
            raise BadInput(400, "missing_image", f"'{FIELD}' must be a file upload, not a text field")
        return await part.read()
    finally:
        await form.close()


async def read_image(request: Request, cap: int) -> bytes:
    mtype = media_type(request.headers.get("content-type"))
    check_media_type(mtype)
    body = await read_capped(request, cap)
    if not body:
        raise BadInput(400, "empty_body", "the request body is empty")
    return image_from_json(body) if mtype == JSON else await image_from_multipart(request, body)


def apply_face_policy(face: dict, cfg: FaceConfig) -> None:
    """No face / several faces: answered (documented in the response) unless the config says reject."""
    if cfg.no_face == "reject" and not face["detected"]:
        raise BadInput(422, "no_face", "no face was found in the image; capture the face in the frame")
    if cfg.multiple_faces == "reject" and face["num_faces"] > 1:
        raise BadInput(422, "multiple_faces", f"{face['num_faces']} faces were found; capture one face only")


@serve.deployment(ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=32)
@serve.ingress(api)
class LivenessIngress:
    def __init__(self, face: DeploymentHandle | None, models: dict[str, DeploymentHandle], cfg: ServeAppConfig,
                 cards: list[ModelCard]):
        self.face, self.models = face, models
        self.cfg = cfg
        self.cards = {c.name: c for c in cards}
        self.local_face = ThreadLocalFace(cfg.face, {c.input for c in cards}) if face is None else None

    @api.post("/v1/liveness", response_model=LivenessResponse, responses=ERROR_RESPONSES,
              openapi_extra=REQUEST_BODY)
    async def liveness(self, request: Request) -> LivenessResponse:
        """Multipart (file field ``image``) or JSON ``{"image": "<base64>"}``; JPEG or PNG by default."""
        start = time.perf_counter()
        data = await read_image(request, body_cap(self.cfg.limits))
        info = await asyncio.to_thread(check_image, data, self.cfg.limits)
        try:
            face, calls = await (self._face_here(data) if self.local_face else self._face_remote(data))
        except InvalidImage as exc:
            raise BadInput(400, "corrupt_image", f"the image cannot be decoded: {exc}") from None
        results = await asyncio.gather(*calls.values())
        decision = fuse(dict(zip(calls, results)), self.cards, self.cfg.fusion)
        return self._answer(decision, face, info, start)

    def _score(self, names: list[str], inputs: dict[str, bytes], face: dict | None = None
               ) -> dict[str, asyncio.Future]:
        """The model calls for ``names``, started now, each on the crop its model reads (and, for a model whose
        cues are masked to the face (DFG†), where the face lies in that crop)."""
        return {n: asyncio.ensure_future(self._call(f"model {n}", self.models[n], inputs[self.cards[n].input],
                                                    *self._geometry(n, face)))
                for n in names}

    def _masked(self, name: str) -> bool:
        return (self.cards[name].cue or {}).get("mask", "none") != "none"

    def _geometry(self, name: str, face: dict | None) -> tuple:
        from fas.methods.dfg.mask import geometry_from_face

        if not self._masked(name):
            return ()
        return (geometry_from_face(face, self.cfg.face.margin, self.cards[name].input),)

    async def _face_here(self, data: bytes) -> tuple[dict, dict[str, asyncio.Future]]:
        """The face stage in worker threads of this replica (OpenCV releases the GIL, so concurrent requests use
        every core): decode and the whole-frame crop first, whose models start at once and run while the detector
        does; then the face crop's models. A request the face policy refuses cancels the calls it started."""
        rgb, early = await asyncio.to_thread(self.local_face.start, data)
        calls = self._score([n for n in self.models if self.cards[n].input in early and not self._masked(n)], early)
        try:
            face = await asyncio.to_thread(self.local_face.face, rgb)
            apply_face_policy(face, self.cfg.face)
        except BaseException:
            for call in calls.values():
                call.cancel()
            raise
        calls.update(self._score([n for n in self.models if n not in calls], {**early, **face["inputs"]}, face))
        return face, {n: calls[n] for n in self.models}

    async def _face_remote(self, data: bytes) -> tuple[dict, dict[str, asyncio.Future]]:
        """The face stage on its own deployment, then every model."""
        face = await self._call("face stage", self.face, data)
        apply_face_policy(face, self.cfg.face)
        return face, self._score(list(self.models), face["inputs"], face)

    async def _call(self, stage: str, handle: DeploymentHandle, *args):
        """A call to another deployment; one whose replica dies mid-call is sent again (every stage is idempotent),
        and Serve routes it to a live replica or holds it until the replacement is up."""
        for attempt in range(self.cfg.retries + 1):
            try:
                return await handle.remote(*args)
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
            latency_ms=(time.perf_counter() - start) * 1000)

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
                "face": face, "limits": dataclasses.asdict(self.cfg.limits)}
