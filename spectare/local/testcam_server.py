"""RTSP test camera: serves H.264 files at rtsp://127.0.0.1:PORT/NAME, looping forever, without transcoding.

Run by the *system* Python (the one with PyGObject and GStreamer's RTSP server), never inside the venv,
so it imports only the standard library and `gi`. `spectare.local.testcam` starts it; by hand:

    /usr/bin/python3 -I spectare/local/testcam_server.py --port 8554 --mount cam1=clip.mp4

How it works: each file is demuxed once into memory as H.264 access units (Annex-B, SPS/PPS before
every IDR). Every client gets its own pipeline `appsrc ! h264parse ! rtph264pay` (the factory is not
shared), fed from the first access unit with timestamps that keep increasing across loops, so a client
sees one endless, real-time stream that starts at the beginning of the file. A file with B-frames is served
as a camera sends one: access units in decode order, each stamped (RTP timestamp) with its presentation time.
RTP goes over TCP (interleaved) or UDP, whichever the client asks for; every socket is bound to 127.0.0.1.

`--audio aac|pcmu|pcma` adds an audio track to every mount: a 440 Hz tone from `audiotestsrc`, timestamped from 0
like the video (both run on the pipeline's clock, so they stay in sync), AAC-LC 48 kHz mono in RFC 3640
`mpeg4-generic` (AAC-hbr), or G.711 8 kHz mono. With `--sync-marks EVERY,FIRST` the sound is silence with a beep
(1 kHz, 0.1 s) every EVERY seconds from FIRST on the same clock, to match a clip that flashes at those instants
(`make_test_clip(sync_marks=...)`): an A/V offset in the recording is then the time from a flash to its beep.

Exit codes: 0 stopped by SIGTERM/SIGINT, 2 bad arguments or input file, 3 cannot listen on the port,
4 PyGObject/GStreamer (or one of its plugins) missing.
"""

import argparse
import json
import os
import re
import signal
import sys
import threading
import time
from typing import Any, NoReturn

EXIT_BAD_INPUT = 2
EXIT_PORT = 3
EXIT_MISSING = 4

# RTP/RTCP ports for UDP clients come from this range, on 127.0.0.1 (below Linux's ephemeral range, so
# they do not collide with the random ports other test servers are given). Busy ports are skipped.
UDP_PORT_MIN = 20000
UDP_PORT_MAX = 29999

_MOUNT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_NS = 1_000_000_000


def log(msg: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} testcam: {msg}", flush=True)


def fail(code: int, msg: str) -> NoReturn:
    print(f"testcam: error: {msg}", file=sys.stderr, flush=True)
    sys.exit(code)


try:
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtsp", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtsp, GstRtspServer
except (ImportError, ValueError) as exc:
    fail(EXIT_MISSING, f"PyGObject with GStreamer's RTSP server is not available to {sys.executable} "
                       f"({exc}); run `make setup`")


class Clip:
    """One file's H.264 access units, in decode order, held in memory."""

    def __init__(self, name: str, path: str, aus: list[bytes], keys: list[bool], width: int, height: int,
                 fps_n: int, fps_d: int, shown: list[int]) -> None:
        self.name = name
        self.path = path
        self.aus = aus
        self.keys = keys
        self.shown = shown  # each access unit's place in presentation order (B-frames: not its own)
        # Frames a unit may come before its place in decode order: its decode time is that many frames earlier.
        self.depth = max([i - s for i, s in enumerate(shown)] + [0])
        self.width = width
        self.height = height
        self.fps_n = fps_n
        self.fps_d = fps_d
        self.caps = Gst.Caps.from_string(
            f"video/x-h264,stream-format=byte-stream,alignment=au,width={width},height={height},"
            f"framerate={fps_n}/{fps_d}"
        )

    def pts(self, n: int) -> int:
        """Presentation time of the n-th frame served (n keeps counting across loops), in ns."""
        return n * _NS * self.fps_d // self.fps_n


