"""The segmenter's pure parts, without I/O: the chunker's rules (table-driven) and the key/Msg-Id formats.

Synthetic packets at 10 fps (time base 1/90000, 9000 ticks a frame), wall time T0 + pts; the ack
handle of every message is its 1-based position in the event list, so a plan's ack says exactly
which message settles it.
"""

import pytest

from spectare.schemas import AudioTrack, Gap, Packet, StreamInfo, VideoTrack
from spectare.schemas.keys import chunk_key
from spectare.segmenter.chunker import AnnounceGap, Chunker, CloseChunk, Tail
from spectare.segmenter.keys import gap_msg_id, segment_msg_id

CAM = "cam1"
T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z
TB = 90_000
FRAME = 9_000  # ticks of one frame at 10 fps


def info(session: str = "s1", audio: bool = False) -> StreamInfo:
    return StreamInfo(camera=CAM, session=session, started_at=T0,
                      video=VideoTrack(codec="h264", width=640, height=360, time_base=(1, TB), fps=10.0),
                      audio=AudioTrack(codec="aac", sample_rate=8000, channels=1, time_base=(1, 8000))
                      if audio else None)


def frame(n: int, seq: int | None = None, session: str = "s1", gop: int = 10, offset_s: float = 0.0,
          duration: int = FRAME) -> Packet:
    """Video frame n of a session (a keyframe every `gop` frames), at T0 + offset + n/10 s."""
    return Packet(camera=CAM, session=session, seq=n if seq is None else seq, pts=n * FRAME, dts=n * FRAME,
                  duration=duration, keyframe=n % gop == 0, wall_time=T0 + offset_s + n * FRAME / TB, data=b"v")


def audio(seq: int, t: float, session: str = "s1") -> Packet:
    return Packet(camera=CAM, session=session, seq=seq, track="audio", pts=round(t * 8000), dts=round(t * 8000),
                  duration=800, keyframe=True, wall_time=T0 + t, data=b"a")


def frames(first: int, last: int, **kw) -> list[Packet]:
    return [frame(n, **kw) for n in range(first, last + 1)]


def tick(now: float) -> tuple[str, float]:
    return ("tick", now)


def run(events: list, segment_seconds: float = 2, stall: float = 5, **kw) -> tuple[list[tuple], Chunker]:
    """Feed events (StreamInfo, Packet, ("tick", t), ("skip",)); summarise the actions relative to T0."""
    chunker = Chunker(CAM, segment_seconds, stall, now=0.0, **kw)
    out: list[tuple] = []
    for handle, event in enumerate(events, start=1):
        if isinstance(event, StreamInfo):
            actions = chunker.on_info(event, handle)
        elif isinstance(event, Packet):
            actions = chunker.on_packet(event, handle)
        elif event[0] == "skip":
            chunker.on_skipped(handle)
            actions = []
        else:
            actions = chunker.tick(event[1])
        for action in actions:
            if isinstance(action, CloseChunk):
                p = action.plan
                out.append(("chunk", p.session, p.first_seq, p.last_seq, round(p.start - T0, 3),
                            round(p.end - T0, 3), p.frames, p.ack))
            else:
                assert isinstance(action, AnnounceGap)
                g = action.gap
                out.append(("gap", round(g.start - T0, 3), None if g.end is None else round(g.end - T0, 3),
                            g.reason, g.session))
    return out, chunker


STALL = "no packets for 5s"

