"""``fas export MODEL_DIR --onnx OUT.onnx``: a model folder's network as ONNX, for runtimes without PyTorch.

The graph is the predictor's own ``model.predict`` traced from the preprocessed tensors (``image``, and ``cue``
for OA-Net) to every output it gives (CLIPC8: the 8 class probabilities, the top category and P(real), its frozen
text features a constant of the graph; PDLE: the score and the distribution over liveness levels; OA-Net: the
score), with a dynamic batch axis. Preprocessing, the threshold and AG-FAS's generator stay outside: the sidecar
JSON beside the file records them (``fas.onnx_predictor``).

Exporter: TorchScript (``dynamo=False``). torch 2.14's default dynamo exporter needs ``onnxscript``, which this
project does not install; the TorchScript one handles these models (ViT attention, MultiheadAttention, open_clip).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from fas.onnx_predictor import ONNX_FORMAT, sidecar_path

EXPORTABLE = ("clipc8", "pdle", "oanet")  # methods whose predictor is one network from tensors to outputs
OPSET = 17


@dataclasses.dataclass
class ExportConfig:
    model: str = ""  # the model folder
    onnx: str = ""  # the .onnx file to write (its sidecar: the same name with .json)
    opset: int = OPSET
    batch: int = 2  # rows of the example batch the graph is traced with (the batch axis stays dynamic)


class PredictGraph(torch.nn.Module):
    """``model.predict(*inputs)``'s dict as a tuple in ``keys`` order: what the exporter traces."""

    def __init__(self, model: torch.nn.Module, keys: tuple[str, ...]):
        super().__init__()
        self.model, self.keys = model, keys

    def forward(self, *inputs):
        out = self.model.predict(*inputs)
        return tuple(out[k] for k in self.keys)


def example_inputs(predictor, batch: int) -> tuple[torch.Tensor, ...]:
    """Random tensors of the shapes the predictor feeds its model: the image after preprocessing (centre crop
    included) and, for a model that reads cues, the cue at the image size."""
    pre = predictor.transform
    side = pre.crop_size or pre.image_size
    generator = torch.Generator().manual_seed(0)
    tensors = {"image": torch.randn(batch, 3, side, side, generator=generator),
               "cue": torch.randn(batch, 3, pre.image_size, pre.image_size, generator=generator)}
    return tuple(tensors[name] for name in predictor.inputs)


def export_onnx(cfg: ExportConfig) -> dict:
    """Write ``cfg.onnx`` and its sidecar; returns the sidecar."""
    from fas.methods import load_predictor, read_model_meta

    meta = read_model_meta(cfg.model)
    if meta["method"] not in EXPORTABLE:
        raise ValueError(f"{cfg.model}: method {meta['method']!r} has no ONNX export; exportable: {list(EXPORTABLE)}")
    if not cfg.onnx.endswith(".onnx"):
        raise ValueError(f"--onnx {cfg.onnx!r}: the file name must end with .onnx (its sidecar takes .json)")
    predictor = load_predictor(cfg.model, "cpu")
    inputs = example_inputs(predictor, cfg.batch)
    keys = tuple(predictor.model.predict(*inputs))
    names = list(predictor.inputs)
    out = Path(cfg.onnx)
    out.parent.mkdir(parents=True, exist_ok=True)
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # inference's fused attention kernel has no ONNX form
    try:
        torch.onnx.export(PredictGraph(predictor.model, keys).eval(), inputs, str(out), dynamo=False,
                          input_names=names, output_names=list(keys), opset_version=cfg.opset,
                          dynamic_axes={n: {0: "batch"} for n in names + list(keys)})
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    sidecar = make_sidecar(Path(cfg.model), meta, names, keys)
    sidecar_path(out).write_text(json.dumps(sidecar, indent=2))
    return sidecar


def make_sidecar(folder: Path, meta: dict, inputs: list[str], outputs: tuple[str, ...]) -> dict:
    """What runs around the graph: the folder's meta, its evaluated threshold, AG-FAS's generator folder."""
    from fas.serve.config import METRICS_FILE

    metrics_file = folder / METRICS_FILE
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    generator = folder.resolve() / meta.get("generator", "generator") if "cue" in inputs else None
    return {"format": ONNX_FORMAT, "source": str(folder.resolve()), "meta": meta, "inputs": inputs,
            "outputs": list(outputs), "threshold": metrics.get("threshold"),
            "threshold_rule": metrics.get("threshold_rule"), "generator": str(generator) if generator else None}


def format_export(cfg: ExportConfig, sidecar: dict) -> str:
    threshold = sidecar["threshold"]
    return (f"{cfg.onnx}: {sidecar['meta']['method']} graph, inputs {sidecar['inputs']} -> outputs "
            f"{sidecar['outputs']} (dynamic batch); sidecar {sidecar_path(cfg.onnx)} (threshold "
            f"{'none recorded' if threshold is None else threshold})")