def load_clip(name: str, path: str) -> Clip:
    """Demux `path` once into Annex-B access units (decode order); refuse files without H.264."""
    if not os.path.isfile(path):
        fail(EXIT_BAD_INPUT, f"mount {name}: file not found: {path}")
    pipeline = Gst.Pipeline.new(f"load-{name}")
    src = Gst.ElementFactory.make("filesrc")
    src.set_property("location", path)
    parse = Gst.ElementFactory.make("parsebin")
    h264parse = Gst.ElementFactory.make("h264parse")
    h264parse.set_property("config-interval", -1)  # SPS/PPS before every IDR: each loop stands alone
    capsfilter = Gst.ElementFactory.make("capsfilter")
    capsfilter.set_property("caps", Gst.Caps.from_string(
        "video/x-h264,stream-format=byte-stream,alignment=au"))
    sink = Gst.ElementFactory.make("appsink")
    sink.set_property("sync", False)
    sink.set_property("max-buffers", 0)
    for element in (src, parse, h264parse, capsfilter, sink):
        pipeline.add(element)
    src.link(parse)
    h264parse.link(capsfilter)
    capsfilter.link(sink)

    seen: list[str] = []
    linked = threading.Event()
    other_eos = threading.Event()  # a stream we do not want ended: if none was H.264, there is none

    def on_other_event(_pad, info):
        if info.get_event().type == Gst.EventType.EOS:
            other_eos.set()
        return Gst.PadProbeReturn.OK

    def on_pad_added(_bin, pad):
        caps = pad.get_current_caps() or pad.query_caps(None)
        kind = caps.get_structure(0).get_name() if caps and caps.get_size() else "unknown"
        seen.append(kind)
        if kind == "video/x-h264" and not linked.is_set():
            linked.set()
            pad.link(h264parse.get_static_pad("sink"))
            return
        pad.add_probe(Gst.PadProbeType.EVENT_DOWNSTREAM, on_other_event)
        fake = Gst.ElementFactory.make("fakesink")  # other streams (audio, a second video) are dropped
        fake.set_property("sync", False)
        fake.set_property("async", False)
        pipeline.add(fake)
        fake.sync_state_with_parent()
        pad.link(fake.get_static_pad("sink"))

    parse.connect("pad-added", on_pad_added)

    aus: list[bytes] = []
    keys: list[bool] = []
    pts_list: list[int] = []
    caps: Any = None  # Gst.Caps of the first sample (gi objects are untyped)
    bus = pipeline.get_bus()
    pipeline.set_state(Gst.State.PLAYING)
    error = None
    last_progress = time.monotonic()
    try:
        while True:
            sample = sink.emit("try-pull-sample", 100 * Gst.MSECOND)
            if sample is not None:
                last_progress = time.monotonic()
                buf = sample.get_buffer()
                if caps is None:
                    caps = sample.get_caps()
                aus.append(buf.extract_dup(0, buf.get_size()))
                keys.append(not buf.has_flags(Gst.BufferFlags.DELTA_UNIT))
                pts_list.append(buf.pts)
                continue
            if sink.get_property("eos"):
                break
            if other_eos.is_set() and not linked.is_set():
                break  # the file was read to its end and no stream is H.264
            if time.monotonic() - last_progress > 30:
                error = "no data for 30 s"
                break
            msg = bus.pop_filtered(Gst.MessageType.ERROR)
            if msg is not None:
                err, _debug = msg.parse_error()
                error = err.message
                break
    finally:
        pipeline.set_state(Gst.State.NULL)

    if not seen:
        fail(EXIT_BAD_INPUT, f"mount {name}: cannot read {path} as MP4/MKV ({error or 'no streams'})")
    if not linked.is_set():
        detail = f"; GStreamer says: {error}" if error else ""
        fail(EXIT_BAD_INPUT,
             f"mount {name}: {path} has no H.264 video stream (found: {', '.join(seen)}){detail}")
    if error:
        fail(EXIT_BAD_INPUT, f"mount {name}: error reading {path}: {error}")
    if not aus:
        fail(EXIT_BAD_INPUT, f"mount {name}: {path} has no video frames")

    first_key = keys.index(True) if True in keys else -1
    if first_key < 0:
        fail(EXIT_BAD_INPUT, f"mount {name}: {path} has no keyframe")
    aus, keys, stamped_from = aus[first_key:], keys[first_key:], pts_list[first_key:]
    # Served times are frame_index * duration in presentation order; B-frames' order comes from the file's pts.
    if Gst.CLOCK_TIME_NONE in stamped_from:
        shown = list(range(len(aus)))
    else:
        shown = [0] * len(aus)
        for place, unit in enumerate(sorted(range(len(aus)), key=stamped_from.__getitem__)):
            shown[unit] = place

    s = caps.get_structure(0)
    _, width = s.get_int("width")
    _, height = s.get_int("height")
    ok, fps_n, fps_d = s.get_fraction("framerate")
    if not ok or fps_n <= 0 or fps_d <= 0:
        # Variable or unknown frame rate: use the median spacing of the timestamps, else 30 fps.
        stamped = sorted(p for p in stamped_from if p != Gst.CLOCK_TIME_NONE)
        deltas = sorted(b - a for a, b in zip(stamped, stamped[1:], strict=False) if b > a)
        if deltas:
            fps_n, fps_d = _NS, deltas[len(deltas) // 2]
        else:
            fps_n, fps_d = 30, 1
    clip = Clip(name, path, aus, keys, width, height, fps_n, fps_d, shown)
    log(f"mount /{name}: {path}: {len(aus)} frames {width}x{height} @ {fps_n / fps_d:.3f} fps, "
        f"{sum(keys)} keyframes, B-frame reorder depth {clip.depth}, {sum(map(len, aus)) / 1e6:.1f} MB")
    return clip


class Feeder:
    """Feeds one client's appsrc from a clip, looping, with timestamps that never go back."""

    def __init__(self, clip: Clip) -> None:
        self.clip = clip  # no reference to the appsrc: its signal holds us, so that would be a cycle
        self.n = 0

    def need_data(self, appsrc, _length) -> None:
        clip = self.clip
        lap, i = divmod(self.n, len(clip.aus))
        buf = Gst.Buffer.new_wrapped(clip.aus[i])
        # Presentation `depth` frames after decode: no unit is shown before it is decoded, none before 0.
        shown = lap * len(clip.aus) + clip.shown[i] + clip.depth
        buf.pts, buf.dts = clip.pts(shown), clip.pts(self.n)
        buf.duration = clip.pts(shown + 1) - buf.pts
        if not clip.keys[i]:
            buf.set_flags(Gst.BufferFlags.DELTA_UNIT)
        self.n += 1
        appsrc.emit("push-buffer", buf)


AUTH_ROLE = "viewer"


AUDIO_BRANCHES = {
    "aac": "audiotestsrc is-live=false {sound} samplesperbuffer=1024 "
           "! audio/x-raw,rate=48000,channels=1 ! voaacenc bitrate=64000 ! aacparse ! rtpmp4gpay name=pay1 pt=97",
    # AAC as most IP cameras send it by default (16 kHz mono): a third of the 48 kHz track's access units.
    "aac16k": "audiotestsrc is-live=false {sound} samplesperbuffer=1024 "
              "! audio/x-raw,rate=16000,channels=1 ! voaacenc bitrate=32000 ! aacparse ! rtpmp4gpay name=pay1 pt=97",
    "pcmu": "audiotestsrc is-live=false {sound} samplesperbuffer=160 "
            "! audio/x-raw,rate=8000,channels=1 ! mulawenc ! rtppcmupay name=pay1 pt=0",
    "pcma": "audiotestsrc is-live=false {sound} samplesperbuffer=160 "
            "! audio/x-raw,rate=8000,channels=1 ! alawenc ! rtppcmapay name=pay1 pt=8",
}
TONE = "wave=sine freq=440 volume=0.3"
BEEP_HZ, BEEP_S = 1000, 0.1


def audio_branch(kind: str, sync_marks: tuple[float, float] | None) -> str:
    """The audio part of a mount's pipeline: the tone, or a beep every `sync_marks[0]` s from `sync_marks[1]`."""
    sound = TONE
    if sync_marks is not None:
        every, first = sync_marks  # audiotestsrc ticks from its first sample: the offset moves that to `first`
        sound = (f"wave=ticks freq={BEEP_HZ} volume=0.8 sine-periods-per-tick={round(BEEP_HZ * BEEP_S)} "
                 f"tick-interval={round(every * _NS)} timestamp-offset={round(first * _NS)}")
    return AUDIO_BRANCHES[kind].format(sound=sound)


def make_factory(clip: Clip, pool, protected: bool, audio: str | None = None,
                 sync_marks: tuple[float, float] | None = None) -> "GstRtspServer.RTSPMediaFactory":
    factory = GstRtspServer.RTSPMediaFactory()
    if protected:  # only the authenticated role may open or construct the media
        factory.add_role_from_structure(Gst.Structure.new_from_string(
            f"{AUTH_ROLE}, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"))
    audio_part = f" {audio_branch(audio, sync_marks)}" if audio else ""
    factory.set_launch(
        "( appsrc name=src is-live=false format=time do-timestamp=false "
        f"! h264parse ! rtph264pay name=pay0 pt=96 config-interval=-1{audio_part} )"
    )
    factory.set_shared(False)  # every client gets its own pipeline, from the start of the file
    factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP | GstRtsp.RTSPLowerTrans.UDP)
    factory.set_address_pool(pool)

    def on_media_configure(_factory, media):
        appsrc = media.get_element().get_by_name_recurse_up("src")
        appsrc.set_property("caps", clip.caps)
        appsrc.connect("need-data", Feeder(clip).need_data)

    factory.connect("media-configure", on_media_configure)
    return factory


