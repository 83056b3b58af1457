"""Why a camera does not record: ingest's `CameraStatus` records (failure kinds, state transitions, which record a
reader shows), and end to end: a camera at a closed port and one with a wrong password, as /stats and
`spectare camera list` show them, then both recovering; no password anywhere on the way."""

import errno
import json
import socket

import av
import httpx
import pytest

from spectare.core.bus import connect, ensure_topology
from spectare.core.camerastatus import current_status
from spectare.core.registry import CameraRegistry
from spectare.core.store import ensure_bucket
from spectare.ingest.failures import OpenFailed, failure_kind, ffmpeg_error_kind, os_error_text, rtsp_status_kind
from spectare.ingest.media import SourceEnded
from spectare.ingest.publisher import PublishFailed
from spectare.ingest.rtp import UnsupportedStream
from spectare.ingest.status import transition
from spectare.local.process import free_ports
from spectare.local.testcam import RtspTestCamera
from spectare.schemas import CameraConfig, CameraStatus

from .helpers import ServiceProcess, api_answering, eventually, run_cli, settings_for

T0 = 1_800_000_000.0
PASSWORD = "Door-s3cret-91"  # the cameras' password: never in a record, an answer or the CLI's output
WRONG = "not-The-pass-17"


# -- failure kinds -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("error, kind", [
    (OpenFailed("cannot open rtsp://cam/: connection refused", "refused"), "refused"),  # the kind said at the spot
    (OpenFailed("cannot open rtsp://cam/: it has no video track", "no_video"), "no_video"),
    (SourceEnded("the camera closed the connection"), "ended"),
    (SourceEnded("no data for 5s"), "ended"),
    (UnsupportedStream("video codec mjpeg"), "unsupported"),
    (ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed ('127.0.0.1', 9)"), "refused"),
    (OSError(errno.EHOSTUNREACH, "No route to host"), "unreachable"),
    (OSError(errno.ENETUNREACH, "Network is unreachable"), "unreachable"),
    (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), "unreachable"),
    (TimeoutError(), "timeout"),
    (OSError(errno.ETIMEDOUT, "Connection timed out"), "timeout"),
    (ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"), "ended"),
    (OSError(errno.EIO, "Input/output error"), "other"),
    (PublishFailed("no acknowledgement"), "other"),
    (ValueError("a bug"), "other"),
])
def test_failure_kind(error, kind):
    assert failure_kind(error) == kind


@pytest.mark.parametrize("error, kind", [
    (av.error.HTTPUnauthorizedError(-1094995529, "Server returned 401 Unauthorized (authorization failed)"),
     "unauthorized"),
    (av.error.HTTPForbiddenError(-1313558101, "Server returned 403 Forbidden (access denied)"), "unauthorized"),
    (av.error.HTTPNotFoundError(-1179993140, "Server returned 404 Not Found"), "not_found"),
    (av.error.ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), "refused"),
    (av.error.FileNotFoundError(errno.ENOENT, "No such file or directory"), "not_found"),
    (av.error.TimeoutError(errno.ETIMEDOUT, "Connection timed out"), "timeout"),
    (av.error.ProtocolNotFoundError(-1330794744, "Protocol not found"), "unsupported"),
    (av.error.EOFError(-541478725, "End of file"), "ended"),
    (av.error.OSError(errno.EIO, "Input/output error"), "other"),  # what FFmpeg says for an unknown host
    (av.error.InvalidDataError(-1094995529, "Invalid data found when processing input"), "other"),
])
def test_ffmpeg_error_kind(error, kind):
    assert ffmpeg_error_kind(error) == kind


@pytest.mark.parametrize("status, kind", [
    (401, "unauthorized"), (403, "unauthorized"), (404, "not_found"), (461, "unsupported"), (415, "unsupported"),
    (454, "other"), (500, "other"), (503, "other"),
])
def test_rtsp_status_kind(status, kind):
    assert rtsp_status_kind(status) == kind


def test_a_refused_connection_reads_as_refused_not_as_asyncios_connect_call_failed():
    refused = ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed ('127.0.0.1', 9)")
    assert os_error_text(refused).startswith("connection refused")
    assert "unknown host" in os_error_text(socket.gaierror(socket.EAI_NONAME, "Name or service not known"))
    assert os_error_text(OSError(errno.EIO, "Input/output error")) == "Input/output error"


# -- state transitions ---------------------------------------------------------------------------------------------

