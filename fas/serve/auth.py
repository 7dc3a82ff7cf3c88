"""API keys for the liveness endpoint: who may call ``/v1/*``.

Keys come from a file of SHA-256 digests (``sha256:<hex>`` per line, ``#`` comments: a leaked file reveals no key)
and/or an environment variable of plain comma-separated keys (containers, secrets managers). A client presents its
key as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``; the key is hashed and compared with every stored
digest by ``hmac.compare_digest``, so the answer time says nothing about how much of a key was right. ``/healthz``,
the OpenAPI page (``/docs``, ``/openapi.json``: the contract of an open-source service is public, and a browser
cannot send a key when it opens a page) and the web page stay open; with no key configured everything is open.

``python -m fas.serve.auth`` makes a new key and prints it with its keys-file line; ``python -m fas.serve.auth -``
prints the line for a key read from stdin (a key on the command line would land in the shell history).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import ipaddress
import logging
import os
import re
import secrets
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from starlette.datastructures import Headers
from starlette.responses import JSONResponse

from fas.config import ConfigError
from fas.serve.config import AuthConfig
from fas.serve.validation import BadInput

log = logging.getLogger("ray.serve")
PREFIX = "sha256:"
LINE = re.compile(r"^sha256:([0-9a-fA-F]{64})$")
PROTECTED = "/v1"


class AuthError(BadInput):
    """401: no usable key was presented; the header tells the client which scheme to use."""

    def __init__(self, code: str, detail: str):
        super().__init__(401, code, detail)
        self.headers = {"WWW-Authenticate": "Bearer"}


def hash_key(key: str) -> str:
    """The keys-file line for ``key``."""
    return PREFIX + hashlib.sha256(key.encode()).hexdigest()


def read_keys_file(path: str | Path) -> list[bytes]:
    """The digests of a keys file; a line that is not a digest (a plain key pasted by mistake) is an error."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(f"auth.api_keys_file: {file} does not exist; `python -m fas.serve.auth` makes a key "
                          "and prints its line for the file")
    digests = []
    for number, raw in enumerate(file.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = LINE.match(line)
        if match is None:
            raise ConfigError(f"auth.api_keys_file: {file}:{number} is not 'sha256:<64 hex digits>'; "
                              "store hashes, never plain keys (`python -m fas.serve.auth -` hashes one)")
        digests.append(bytes.fromhex(match.group(1)))
    return digests


def env_keys(name: str, environ: Mapping[str, str] = os.environ) -> list[bytes]:
    return [hashlib.sha256(k.strip().encode()).digest() for k in environ.get(name, "").split(",") if k.strip()]


@dataclasses.dataclass(frozen=True)
class ApiKeys:
    """The accepted keys as SHA-256 digests; none = the API is open."""

    digests: tuple[bytes, ...] = ()

    @classmethod
    def load(cls, cfg: AuthConfig, environ: Mapping[str, str] = os.environ) -> ApiKeys:
        found = read_keys_file(cfg.api_keys_file) if cfg.api_keys_file else []
        return cls(tuple(found + env_keys(cfg.api_keys_env, environ)))

    @property
    def enabled(self) -> bool:
        return bool(self.digests)

    def check(self, headers: Mapping[str, str]) -> None:
        """Raise 401 (no key) or 403 (a key that is not ours); every digest is compared, match or not."""
        if not self.enabled:
            return
        digest = hashlib.sha256(presented_key(headers).encode()).digest()
        if not any([hmac.compare_digest(digest, d) for d in self.digests]):
            raise BadInput(403, "invalid_api_key", "the API key is not valid for this service")


def presented_key(headers: Mapping[str, str]) -> str:
    """The key of ``Authorization: Bearer <key>`` or else ``X-API-Key``."""
    authorization = headers.get("authorization")
    if authorization is not None:
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise AuthError("bad_authorization", "the Authorization header must be 'Bearer <API key>'")
        return key.strip()
    key = (headers.get("x-api-key") or "").strip()
    if not key:
        raise AuthError("missing_api_key", "this endpoint needs an API key: send 'Authorization: Bearer <key>' "
                                           "or 'X-API-Key: <key>'")
    return key


def route_path(scope: Mapping) -> str:
    """The path the app routes on: the request path less the application's route prefix (as Starlette does)."""
    path, root = scope["path"], scope.get("root_path", "")
    if root and path.startswith(root) and (path == root or path[len(root)] == "/"):
        return path[len(root):]
    return path


def needs_key(path: str) -> bool:
    return path == PROTECTED or path.startswith(PROTECTED + "/")


class RequireKey:
    """ASGI middleware: a request to ``/v1/*`` without a valid key is answered here, before any route runs."""

    def __init__(self, app, keys: Callable[[], ApiKeys]):
        self.app, self.keys = app, keys

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and needs_key(route_path(scope)):
            try:
                self.keys().check(Headers(scope=scope))
            except BadInput as exc:
                body = {"error": exc.code, "detail": exc.detail}
                return await JSONResponse(body, exc.status, headers=getattr(exc, "headers", None))(scope, receive, send)
        await self.app(scope, receive, send)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name other than localhost: reachable from elsewhere as far as we know
        return False


def warn_if_exposed(host: str | None, keys: ApiKeys, cfg: AuthConfig) -> bool:
    """A loud warning when the HTTP proxy listens beyond this machine and anyone may call the models."""
    if host is None or is_loopback(host) or keys.enabled:
        return False
    log.warning("SECURITY: the HTTP endpoint listens on %s (not loopback) and no API key is configured: anyone who "
                "can reach it may call /v1/*. Set auth.api_keys_file or the %s environment variable, or bind "
                "http_options.host to 127.0.0.1", host, cfg.api_keys_env)
    return True


def main(argv: list[str]) -> int:
    if argv == ["-"]:
        print(hash_key(sys.stdin.readline().strip()))
        return 0
    if argv:
        print("usage: python -m fas.serve.auth        # a new key and its keys-file line\n"
              "       python -m fas.serve.auth - <key  # the keys-file line of a key read from stdin", file=sys.stderr)
        return 2
    key = secrets.token_urlsafe(32)
    print(f"key:  {key}\nline: {hash_key(key)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