def check_plugins() -> None:
    needed = ["filesrc", "parsebin", "h264parse", "appsink", "appsrc", "rtph264pay", "qtdemux",
              "matroskademux", "fakesink", "audiotestsrc", "voaacenc", "aacparse", "rtpmp4gpay", "mulawenc",
              "rtppcmupay", "alawenc", "rtppcmapay"]
    missing = [name for name in needed if Gst.ElementFactory.find(name) is None]
    if missing:
        fail(EXIT_MISSING, f"GStreamer elements missing: {', '.join(missing)} (packages gstreamer1.0-plugins-"
                           f"base/good/bad); run `make setup`")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Serve H.264 files over RTSP on 127.0.0.1, looping forever.")
    p.add_argument("--port", type=int, default=8554, help="TCP port for RTSP (0 = pick a free one)")
    p.add_argument("--mount", action="append", default=[], metavar="NAME=PATH",
                   help="serve PATH (MP4/MKV with H.264 video) at rtsp://127.0.0.1:PORT/NAME; repeatable")
    p.add_argument("--audio", choices=sorted(AUDIO_BRANCHES), help="add an audio track (a tone) to every mount")
    p.add_argument("--sync-marks", metavar="EVERY,FIRST",
                   help="with --audio: silence and a beep every EVERY s from FIRST s, not the tone")
    p.add_argument("--ready-file", help="write {\"port\": N, \"mounts\": [...]} here once listening")
    p.add_argument("--auth", metavar="USER:PASSWORD",
                   help="require these credentials (RTSP Basic auth), like a real camera; read from "
                        "$TESTCAM_AUTH if not given, so it never shows in a process list")
    args = p.parse_args(argv)
    if not args.mount:
        fail(EXIT_BAD_INPUT, "give at least one --mount NAME=PATH")
    if not 0 <= args.port <= 65535:
        fail(EXIT_BAD_INPUT, f"--port {args.port} is not a TCP port")
    mounts: dict[str, str] = {}
    for spec in args.mount:
        name, sep, path = spec.partition("=")
        if not sep or not path:
            fail(EXIT_BAD_INPUT, f"--mount {spec!r}: expected NAME=PATH")
        if not _MOUNT_NAME.match(name):
            fail(EXIT_BAD_INPUT, f"--mount {spec!r}: name must be letters, digits, '.', '_' or '-'")
        if name in mounts:
            fail(EXIT_BAD_INPUT, f"--mount {name} given twice")
        mounts[name] = path
    args.mounts = mounts
    if args.sync_marks is not None:
        try:
            every, first = (float(x) for x in args.sync_marks.split(","))
        except ValueError:
            fail(EXIT_BAD_INPUT, f"--sync-marks {args.sync_marks!r}: expected EVERY,FIRST (seconds)")
        if not args.audio or every <= BEEP_S or first < 0:
            fail(EXIT_BAD_INPUT, f"--sync-marks {args.sync_marks!r}: needs --audio, EVERY > {BEEP_S} and FIRST >= 0")
        args.sync_marks = (every, first)
    args.auth = args.auth or os.environ.get("TESTCAM_AUTH")
    if args.auth and ":" not in args.auth:
        fail(EXIT_BAD_INPUT, "--auth expects USER:PASSWORD")
    return args