def _status(state, since=T0, attempts=0, kind=None, error=None, worker="w1", session=None):
    return CameraStatus(camera="door", worker=worker, state=state, since=since, attempts=attempts, error_kind=kind,
                        error=error, session=session, updated_at=since)


@pytest.mark.parametrize("current, event, expected", [
    (None, ("connecting", {}), _status("connecting", since=T0 + 5)),
    (_status("connecting"), ("retrying", {"error": "refused!", "kind": "refused"}),
     _status("retrying", since=T0 + 5, attempts=1, kind="refused", error="refused!")),
    # still failing: the state (and its since) stays, the attempts count on, the error is the latest
    (_status("retrying", attempts=3, kind="refused", error="refused!"),
     ("retrying", {"error": "no answer", "kind": "timeout"}),
     _status("retrying", since=T0, attempts=4, kind="timeout", error="no answer")),
    (_status("retrying", attempts=4, kind="refused", error="refused!"), ("streaming", {"session": "1a-2"}),
     _status("streaming", since=T0 + 5, session="1a-2")),
    (_status("streaming", session="1a-2"), ("retrying", {"error": "session ended: no data for 5s", "kind": "ended"}),
     _status("retrying", since=T0 + 5, attempts=1, kind="ended", error="session ended: no data for 5s")),
    (_status("retrying", attempts=2, kind="refused", error="x"), ("stopped", {}), _status("stopped", since=T0 + 5)),
    # a password in an error is masked whoever wrote it; a failure without a kind is `other`
    (None, ("retrying", {"error": f"cannot open rtsp://admin:{PASSWORD}@10.0.0.5/x: boom"}),
     _status("retrying", since=T0 + 5, attempts=1, kind="other",
             error="cannot open rtsp://admin:***@10.0.0.5/x: boom")),
])
def test_transition(current, event, expected):
    state, details = event
    assert transition(current, "door", "w1", state, T0 + 5, **details) == expected.model_copy(
        update={"updated_at": T0 + 5})


@pytest.mark.parametrize("record, owner, shown", [
    (_status("retrying", worker="w1"), "w1", True),  # the holder's own account
    (_status("retrying", worker="w1"), "w2", False),  # a previous holder's: the new one has not spoken yet
    (_status("stopped", worker="w1"), None, True),  # nobody holds it: what was said last
    (None, "w1", False),
    (None, None, False),
])
def test_current_status(record, owner, shown):
    assert current_status(record, owner) == (record if shown else None)


# -- end to end ----------------------------------------------------------------------------------------------------

@pytest.fixture
async def stack(nats_server, s3_server, camera_clip, tmp_path):
    settings = settings_for(nats_server, s3_server, tmp_path / "state")
    ensure_bucket(settings.s3)
    nc = await connect(settings, "test-camera-status")
    js = nc.jetstream()
    await ensure_topology(js, settings)
    api_port, camera_port, closed_port = free_ports(3)
    camera = RtspTestCamera({"gate": camera_clip}, tmp_path / "testcam.log", port=camera_port,
                            auth=("admin", PASSWORD)).start()
    processes = {
        "api": ServiceProcess("api", settings, tmp_path / "api.log", SPECTARE_API__PORT=str(api_port),
                              SPECTARE_API__STALE_AFTER_S="5"),
        "ingest": ServiceProcess("ingest", settings, tmp_path / "ingest.log", SPECTARE_INGEST__RECONNECT_MAX_S="1"),
    }
    try:
        for process in processes.values():
            process.start()
        await api_answering(processes["api"], f"http://127.0.0.1:{api_port}")
        done = run_cli(settings, "token", "create", "--scope", "read")
        assert done.returncode == 0, done.stderr
        yield {"settings": settings, "js": js, "camera": camera, "processes": processes, "token": done.stdout.strip(),
               "base_url": f"http://127.0.0.1:{api_port}", "closed_port": closed_port, "tmp_path": tmp_path}
    finally:
        for process in processes.values():
            process.stop()
        camera.stop()
        await nc.close()


def _camera(stats: dict, name: str) -> dict:
    return next(c for c in stats["per_camera"] if c["name"] == name)


