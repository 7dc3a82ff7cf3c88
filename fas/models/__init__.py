"""Pieces every method's model shares: architecture configs by name, pretrained weights resolved apart from the
architecture (``weights``), small layers (``layers``). Model files know nothing of ranks, devices or Ray."""

from __future__ import annotations

import json
from pathlib import Path

MODEL_CONFIG_DIR = Path(__file__).resolve().parent.parent / "model_configs"


def read_model_config(name: str, family: str, prefixes: tuple[str, ...]) -> dict:
    """An architecture config by name (``pdle-tiny`` -> fas/model_configs/pdle-tiny.json) or a path to a JSON file;
    an unknown name lists the ``family`` configs (file names starting with one of ``prefixes``)."""
    path = Path(name) if Path(name).is_file() else MODEL_CONFIG_DIR / f"{name}.json"
    if not path.is_file():
        known = sorted(p.stem for p in MODEL_CONFIG_DIR.glob("*.json") if p.stem.startswith(prefixes))
        raise ValueError(f"unknown {family} model config {name!r}; known: {known}, or a path to a JSON file")
    return json.loads(path.read_text())
