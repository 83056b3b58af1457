"""The API's decisions without I/O (table-driven): camera edits, time parameters, packet rates, camera states,
the scaling signal, tokens, session cookies and origins, request models, settings."""

import math

import pytest
from pydantic import ValidationError

from spectare.api.auth import close_reason, origin_of, same_origin
from spectare.api.models import CameraBody, CameraCreate, CameraPatch, camera_view
from spectare.api.rules import (
    PacketSample,
    camera_state,
    edited,
    keep_password,
    null_fields,
    parse_when,
    rate,
    time_range,
    workers_needed,
)
from spectare.api.settings import ApiSettings
from spectare.core.errors import ConfigError, SpectareError
from spectare.core.sessions import cookie_hash, new_session_cookie, session_id_of
from spectare.core.tokens import allows, matches, new_token, token_hash, token_id_of
from spectare.schemas import ApiSession, ApiToken, CameraConfig, PacketsId, parse_packets_id

NOW = 1_800_000_000.0
STORED = "rtsp://admin:secret@192.0.2.7:554/stream1"


@pytest.mark.parametrize("incoming, stored, kept", [
    ("rtsp://admin:***@192.0.2.7:554/stream1", STORED, STORED),  # read, then sent back: the password stays
    ("rtsp://admin:new@192.0.2.7:554/stream1", STORED, "rtsp://admin:new@192.0.2.7:554/stream1"),
    ("rtsp://admin:***@192.0.2.8:554/stream1", STORED, "rtsp://admin:***@192.0.2.8:554/stream1"),  # another host
    (STORED, STORED, STORED),
    ("rtsp://admin:***@192.0.2.7:554/stream1", None, "rtsp://admin:***@192.0.2.7:554/stream1"),
])
def test_keep_password_only_for_the_redacted_form_of_the_stored_url(incoming, stored, kept):
    assert keep_password(incoming, stored) == kept


def test_patch_merges_put_replaces_and_null_means_default():
    current = CameraConfig(name="porch", url=STORED, detect=False, labels=("car",), min_score=0.7, keep_days=3)
    patched = CameraConfig.create(**edited(current, "porch", {"min_score": None, "friendly_name": "Porch"}, False))
    assert (patched.url, patched.detect, patched.labels, patched.min_score, patched.keep_days, patched.friendly_name) \
        == (STORED, False, ("car",), None, 3, "Porch")
    body = CameraBody(url="rtsp://admin:***@192.0.2.7:554/stream1", segment_seconds=4).model_dump()
    replaced = CameraConfig.create(**edited(current, "porch", body, True))
    assert (replaced.url, replaced.detect, replaced.labels, replaced.keep_days, replaced.segment_seconds) == (
        STORED, True, None, None, 4)
    labelled = edited(current, "porch", {"labels": ["person", "Traffic light"]}, False)
    assert CameraConfig.create(**labelled).labels == ("person", "traffic_light")
    assert null_fields({"url": None, "labels": None, "detect": True}, {"labels", "min_score"}) == ["url"]


@pytest.mark.parametrize("text, expected", [
    ("1764230400", 1764230400.0),
    ("1764230400.25", 1764230400.25),
    ("2h", NOW - 7200),
    ("now", NOW),
    ("2026-11-27T00:00:00Z", 1795737600.0),
])
def test_times_are_unix_seconds_or_what_the_cli_takes(text, expected):
    assert parse_when(text, NOW, "start") == pytest.approx(expected)


