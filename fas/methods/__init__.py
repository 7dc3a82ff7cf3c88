"""The method registry: one folder per method (its model, task, predictor and configs), one record each.

Everything above the methods (CLI, quickstart, ``jobs/``, evaluation, Tune, Serve) looks a method up here by name
and never branches on it. The built-in records are imported on first lookup; a method outside the package (a
plugin, a test) calls ``register`` and its model folders record the module that registered it, so evaluation
actors and Serve replicas in other processes find it again.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

from fas.integrity import verify_folder
from fas.methods.base import MODEL_CONFIG_FILE, WEIGHTS_FILE, Method, resolve

BUILTIN = ("fas.methods.clipc8", "fas.methods.pdle", "fas.methods.dfg", "fas.methods.oanet", "fas.methods.ssan",
           "fas.methods.safas", "fas.methods.memae", "fas.methods.deepsvdd")
_REGISTRY: dict[str, Method] = {}
_ALIASES: dict[str, str] = {}


def register(method: Method) -> Method:
    """Add ``method`` (and its aliases) to the registry; returns it with ``module`` set to the caller's module."""
    import dataclasses

    if not method.module:
        method = dataclasses.replace(method, module=sys._getframe(1).f_globals["__name__"])
    _REGISTRY[method.name] = method
    _ALIASES.update({alias: method.name for alias in method.aliases})
    return method


def _load_builtins() -> None:
    for module in BUILTIN:
        importlib.import_module(module)


def get_method(name: str, module: str | None = None) -> Method:
    """The record registered as ``name`` (or an alias); ``module`` is imported first when it is not known yet."""
    _load_builtins()
    if module and name not in _REGISTRY and name not in _ALIASES:
        importlib.import_module(module)
    name = _ALIASES.get(name, name)
    if name not in _REGISTRY:
        raise ValueError(f"unknown method {name!r}; known: {method_names()}")
    return _REGISTRY[name]


def method_names(with_aliases: bool = True) -> list[str]:
    _load_builtins()
    return sorted(set(_REGISTRY) | (set(_ALIASES) if with_aliases else set()))


def method_of_config(cfg) -> Method:
    """The record whose config class ``cfg`` is."""
    _load_builtins()
    for method in _REGISTRY.values():
        if type(cfg) is method.config:
            return method
    raise ValueError(f"{type(cfg).__name__} is the config of no registered method")


def read_model_meta(folder: str | Path) -> dict:
    """``model_config.json`` of a portable model folder, its files checked against ``checksums.json``; a clear
    error when ``folder`` is not one or a file changed after it was written (``fas.integrity.IntegrityError``)."""
    folder = Path(folder)
    meta_file = folder / MODEL_CONFIG_FILE
    if not meta_file.is_file() or not (folder / WEIGHTS_FILE).is_file():
        raise ValueError(f"{folder} is not a model folder written by fas training "
                         f"(expected {MODEL_CONFIG_FILE} and {WEIGHTS_FILE})")
    verify_folder(folder, (WEIGHTS_FILE, MODEL_CONFIG_FILE))  # a truncated or tampered file stops here, named
    meta = json.loads(meta_file.read_text())
    method = get_method(str(meta.get("method")), meta.get("method_module"))
    if method.predictor is None:
        raise ValueError(f"{meta_file}: method {method.name!r} gives no liveness score (it has no predictor)")
    return meta


def model_inputs(meta: dict) -> tuple[str, ...]:
    """The cache columns the folder's predictor reads, in order (e.g. OA-Net: image, cue)."""
    return tuple(get_method(meta["method"], meta.get("method_module")).inputs(meta))


def load_predictor(folder: str | Path, device: str | None = None):
    """The folder's predictor on ``device`` (default: a GPU when this process has one, else CPU); an ``.onnx``
    file written by ``fas export`` gives its onnxruntime predictor (CPU) with the same interface."""
    import torch

    if str(folder).endswith(".onnx"):
        from fas.onnx_predictor import OnnxPredictor

        return OnnxPredictor.load(folder)
    meta = read_model_meta(folder)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return resolve(get_method(meta["method"], meta.get("method_module")).predictor).load(Path(folder), meta, device)
