"""Serving the liveness models on Ray Serve behind one HTTP endpoint.

Graph (composed with DeploymentHandles): ``LivenessIngress`` (FastAPI: validation, /v1/liveness, /healthz,
/v1/models) -> ``FaceStage`` (the data plane's detector and crop) -> ``Model_<name>`` (one per configured model,
dynamic batching) -> ``Combiner`` (fusion rule + threshold). Built by ``fas.serve.app:build_app`` from
``serve/config.yaml``.
"""
