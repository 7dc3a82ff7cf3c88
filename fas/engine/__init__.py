"""The one engine every method trains with: ``train(cfg)``.

``config.py`` the engine config every method config nests; ``launch.py`` the ``TorchTrainer``; ``loop.py`` the
per-worker loop (epochs or steps, checkpoints, resume, validation, reports); ``backends.py`` DeepSpeed and DDP;
``data.py`` the Ray Datasets a run reads; ``validation.py`` source-side validation; ``bench.py`` throughput.
"""

from __future__ import annotations


def train(cfg, callbacks: list | None = None):
    """Train ``cfg``'s method; see ``fas.engine.launch.train``."""
    from fas.engine.launch import train as launch

    return launch(cfg, callbacks)
