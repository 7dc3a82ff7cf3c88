"""Source-side validation during training: AUC and HTER on the protocol's threshold rows (never the test domain).

Rank 0 scores the unsplit ``val`` stream with the method's own predictor over the live module (the inference
path evaluation and Serve use) at every checkpoint, and the numbers go into that checkpoint's report, which is
what Ray Tune sweeps select on. HTER is taken at the validation set's own EER threshold, as a threshold-free
summary; the held-out evaluation with a dev-selected threshold stays the job of ``jobs/evaluate.py``.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import torch


@torch.no_grad()
def validate(predictor, batches: Iterable[dict]) -> dict:
    """``{"val_auc", "val_hter"}`` of ``predictor`` over ``batches`` ({} when they hold one class only)."""
    from fas.eval.metrics import auc, eer, hter

    scores, labels = [], []
    for batch in batches:
        scores.append(np.asarray(predictor.predict(*[batch[c] for c in predictor.inputs])["score"], dtype=float))
        labels.append(np.asarray(batch["label"], dtype=int))
    if not scores:
        return {}
    scores, labels = np.concatenate(scores), np.concatenate(labels)
    if len(set(labels.tolist())) < 2:
        return {}
    point = eer(scores, labels)
    return {"val_auc": auc(scores, labels), "val_hter": hter(scores, labels, point.threshold)}
