"""A model folder's ONNX export (``fas export --onnx``) behind the ``Predictor`` interface, run by onnxruntime.

The ``.onnx`` file holds the network from the preprocessed tensors to the predictor's outputs; its sidecar JSON
(the same name with ``.json``) holds what runs around it: the folder's meta (preprocessing, categories, inputs),
the evaluated threshold and, for AG-FAS, where the generator that makes the cues lives (it stays in PyTorch).
Preprocessing and cue decoding are the PyTorch predictors' own code, so both see the same numbers.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

ONNX_FORMAT = "fas-onnx/1"


def sidecar_path(onnx_file: str | Path) -> Path:
    return Path(onnx_file).with_suffix(".json")


def read_sidecar(onnx_file: str | Path) -> dict:
    """The export's sidecar; a clear error when the file or its sidecar is not one ``fas export`` wrote."""
    onnx_file, side = Path(onnx_file), sidecar_path(onnx_file)
    if not onnx_file.is_file():
        raise ValueError(f"{onnx_file}: no such ONNX file")
    if not side.is_file():
        raise ValueError(f"{onnx_file}: its sidecar {side} is missing; export with `fas export MODEL_DIR --onnx "
                         f"{onnx_file.name}`, which writes both")
    doc = json.loads(side.read_text())
    if doc.get("format") != ONNX_FORMAT:
        raise ValueError(f"{side}: format {doc.get('format')!r} is not {ONNX_FORMAT!r} (not written by fas export)")
    return doc


class OnnxPredictor:
    """``predict(images[, cues]) -> {"score", ...}`` as the folder's PyTorch predictor gives it, on CPU."""

    def __init__(self, onnx_file: str | Path, sidecar: dict, threads: int = 0):
        import onnxruntime as ort

        from fas.preprocess import Preprocess

        self.path, self.sidecar, self.meta = Path(onnx_file), sidecar, sidecar["meta"]
        self.inputs = tuple(sidecar["inputs"])
        self.categories = self.meta.get("categories")
        self.transform = Preprocess.from_meta(self.meta["preprocess"])
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])
        self.graph_inputs = [i.name for i in self.session.get_inputs()]
        self.outputs = [o.name for o in self.session.get_outputs()]

    @classmethod
    def load(cls, onnx_file: str | Path) -> "OnnxPredictor":
        return cls(onnx_file, read_sidecar(onnx_file))

    def feed(self, images, cues=None) -> dict[str, np.ndarray]:
        """The graph's inputs: the preprocessed frames and, for a graph that reads them, the decoded cues."""
        feed = {"image": self.transform(images).numpy()}
        if "cue" in self.graph_inputs:
            if cues is None:
                raise ValueError(f"{self.path} reads anomalous cues: pass them (the generator makes them)")
            from fas.methods.oanet.predictor import cue_tensor

            feed["cue"] = cue_tensor(cues, self.transform.image_size).numpy()
        return {name: feed[name] for name in self.graph_inputs}

    def predict(self, images, cues=None) -> dict[str, np.ndarray]:
        return dict(zip(self.outputs, self.session.run(self.outputs, self.feed(images, cues))))