def write_ready(path: str, port: int, mounts: list[str]) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump({"port": port, "mounts": mounts, "pid": os.getpid()}, f)
    os.replace(tmp, path)  # readers never see half a file


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    Gst.init(None)
    check_plugins()
    clips = [load_clip(name, path) for name, path in args.mounts.items()]

    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    pool = GstRtspServer.RTSPAddressPool()
    pool.add_range("127.0.0.1", "127.0.0.1", UDP_PORT_MIN, UDP_PORT_MAX, 0)
    if args.auth:
        user, _, password = args.auth.partition(":")
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, AUTH_ROLE)
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
        server.set_auth(auth)
    mount_points = server.get_mount_points()
    for clip in clips:
        mount_points.add_factory(f"/{clip.name}", make_factory(clip, pool, bool(args.auth), args.audio,
                                                               args.sync_marks))

    clients = {"next": 0}

    def on_client_connected(_server, client):
        clients["next"] += 1
        cid = clients["next"]
        conn = client.get_connection()
        peer = conn.get_ip() if conn is not None else "?"
        log(f"client {cid} connected from {peer}")

        def on_closed(_client):
            log(f"client {cid} disconnected")

        client.connect("closed", on_closed)

    server.connect("client-connected", on_client_connected)

    try:
        source = server.create_source(None)
    except GLib.Error as exc:
        fail(EXIT_PORT, f"cannot listen on 127.0.0.1:{args.port}: {exc.message}")
    source.attach(None)
    port = server.get_bound_port()

    loop = GLib.MainLoop()

    def on_signal(signame):
        log(f"{signame}: stopping")
        loop.quit()
        return GLib.SOURCE_REMOVE

    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, on_signal, "SIGTERM")
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, on_signal, "SIGINT")

    def cleanup_sessions():
        server.get_session_pool().cleanup()  # drop UDP sessions whose client went silent
        return GLib.SOURCE_CONTINUE

    GLib.timeout_add_seconds(2, cleanup_sessions)

    names = [clip.name for clip in clips]
    if args.ready_file:
        write_ready(args.ready_file, port, names)
    log(f"listening on 127.0.0.1:{port}: " + " ".join(f"rtsp://127.0.0.1:{port}/{n}" for n in names))
    loop.run()

    # Close every client connection, then leave without waiting for per-client pipelines to wind down
    # (their streaming threads call back into Python; a fast exit avoids shutdown races).
    server.client_filter(lambda _server, _client: GstRtspServer.RTSPFilterResult.REMOVE)
    log("stopped")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
