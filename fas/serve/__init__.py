"""Serving the liveness models on Ray Serve behind one HTTP endpoint.

Graph (composed with DeploymentHandles): ``LivenessIngress`` (FastAPI: validation, the face stage in a worker
thread, the fusion rule + threshold; /v1/liveness, /healthz, /v1/models) -> ``Model_<name>`` (one per configured
model, dynamic batching; AG-FAS adds ``Generator_<name>``). The face stage becomes a ``FaceStage`` deployment of
its own when ``face.deployment`` is set. Built by ``fas.serve.app:build_app`` from ``serve/config.yaml``.
"""
