"""The API's own settings: `[api]` in the config file, `SPECTARE_API__<FIELD>` in the environment (see
`spectare.core.config.SectionSettings`); NATS, S3 and the prefix come from the shared `Settings`."""

from pathlib import Path
from typing import Annotated

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from spectare.core.bus import SESSION_MAX_TTL_S
from spectare.core.config import SectionSettings

# The web UI's build (`make setup`: `cd web && npm ci && npm run build`), beside the package in a checkout.
DEFAULT_WEB_DIR = Path(__file__).resolve().parents[2] / "web" / "dist"


class ApiSettings(SectionSettings):
    model_config = SettingsConfigDict(env_prefix="SPECTARE_API__")

    @classmethod
    def section(cls) -> str:
        return "api"

    host: str = Field(default="127.0.0.1", description="address to listen on (0.0.0.0: every interface)")
    port: Annotated[int, Field(ge=1, le=65535)] = Field(default=8080, description="HTTP port")
    max_body_bytes: Annotated[int, Field(ge=1024, le=16 * 1024 * 1024)] = Field(
        default=64 * 1024, description="larger request bodies are refused with 413"
    )
    stale_after_s: Annotated[float, Field(gt=0, le=3600)] = Field(
        default=10.0, description="a camera counts as recording while its last packet is younger than this (and an "
        "ingest worker holds its lease); else as camera_away (a worker holds it) or orphaned (none does)"
    )
    rate_window_s: Annotated[float, Field(ge=1, le=60)] = Field(
        default=5.0, description="fps and bitrate in /stats are measured over this many recent seconds of packets"
    )
    stats_timeout_s: Annotated[float, Field(gt=0, le=60)] = Field(
        default=3.0, description="longest wait for one part of /stats (S3, the indexer, a stream scan)"
    )
    index_timeout_s: Annotated[float, Field(gt=0, le=600)] = Field(
        default=30.0, description="longest wait for the indexer's answer to a search or footage request"
    )
    max_clip_s: Annotated[float, Field(gt=0, le=86_400)] = Field(
        default=3600.0, description="longest clip one request may export"
    )
    concurrent_clips: Annotated[int, Field(ge=1, le=64)] = Field(
        default=2, description="clip exports running at once per replica; more wait their turn"
    )
    clip_expiry_s: Annotated[int, Field(ge=60, le=7 * 86_400)] = Field(
        default=86_400, description="lifetime of the presigned URL of an exported clip (S3 allows at most 7 days)"
    )
    sse_ping_s: Annotated[float, Field(gt=0, le=300)] = Field(
        default=15.0, description="a comment line is sent on an idle detection stream this often (keeps proxies "
        "from closing it)"
    )
    sse_max_s: Annotated[float, Field(gt=0, le=86_400)] = Field(
        default=3600.0, description="a detection stream is closed after this long; browsers reconnect by themselves"
    )
    sse_buffer: Annotated[int, Field(ge=1, le=100_000)] = Field(
        default=1000, description="detections queued for one slow stream client before the oldest are dropped"
    )
    max_cameras_per_worker: Annotated[int, Field(ge=1, le=1000)] | None = Field(
        default=None, description="ingest capacity behind the scaling signal; default: ingest's own max_cameras "
        "([ingest] in the same config)"
    )
    # Browser login (`login.py`, `auth.py`): a session cookie made from an API token.
    session_ttl_s: Annotated[float, Field(ge=1, le=SESSION_MAX_TTL_S)] = Field(
        default=12 * 3600.0, description="a browser session made by POST /auth/login ends this long after it began "
        "(at most 7 days)"
    )
    cookie_secure: bool = Field(
        default=False, description="mark the session cookie Secure on every login, for an API behind a TLS-ending "
        "proxy (it is Secure anyway when the request came over https, or public_origin is https)"
    )
    public_origin: str | None = Field(
        default=None, pattern=r"^https?://[^/?#@\s]+$", description="scheme://host[:port] browsers reach the API at "
        "behind a proxy; a change made with the session cookie must come from it (or from the request's own origin)"
    )
    # Live video over WebSocket (`live.py`, `livehub.py`).
    live_first_keyframe_timeout_s: Annotated[float, Field(gt=0, le=300)] = Field(
        default=10.0, description="a live viewer that gets no keyframe this long after connecting is closed with "
        "4408 (the camera is not publishing)"
    )
    live_queue_frames: Annotated[int, Field(ge=1, le=10_000)] = Field(
        default=150, description="frames queued for one live viewer before it is moved forward to the next keyframe"
    )
    live_queue_bytes: Annotated[int, Field(ge=64 * 1024, le=256 * 1024 * 1024)] = Field(
        default=8 * 1024 * 1024, description="bytes queued for one live viewer before it is moved forward to the next "
        "keyframe"
    )
    live_send_timeout_s: Annotated[float, Field(gt=0, le=300)] = Field(
        default=10.0, description="a live viewer that takes no data for this long is dropped"
    )
    live_socket_send_buffer_bytes: Annotated[int, Field(ge=16 * 1024, le=16 * 1024 * 1024)] = Field(
        default=128 * 1024, description="kernel send buffer of a WebSocket (Linux doubles it): what a stalled viewer "
        "can hide from its queue limits; larger for high bitrates over long round trips"
    )
    live_linger_s: Annotated[float, Field(ge=0, le=600)] = Field(
        default=5.0, description="a camera's live source is stopped this long after its last viewer leaves (a viewer "
        "who comes back at once finds it running)"
    )
    # Recorded playback as HLS (`media.py`, `playlists.py`).
    playlist_max_s: Annotated[float, Field(ge=60, le=86_400)] = Field(
        default=3600.0, description="longest range one HLS playlist covers (a longer one is refused: play it window "
        "by window, /cameras/byname/{name}/vod/windows); also the length of those windows, at most an hour"
    )
    # The web UI (`webui.py`) and what its pages poll (`stills.py`, `timeline.py`).
    web_dir: Path = Field(
        default=DEFAULT_WEB_DIR, description="the built web UI served at / (index.html and assets/); default: web/dist "
        "of this checkout, which `make setup` builds"
    )
    snapshot_cache_cameras: Annotated[int, Field(ge=1, le=100_000)] = Field(
        default=256, description="cameras whose last snapshot.jpg is kept in memory, so that every viewer polling a "
        "camera costs one JPEG encode per keyframe (one JPEG each, ~100-400 KB at 1080p)"
    )
    timeline_max_spans: Annotated[int, Field(ge=10, le=100_000)] = Field(
        default=5000, description="most recorded spans (and gaps) in one timeline answer; past it the answer is "
        "truncated (ask with a larger join_s)"
    )