CASES = {
    # A chunk runs from a keyframe to the first keyframe >= start + 2 s; the ack is the message before it.
    "cut at keyframes, back to back": (
        [info(), *frames(0, 44), tick(1), tick(7)],
        {},
        [("chunk", "s1", 0, 19, 0.0, 2.0, 20, 21),
         ("chunk", "s1", 20, 39, 2.0, 4.0, 20, 41),
         ("chunk", "s1", 40, 44, 4.0, 4.5, 5, 46),
         ("gap", 4.5, None, STALL, "s1")],
    ),
    "cut waits for the first keyframe at or after the length": (
        [info(), *frames(0, 30, gop=7), tick(1), tick(7)],
        {},
        [("chunk", "s1", 0, 20, 0.0, 2.1, 21, 22),
         ("chunk", "s1", 21, 30, 2.1, 3.1, 10, 32),
         ("gap", 3.1, None, STALL, "s1")],
    ),
    "packets before the session's first keyframe are dropped": (
        [info(), *frames(5, 32)],
        {},
        [("chunk", "s1", 10, 29, 1.0, 3.0, 20, 26)],
    ),
    "new session: close at last packet, gap opened then closed at the next chunk": (
        [info(), *frames(0, 24), info("s2"), *frames(0, 24, session="s2", offset_s=5.0)],
        {},
        [("chunk", "s1", 0, 19, 0.0, 2.0, 20, 21),
         ("chunk", "s1", 20, 24, 2.0, 2.5, 5, 26),
         ("gap", 2.5, None, "new stream session s2", "s1"),
         ("gap", 2.5, 5.0, "new stream session s2", "s1"),
         ("chunk", "s2", 0, 19, 5.0, 7.0, 20, 47)],
    ),
    "hole in seq: close, gap, resume at the next keyframe": (
        [info(), *frames(0, 14), *frames(16, 45)],
        {},
        [("chunk", "s1", 0, 14, 0.0, 1.5, 15, 16),
         ("gap", 1.5, None, "packets 15..15 lost", "s1"),
         ("gap", 1.5, 2.0, "packets 15..15 lost", "s1"),
         ("chunk", "s1", 20, 39, 2.0, 4.0, 20, 40)],
    ),
    "older seqs (redelivery, retries) are ignored": (
        [info(), *frames(0, 8), *frames(5, 7), *frames(9, 20)],
        {},
        [("chunk", "s1", 0, 19, 0.0, 2.0, 20, 24)],
    ),
    "stall: only once, then the same session resumes at its next keyframe": (
        [info(), *frames(0, 12), tick(1), tick(5.9), tick(6.1), tick(20), *frames(13, 31)],
        {},
        [("chunk", "s1", 0, 12, 0.0, 1.3, 13, 14),
         ("gap", 1.3, None, STALL, "s1"),
         ("gap", 1.3, 2.0, STALL, "s1")],
    ),
    "last frame without duration ends one frame interval later": (
        [info(), *frames(0, 4), frame(5, duration=0), tick(1), tick(7)],
        {},
        [("chunk", "s1", 0, 5, 0.0, 0.6, 6, 7), ("gap", 0.6, None, STALL, "s1")],
    ),
    "audio joins the chunk when the session has audio; frames count video only": (
        [info(audio=True), audio(0, -0.05), frame(0, seq=1), audio(2, 0.05), frame(1, seq=3), audio(4, 0.15),
         frame(10, seq=5, duration=FRAME), tick(1), tick(7)],
        {"segment_seconds": 1},
        [("chunk", "s1", 1, 4, 0.0, 1.0, 2, 6), ("chunk", "s1", 5, 5, 1.0, 1.1, 1, 7),
         ("gap", 1.1, None, STALL, "s1")],
    ),
    "audio of a session without audio is dropped": (
        [info(), frame(0, seq=0), audio(1, 0.05), frame(1, seq=2), frame(10, seq=3)],
        {"segment_seconds": 1},
        [("chunk", "s1", 0, 2, 0.0, 1.0, 2, 4)],
    ),
    "packets of a session without stream info: break, dropped until its info comes": (
        [info(), *frames(0, 14), *frames(0, 9, session="s2", offset_s=3), info("s2"),
         *frames(10, 20, session="s2", offset_s=3)],
        {},
        [("chunk", "s1", 0, 14, 0.0, 1.5, 15, 16),
         ("gap", 1.5, None, "no stream info for session s2", "s1"),
         ("gap", 1.5, 4.0, "no stream info for session s2", "s1")],
    ),
    "a chunk is also cut at the first keyframe after max_packets": (
        [info(), *frames(0, 30)],
        {"segment_seconds": 100, "max_packets": 15},
        [("chunk", "s1", 0, 19, 0.0, 2.0, 20, 21)],
    ),
    "an undecodable message inside a chunk is settled by the chunk's ack": (
        [info(), *frames(0, 19), ("skip",), *frames(20, 25)],
        {},
        [("chunk", "s1", 0, 19, 0.0, 2.0, 20, 22)],
    ),
    "nothing recorded yet: a stall announces nothing": (
        [info(), *frames(3, 8), tick(1), tick(9)],
        {},
        [],
    ),
    # After a restart the chunker starts from the stored footage's end, read back from the footage stream.
    "resume after the last stored chunk: stored packets skipped, no gap": (
        [info(), *frames(0, 45)],
        {"tail": Tail("s1", T0 + 2.0, 19)},
        [("chunk", "s1", 20, 39, 2.0, 4.0, 20, 41)],
    ),
    "resume, but the stream moved on to another session: the gap is announced": (
        [info("s2"), *frames(0, 25, session="s2", offset_s=9)],
        {"tail": Tail("s1", T0 + 2.0, 19)},
        [("gap", 2.0, None, "new stream session s2", "s1"),
         ("gap", 2.0, 9.0, "new stream session s2", "s1"),
         ("chunk", "s2", 0, 19, 9.0, 11.0, 20, 21)],
    ),
    "resume, the next stored-after packet is missing: hole gap": (
        [info(), *frames(22, 52)],
        {"tail": Tail("s1", T0 + 2.0, 19)},
        [("gap", 2.0, None, "packets 20..21 lost", "s1"),
         ("gap", 2.0, 3.0, "packets 20..21 lost", "s1"),
         ("chunk", "s1", 30, 49, 3.0, 5.0, 20, 29)],
    ),
    "resume from an open gap: its end is the next chunk's start; older packets are stored already": (
        [info(), *frames(0, 41)],
        {"open_gap": Gap(camera=CAM, start=T0 + 2.0, end=None, reason=STALL, session="s1")},
        [("gap", 2.0, 2.0, STALL, "s1"), ("chunk", "s1", 20, 39, 2.0, 4.0, 20, 41)],
    ),
    "resume, nothing arrives: the stall opens a gap at the stored footage's end": (
        [tick(1), tick(6)],
        {"tail": Tail("s1", T0 + 2.0, 19)},
        [("gap", 2.0, None, STALL, "s1")],
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_chunker_rules(name):
    events, options, expected = CASES[name]
    actions, _ = run(events, **options)
    assert actions == expected


def test_stats_count_what_was_dropped():
    _, c = run([info(), *frames(5, 14), *frames(12, 13), *frames(16, 20), info("s2")])
    s = c.stats
    assert (s.dropped_before_keyframe, s.duplicates, s.holes, s.sessions, s.chunks) == (5 + 4, 2, 1, 2, 2)


def test_same_session_info_again_changes_nothing():
    actions, c = run([info(), *frames(0, 12), info(), *frames(13, 25)])
    assert actions == [("chunk", "s1", 0, 19, 0.0, 2.0, 20, 22)]
    assert c.stats.sessions == 1


def test_keepalive_holds_off_a_stall():
    c = Chunker(CAM, 2, 5, now=0.0)
    c.on_info(info(), 1)
    for n in range(5):
        c.on_packet(frame(n), n + 2)
    assert c.tick(1.0) == []
    c.keepalive(5.0)
    assert c.tick(9.9) == []
    assert [type(a) for a in c.tick(10.1)] == [CloseChunk, AnnounceGap]


def test_cut_closes_the_open_chunk_with_a_gap():
    c = Chunker(CAM, 2, 5, now=0.0)
    c.on_info(info(), 1)
    for n in range(5):
        c.on_packet(frame(n), n + 2)
    close, gap = c.cut("too big")
    assert close.plan.last_seq == 4 and gap.gap.reason == "too big" and gap.gap.end is None
    assert c.cut("again") == []


# -- keys and Msg-Ids -----------------------------------------------------------------------------

def test_chunk_key_format():
    key = chunk_key("porch", 1795845752.345678, "7-ab12", 1234)
    assert key == "footage/porch/2026/11/28/06/20261128T060232.345Z-7-ab12-1234.mp4"
    assert chunk_key("porch", 1795845752.345678, "7-ab12", 1234) == key  # a retry names the same object


def test_chunk_keys_never_collide():
    keys = {chunk_key("c", T0 + t, s, q) for t in (0.0, 0.0004, 1.0) for s in ("a", "a-1", "a/1", "a%2F1")
            for q in (1, 11)}
    assert len(keys) == 2 * 4 * 2  # t=0 and t=0.0004 share a millisecond (and are then the same chunk)
    assert chunk_key("c", T0, "a/1", 1) != chunk_key("c", T0, "a%2F1", 1)
    assert chunk_key("c", T0, "a/1", 1).endswith("Z-a%2F1-1.mp4")


def test_chunk_key_refuses_bad_camera_names():
    with pytest.raises(ValueError):
        chunk_key("Bad/Name", T0, "s", 0)


def test_msg_ids():
    assert segment_msg_id("porch", "7-ab12", 1234) == "porch:7-ab12:1234"
    open_gap = Gap(camera="porch", start=1795845752.5, end=None, reason="x")
    assert gap_msg_id(open_gap) == "porch:gap:1795845752.500000:open"
    assert gap_msg_id(open_gap.model_copy(update={"end": 1795845760.25})) == \
        "porch:gap:1795845752.500000:1795845760.250000"