@pytest.mark.parametrize("text, message", [
    ("next tuesday", "start: cannot read 'next tuesday' as a time"),
    ("", "start: cannot read '' as a time"),
    ("nan", "start: cannot read 'nan' as a time"),
    ("inf", "start: cannot read 'inf' as a time"),
    ("1e400", "start: cannot read '1e400' as a time"),
    ("99999999999999", "start: '99999999999999' is out of range (1970 to 3000)"),
    ("-5", "start: '-5' is out of range"),
])
def test_unreadable_or_absurd_times_are_refused_naming_the_parameter(text, message):
    with pytest.raises(SpectareError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        parse_when(text, NOW, "start")


def test_time_ranges_default_and_are_checked():
    assert time_range(None, None, NOW, 3600) == (NOW - 3600, NOW)
    assert time_range("2h", None, NOW, 3600) == (NOW - 7200, NOW)
    assert time_range(None, "1h", NOW, 600) == (NOW - 4200, NOW - 3600)
    with pytest.raises(SpectareError, match="^end must be after start$"):
        time_range("1h", "2h", NOW, 3600)
    with pytest.raises(SpectareError, match="at most 3600 s per request"):
        time_range("3h", "now", NOW, 0, 3600)


@pytest.mark.parametrize("msg_id, parsed", [
    ("cam1:1a-0:120", PacketsId("cam1", "1a-0", 120)),
    ("cam1:odd:session:7", PacketsId("cam1", "odd:session", 7)),
    ("cam1:s:x", None),
    ("cam1:7", None),
    ("", None),
    (None, None),
])
def test_packet_msg_ids_give_session_and_first_seq(msg_id, parsed):  # what the packet rates read
    assert parse_packets_id(msg_id) == parsed


def _groups(session: str, fps: float, per_group: int, groups: int, size: int, t0: float = NOW,
            first_seq: int = 0) -> list[PacketSample]:
    """Messages of `per_group` packets each, stored as each group completes."""
    return [PacketSample("cam", t0 + (i + 1) * per_group / fps, size, session, first_seq + i * per_group)
            for i in range(groups)]


def test_rate_counts_packets_between_first_seqs_and_bytes_between_messages():
    samples = _groups("s1", 15, 4, 19, 10_000)  # ~5 s of a 15 fps camera, 10 kB per group of 4 packets
    measured = rate(list(reversed(samples)))  # order does not matter
    assert measured.fps == pytest.approx(15)
    assert measured.bitrate_bps == pytest.approx(10_000 * 8 * 15 / 4)


def test_rate_uses_the_latest_session_and_needs_three_of_its_messages():
    old = _groups("s1", 30, 1, 10, 500)
    new = _groups("s2", 10, 2, 6, 2000, t0=old[-1].time + 1, first_seq=0)
    assert rate(old + new).fps == pytest.approx(10)
    assert rate(_groups("s1", 15, 4, 2, 100)).fps is None  # the second message only closes the first
    assert rate(_groups("s1", 15, 4, 3, 100)).fps == pytest.approx(15)
    assert rate([]).fps is None and rate([]).bitrate_bps is None
    anonymous = [PacketSample("cam", NOW + i, 1000, None, None) for i in range(3)]
    assert (rate(anonymous).fps, rate(anonymous).bitrate_bps) == (None, 1000 * 8)  # no Msg-Ids: bytes only


def _as_ingest_stores(fps: float, gop: int, group_max_s: float, seconds: float, packet_bytes: int = 3000,
                      read_interval_s: float = 0.1) -> list[PacketSample]:
    """Messages as ingest publishes a camera (services/ingest/camera.py): frames arrive in reads every
    read_interval_s; a keyframe sends the group before it, then travels alone; a group goes once its packets span
    group_max_s. Each is stored when sent, at the arrival of the packet that sent it."""
    stored: list[PacketSample] = []
    group: list[tuple[int, float]] = []  # (seq, capture time)

    def send(at: float) -> None:
        stored.append(PacketSample("cam", at + 0.002, packet_bytes * len(group), "s1", group[0][0]))
        group.clear()

    for seq in range(round(seconds * fps)):
        captured = seq / fps
        arrived = NOW + (math.floor(captured / read_interval_s) + 1) * read_interval_s
        keyframe = seq % gop == 0
        if keyframe and group:
            send(arrived)
        group.append((seq, captured))
        if keyframe or group[-1][1] - group[0][1] >= group_max_s:
            send(arrived)
    return stored


@pytest.mark.parametrize("fps, gop, group_max_s", [
    (15, 15, 1.0),  # the test camera: 1 s GOP, ingest's default groups
    (29.97, 60, 1.0),  # the demo camera (measured 36.8 fps before the Msg-Id pairing was fixed)
    (30, 30, 0.2),  # watched live: short groups
    (25, 250, 1.0),  # a 10 s GOP
    (10, 5, 1.0),  # keyframes more often than groups fill
])
def test_rate_is_right_wherever_the_window_falls(fps, gop, group_max_s):
    stored = _as_ingest_stores(fps, gop, group_max_s, seconds=40)
    window = 5.0
    # Arrival times come in reads every 0.1 s, over a span of 3-5 s (the window less a group at each end): a few
    # per cent either way is the method's own resolution; a group counted at the wrong end is 20% or more.
    for step in range(200):  # a /stats call every 0.13 s: windows start at every phase of the GOP and the groups
        now = NOW + 8 + step * 0.13
        seen = [s for s in stored if now - window <= s.time <= now]
        measured = rate(seen)
        assert measured.fps == pytest.approx(fps, rel=0.05), (now - NOW, measured)
        assert measured.bitrate_bps == pytest.approx(fps * 3000 * 8, rel=0.05), (now - NOW, measured)


@pytest.mark.parametrize("lease, age, state", [
    (True, 0.5, "recording"),
    (True, 9.9, "recording"),
    (True, 10.0, "camera_away"),  # stale: the worker cannot read the camera
    (True, None, "camera_away"),  # nothing ever arrived
    (False, 0.5, "orphaned"),  # packets without a lease: a worker just died
    (False, None, "orphaned"),
])
def test_a_camera_records_with_a_lease_and_fresh_packets_and_is_away_without_packets(lease, age, state):
    assert camera_state(lease, age, 10.0) == state


@pytest.mark.parametrize("cameras, per_worker, needed", [
    (0, 64, 0), (1, 64, 1), (64, 64, 1), (65, 64, 2), (3, 2, 2), (1000, 1, 1000),
])
def test_ingest_workers_needed(cameras, per_worker, needed):
    assert workers_needed(cameras, per_worker) == needed


def test_tokens_are_random_checked_by_hash_and_scoped():
    token_id, token = new_token()
    assert token.startswith(f"spt_{token_id}_") and len(token) == 4 + 12 + 1 + 43
    assert token_id_of(token) == token_id and new_token()[1] != token
    for bad in ("", "spt_", token[:-20], token.replace("spt_", "xyz_"), "spt_ABCDEF012345_" + "x" * 43):
        assert token_id_of(bad) is None
    record = ApiToken(id=token_id, scope="read", sha256=token_hash(token), created_at=NOW)
    assert token not in record.encode().decode("latin-1"), "only the hash is stored"
    assert matches(record, token) and not matches(record, token[:-1] + ("A" if token[-1] != "A" else "B"))
    assert allows("admin", "admin") and allows("admin", "read") and allows("read", "read")
    assert not allows("read", "admin")


def test_camera_bodies_are_strict_and_name_unknown_fields():
    with pytest.raises(ValidationError) as refused:
        CameraCreate.model_validate({"name": "porch", "url": "rtsp://h/x", "colour": "red"})
    assert refused.value.errors()[0]["type"] == "extra_forbidden"
    for bad in ({"segment_seconds": "10"}, {"segment_seconds": 0}, {"detect": "yes"}, {"min_score": 2},
                {"max_gb": math.inf}, {"labels": ["no/slash"]}, {"url": "ftp://h/x"}, {"name": "Porch"}):
        with pytest.raises(ValidationError):
            CameraCreate.model_validate({"name": "porch", "url": "rtsp://h/x", **bad})
    assert CameraPatch.model_validate({"min_score": None}).model_fields_set == {"min_score"}
    view = camera_view(CameraConfig(name="porch", url=STORED, labels=("person",)))
    assert view["url"] == "rtsp://admin:***@192.0.2.7:554/stream1" and view["labels"] == ["person"]


def test_api_settings_are_bounded(monkeypatch):
    monkeypatch.setenv("SPECTARE_API__PORT", "0")
    with pytest.raises(ConfigError, match=r"^invalid settings: api\.port: Input should be greater than or equal to 1"):
        ApiSettings.load()
    monkeypatch.setenv("SPECTARE_API__PORT", "9000")
    monkeypatch.setenv("SPECTARE_API__STALE_AFTER_S", "30")
    loaded = ApiSettings.load()
    assert (loaded.port, loaded.stale_after_s, loaded.max_body_bytes) == (9000, 30.0, 65536)


def test_session_cookies_are_random_and_only_their_hash_is_stored():
    session_id, cookie = new_session_cookie()
    assert cookie.startswith(f"sps_{session_id}_") and len(cookie) == 4 + 16 + 1 + 43
    assert session_id_of(cookie) == session_id and new_session_cookie()[1] != cookie
    for bad in ("", "sps_", cookie[:-20], cookie.replace("sps_", "spt_"), "sps_0123456789ABCDEF_" + "x" * 43,
                "spt_0123456789ab_" + "x" * 43):
        assert session_id_of(bad) is None
    record = ApiSession(id=session_id, token_id="0123456789ab", scope="read", sha256=cookie_hash(cookie),
                        created_at=NOW, expires_at=NOW + 60)
    assert cookie.split("_", 2)[2] not in record.encode().decode("latin-1"), "only the hash is stored"


@pytest.mark.parametrize("url, origin", [
    ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
    ("HTTP://NVR.Example:80", "http://nvr.example"),  # case and the default port do not matter
    ("https://nvr.example:443/path?q=1", "https://nvr.example"),
    ("https://nvr.example:8443", "https://nvr.example:8443"),
    ("http://[::1]:8080", "http://[::1]:8080"),
    ("null", None),  # sandboxed frames and file:// pages
    ("ws://nvr.example", None),
    ("http://", None),
    ("http://nvr.example:99999", None),
    ("", None),
    (None, None),
])
def test_origin_of(url, origin):
    assert origin_of(url) == origin


@pytest.mark.parametrize("origin, own, public, same", [
    ("http://127.0.0.1:8080", "http://127.0.0.1:8080", None, True),
    ("http://127.0.0.1:8080", "http://127.0.0.1:8081", None, False),
    ("https://127.0.0.1:8080", "http://127.0.0.1:8080", None, False),  # another scheme is another origin
    ("http://127.0.0.1:8080.evil.example", "http://127.0.0.1:8080", None, False),
    ("https://nvr.example", "http://10.0.0.5:8080", "https://nvr.example:443", True),  # behind a proxy
    ("http://10.0.0.5:8080", "http://10.0.0.5:8080", "https://nvr.example", True),
    ("https://evil.example", "http://10.0.0.5:8080", "https://nvr.example", False),
    ("null", "http://127.0.0.1:8080", None, False),
    (None, "http://127.0.0.1:8080", None, False),
    (None, None, None, False),
])
def test_same_origin(origin, own, public, same):
    assert same_origin(origin, own, public) is same


@pytest.mark.parametrize("detail, reason", [
    ("missing API token: send 'Authorization: Bearer <token>'", "missing API token"),
    ("unknown or revoked API token", "unknown or revoked API token"),
    ("x" * 200, "x" * 123),  # a close reason holds at most 123 bytes
    ("é" * 100, "é" * 61),  # cut on a character, not inside one
])
def test_close_reason(detail, reason):
    assert close_reason(detail) == reason


@pytest.mark.parametrize("env, value, ok", [
    ("SESSION_TTL_S", "0", False),
    ("SESSION_TTL_S", str(7 * 86_400 + 1), False),  # past what the sessions bucket keeps
    ("SESSION_TTL_S", "3600", True),
    ("PUBLIC_ORIGIN", "https://nvr.example:8443", True),
    ("PUBLIC_ORIGIN", "https://nvr.example/spectare", False),  # an origin has no path
    ("PUBLIC_ORIGIN", "nvr.example", False),
])
def test_session_settings_are_bounded(monkeypatch, env, value, ok):
    monkeypatch.setenv(f"SPECTARE_API__{env}", value)
    if ok:
        ApiSettings.load()
    else:
        with pytest.raises(ConfigError, match=f"api.{env.lower()}"):
            ApiSettings.load()
