"""The control plane: an HTTP API (FastAPI + uvicorn, OpenAPI docs at /docs) over the camera registry, the
streams, S3 and the indexer. Stateless, so replicas scale freely.

Modules:
- `settings`: ApiSettings (`[api]` in spectare.toml, `SPECTARE_API__*`).
- `models`: request and response bodies (camera bodies take their bounds from `CameraConfig`).
- `rules`: decisions without I/O: camera edits, time parameters, packet rates, camera states, scaling.
- `probes`: what /stats measures (NATS, S3, indexer, leases, packets, consumer lag), each bounded in time.
- `middleware`: request metrics and the request body limit (plain ASGI).
- `state`: ApiState (settings, NATS, registry, tokens, leases) and the dependencies routers reach it and the
  metrics through (`State`, `Metrics`: `request.app.state`, never closures).
- `auth`: who may call what, by bearer token or browser session cookie (with the Origin rule): `Read` and
  `Admin` (a route's scope is one parameter), `authorize_websocket` for WebSocket routes.
- `errors`: ApiError, the error responses the OpenAPI document promises, the exception handlers.
- `params`: parameters several routers take (camera name, times, a time range).
- Routers, one per OpenAPI tag, each an `APIRouter` named `router`: `system` (/healthz, /tokens/me, /metrics,
  /stats and the scaling gauges), `cameras` (the registry), `footage` (chunks, clips, snapshots), `search`
  (/search, tagged footage), `detections` (server-sent events), `login` (/auth/login,
  /auth/logout; tagged auth), `live` (WS /cameras/byname/{name}/live, tagged media: live fMP4 over a WebSocket,
  its protocol in its docstring), `media` (recorded footage as HLS: `vod.m3u8`, its segments passed through from
  S3, `vod/windows`). A new one is a module like these plus one `include_router` line in `app`.
- `playlists`: HLS playlists without I/O: the range of a request, the playlist text of chunks and gaps, windows.
- `retime`: a segment's fragments moved to its place in its playlist (box bytes in, box bytes out).
- `livehub`: the live hub, one source per camera per process shared by its viewers: an ordered consumer from
  the latest keyframe, the current GOP kept for later viewers, bounded per-viewer queues that skip forward.
- `app`: `create_app` assembles them: middleware, exception handlers, routers.
- `service`: the process (`python -m spectare.api`).

Tokens live in `spectare.core.tokens` (the CLI creates them too), browser sessions in `spectare.core.sessions`.
"""
