"""Explanations of one answer as images: what a user looks at to see why a model decided as it did.

``explain`` takes one row of a predictor's output (as ``fas.serve.pipeline.present`` gives it) and the crop the
model scored, and returns named PNGs plus a JSON block: CLIPC8's 8 class probabilities as a bar chart, PDLE's
distribution over its liveness levels, AG-FAS's anomalous cue as a heat-map over the crop and the generator's
reconstruction. ``fas predict --explain DIR`` writes them as files; Serve can send them base64-encoded.
"""

from __future__ import annotations

import hashlib
import io

import numpy as np

HEATMAP = "inferno"


def _figure_png(draw, size=(4.8, 3.2)) -> bytes:
    """A matplotlib figure drawn by ``draw(ax)`` as PNG bytes (Agg canvas, no pyplot state: thread-safe)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=100)
    FigureCanvasAgg(fig)
    draw(fig.add_subplot())
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def bar_chart(labels: list[str], values: list[float], title: str, highlight: int | None = None) -> bytes:
    """Horizontal bars in [0, 1], one per label; ``highlight`` (the chosen one) in another colour."""
    colours = ["tab:orange" if i == highlight else "tab:blue" for i in range(len(values))]

    def draw(ax):
        ax.barh(range(len(values)), values, color=colours)
        ax.set_yticks(range(len(values)), labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_title(title, fontsize=9)
        for i, v in enumerate(values):
            ax.text(min(v + 0.01, 0.85), i, f"{v:.3f}", va="center", fontsize=7)

    return _figure_png(draw, (4.8, 0.35 * len(values) + 1.0))


def class_probabilities(row: dict) -> tuple[bytes, dict]:
    """CLIPC8: the probability of every class text, the predicted one highlighted."""
    names, values = list(row["probs"]), [float(v) for v in row["probs"].values()]
    chosen = names.index(row["category"]) if row.get("category") in names else int(np.argmax(values))
    png = bar_chart(names, values, f"class probabilities (score = P(real) = {row['score']:.4f})", chosen)
    return png, {"probs": dict(zip(names, values)), "category": names[chosen]}


def level_distribution(row: dict) -> tuple[bytes, dict]:
    """PDLE: the softmax over the K+1 liveness levels c_i = i/K, whose expectation is the score."""
    levels = [float(v) for v in row["levels"]]
    values = np.linspace(0.0, 1.0, len(levels))
    labels = [f"c={v:.2f}" for v in values]
    png = bar_chart(labels, levels, f"liveness levels (score = expectation = {row['score']:.4f})",
                    int(np.argmax(levels)))
    return png, {"levels": dict(zip(labels, levels))}


def cue_heatmap(cue: np.ndarray, crop_rgb: np.ndarray, alpha: float = 0.55) -> bytes:
    """AG-FAS's cue (3, S, S: the standardised residual) as per-pixel magnitude, coloured and laid over the crop
    the model scored (resized to the cue's side)."""
    import cv2
    from matplotlib import colormaps

    from fas.data.faces import encode_image

    magnitude = np.abs(np.asarray(cue, np.float32)).mean(axis=0)
    scaled = magnitude / max(float(magnitude.max()), 1e-6)
    heat = (colormaps[HEATMAP](scaled)[..., :3] * 255).astype(np.float32)
    side = heat.shape[0]
    base = cv2.resize(crop_rgb, (side, side), interpolation=cv2.INTER_AREA).astype(np.float32)
    return encode_image(np.clip(alpha * heat + (1 - alpha) * base, 0, 255).astype(np.uint8), "png")


def signed_image(x: np.ndarray) -> np.ndarray:
    """(3, S, S) in [-1, 1] (the generator's range) -> RGB uint8 (S, S, 3)."""
    return np.clip((np.asarray(x, np.float32).transpose(1, 2, 0) + 1) * 127.5, 0, 255).round().astype(np.uint8)


def explain(row: dict, meta: dict, crop: bytes, cue: np.ndarray | None = None,
            reconstruction: np.ndarray | None = None) -> dict:
    """Named explanations of one answer: PNG bytes (``probs``, ``levels``, ``cue``, ``reconstruction``,
    ``crop``) and ``explanation`` (a JSON-able dict of the numbers drawn). ``row``: one row of the predictor's
    output as ``present`` gives it; ``meta``: the model folder's; ``crop``: the encoded image the model scored;
    ``cue``/``reconstruction``: AG-FAS's (3, S, S) arrays for that crop."""
    from fas.data.faces import decode_image, encode_image

    crop_rgb = decode_image(crop)
    out: dict = {"crop": encode_image(crop_rgb, "png")}
    info: dict = {"method": meta.get("method"), "score": float(row["score"])}
    if "probs" in row:
        out["probs"], numbers = class_probabilities(row)
        info.update(numbers)
    if "levels" in row:
        out["levels"], numbers = level_distribution(row)
        info.update(numbers)
    if cue is not None:
        out["cue"] = cue_heatmap(cue, crop_rgb)
        info["cue_rms"] = float(np.sqrt(np.mean(np.square(cue))))
    if reconstruction is not None:
        out["reconstruction"] = encode_image(signed_image(reconstruction), "png")
    out["explanation"] = info
    return out


def reconstructions(cue_generator, crops: list[bytes], keys: list[str] | None = None) -> np.ndarray:
    """The generator's reconstructions (B, 3, S, S in [-1, 1]) of ``crops``, made as ``fas.cues.CueGenerator``
    makes them for the cues (same preprocessing, same per-crop noise seeds), so the picture is the one the cue
    came from. Diffusion generators (DFG) take a noise step and seeds; one-pass generators only the frames.
    ``keys``: the noise keys (a cue cache's frame ids); default: Serve's, a hash of each crop's bytes."""
    import torch

    maker = cue_generator.maker
    x = maker.transform(crops).to(maker.device)
    with torch.no_grad():
        if hasattr(maker, "generator"):
            from fas.methods.dfg.model import noise_seeds

            keys = keys or [hashlib.sha256(b).hexdigest()[:16] for b in crops]  # CueGenerator's key of a crop
            recon = maker.generator.reconstruct(x, maker.noise_step, maker.ddim_steps, noise_seeds(maker.seed, keys))
        else:
            recon = maker.reconstruct(x)
    return recon.float().cpu().numpy()