async def test_a_camera_that_does_not_record_says_why_in_stats_and_camera_list_then_recovers(stack, camera_clip):
    settings, js = stack["settings"], stack["js"]
    registry = await CameraRegistry.open(js, settings)
    door_url = f"rtsp://admin:{PASSWORD}@127.0.0.1:{stack['closed_port']}/door"  # nothing listens there
    gate_url = stack["camera"].url("gate").replace("rtsp://", f"rtsp://admin:{WRONG}@")
    await registry.put(CameraConfig(name="door", url=door_url, detect=False))
    await registry.put(CameraConfig(name="gate", url=gate_url, detect=False))
    answers: list[str] = []

    async with httpx.AsyncClient(base_url=stack["base_url"], timeout=30,
                                 headers={"Authorization": f"Bearer {stack['token']}"}) as api:
        async def stats_when(check) -> dict | None:
            answer = await api.get("/stats")
            answers.append(answer.text)
            stats = answer.json()
            return stats if check(stats) else None

        def failing(name: str, kind: str):
            def check(stats: dict) -> bool:
                cam = _camera(stats, name)
                return cam["state"] == "camera_away" and (cam["ingest"] or {}).get("error_kind") == kind
            return check

        async def until(check, what: str) -> dict:
            try:
                return await eventually(lambda: stats_when(check), 90, interval=0.5, what=what)
            except AssertionError as exc:
                raise AssertionError(f"{exc}; last /stats: {answers[-1:]}; ingest log: "
                                     f"{stack['processes']['ingest'].log[-3000:]}") from None

        stats = await until(lambda s: failing("door", "refused")(s) and failing("gate", "unauthorized")(s),
                            "door refused and gate unauthorized in /stats")
        door, gate = _camera(stats, "door"), _camera(stats, "gate")
        assert stats["cameras"] == {"total": 2, "recording": 0, "camera_away": 2, "orphaned": 0}
        assert door["ingest_worker"] and door["ingest"]["worker"] == door["ingest_worker"]
        assert door["ingest"]["state"] == "retrying" and door["ingest"]["attempts"] >= 1
        assert door["ingest"]["since"] <= stats["time"]
        assert (f"cannot open rtsp://admin:***@127.0.0.1:{stack['closed_port']}/door: connection refused"
                in door["ingest"]["error"]), door
        assert "refused the credentials (401 Unauthorized)" in gate["ingest"]["error"], gate

        listed = run_cli(settings, "camera", "list")
        assert listed.returncode == 0, listed.stderr
        rows = {line.split()[0]: line for line in listed.stdout.splitlines()[1:]}
        assert listed.stdout.splitlines()[0].split()[-3:] == ["STATE", "URL", "ERROR"], listed.stdout
        assert " retrying " in rows["door"] and "refused since" in rows["door"], listed.stdout
        assert "connection refused" in rows["door"], listed.stdout
        assert " retrying " in rows["gate"] and "unauthorized since" in rows["gate"], listed.stdout
        as_json = run_cli(settings, "camera", "list", "--json")
        kinds = {c["name"]: c["ingest"]["error_kind"] for c in json.loads(as_json.stdout)}
        assert kinds == {"door": "refused", "gate": "unauthorized"}

        # Recovery: the right password for the gate; a camera comes up at the door's port.
        await registry.put(CameraConfig(name="gate", url=stack["camera"].url("gate").replace(
            "rtsp://", f"rtsp://admin:{PASSWORD}@"), detect=False))
        door_camera = RtspTestCamera({"door": camera_clip}, stack["tmp_path"] / "door.log",
                                     port=stack["closed_port"], auth=("admin", PASSWORD)).start()
        try:
            def recording(name: str):
                def check(stats: dict) -> bool:
                    cam = _camera(stats, name)
                    return cam["state"] == "recording" and (cam["ingest"] or {}).get("state") == "streaming"
                return check

            stats = await until(lambda s: recording("door")(s) and recording("gate")(s),
                                "door and gate recording again")
            for name in ("door", "gate"):
                ingest = _camera(stats, name)["ingest"]
                assert ingest["error"] is None and ingest["error_kind"] is None and ingest["attempts"] == 0
            assert stats["cameras"] == {"total": 2, "recording": 2, "camera_away": 0, "orphaned": 0}
            listed_again = run_cli(settings, "camera", "list")
            assert listed_again.stdout.count(" streaming ") == 2, listed_again.stdout
        finally:
            door_camera.stop()

    records = await js.key_value(settings.names.status_bucket)
    raw = [(await records.get(name)).value for name in ("door", "gate")]
    outputs = [*answers, listed.stdout, listed.stderr, as_json.stdout, listed_again.stdout, *map(repr, raw),
               stack["processes"]["ingest"].log, stack["processes"]["api"].log]
    for secret in (PASSWORD, WRONG):
        assert not [text[:200] for text in outputs if secret in text], f"{secret} leaked"
