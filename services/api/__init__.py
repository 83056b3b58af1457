"""The control plane: an HTTP API (FastAPI + uvicorn, OpenAPI docs at /docs) over the camera registry, the
streams, S3 and the indexer. Stateless, so replicas scale freely.

Modules:
- `settings`: ApiSettings (`[api]` in spectare.toml, `SPECTARE_API__*`).
- `models`: request and response bodies (camera bodies take their bounds from `CameraConfig`).
- `rules`: decisions without I/O: camera edits, time parameters, packet rates, camera states, scaling.
- `probes`: what /stats measures (NATS, S3, indexer, leases, packets, consumer lag), each bounded in time.
- `middleware`: request metrics and the request body limit (plain ASGI).
- `app`: routes, token checks, error answers.
- `service`: the process (`python -m spectare.api`).

Tokens live in `spectare.core.tokens` (the CLI creates them too).
"""
