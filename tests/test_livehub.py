"""A live viewer's queue (`spectare.api.livehub.Viewer`), without I/O: what a viewer is sent, in which order, when it
keeps up, falls behind, or a camera changes session."""

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from spectare.api.livehub import LiveMetrics, Skipped, StreamStart, Viewer
from spectare.media.fragments import Fragment

GOP = 5  # frames in each test GOP: a keyframe fragment of 1 frame, then groups


STARTS: dict[str, StreamStart] = {}


def start(session: str) -> StreamStart:
    """The one stream of each test session (a viewer tells streams apart by identity)."""
    if session not in STARTS:
        message = f'{{"type": "stream", "session": "{session}"}}'
        STARTS[session] = StreamStart(session, message, b"init-" + session.encode())
    return STARTS[session]


def fragment(session: str, seq: int, frames: int, size: int = 100) -> Fragment:
    return Fragment(session, seq, frames, seq % GOP == 0, bytes(size), tuple(float(seq + i) for i in range(frames)))


def gop(session: str, first: int) -> list[Fragment]:
    """A keyframe alone, then the rest of its GOP in one group, as ingest sends them."""
    return [fragment(session, first, 1), fragment(session, first + 1, GOP - 1)]


def drain(viewer: Viewer) -> list[str]:
    """What the sender would send now, as short labels."""
    out = []

    async def take() -> None:
        while viewer._items:  # noqa: SLF001 - a test reads the queue it filled
            item = await viewer.next()
            if isinstance(item, StreamStart):
                out.append(f"start {item.session}")
            elif isinstance(item, Skipped):
                out.append(f"skipped {item.frames}")
            else:
                assert item is not None
                out.append(f"{'key' if item.keyframe else 'delta'} {item.session}:{item.first_seq}")

    asyncio.run(take())
    return out


@pytest.fixture
def metrics() -> LiveMetrics:
    return LiveMetrics(CollectorRegistry())


def offer_all(viewer: Viewer, *fragments: Fragment) -> None:
    for f in fragments:
        viewer.offer(start(f.session), f)


def test_a_viewer_that_keeps_up_gets_its_init_once_then_every_fragment_in_order(metrics):
    viewer = Viewer("cam", 100, 10_000, metrics)
    offer_all(viewer, *gop("s1", 0))
    assert drain(viewer) == ["start s1", "key s1:0", "delta s1:1"]
    offer_all(viewer, *gop("s1", 5))
    assert drain(viewer) == ["key s1:5", "delta s1:6"]


def test_a_new_session_sends_a_new_init_before_its_first_keyframe(metrics):
    viewer = Viewer("cam", 100, 10_000, metrics)
    offer_all(viewer, *gop("s1", 0), *gop("s2", 0))
    assert drain(viewer) == ["start s1", "key s1:0", "delta s1:1", "start s2", "key s2:0", "delta s2:1"]


def test_a_stream_restarted_within_a_session_sends_its_init_again(metrics):
    viewer = Viewer("cam", 100, 10_000, metrics)
    offer_all(viewer, *gop("s1", 0))
    restarted = StreamStart("s1", '{"type": "stream", "session": "s1"}', b"init-s1-again")
    for f in gop("s1", 0):
        viewer.offer(restarted, f)
    assert drain(viewer) == ["start s1", "key s1:0", "delta s1:1", "start s1", "key s1:0", "delta s1:1"]


def test_a_session_is_never_started_mid_gop(metrics):
    viewer = Viewer("cam", 100, 10_000, metrics)
    offer_all(viewer, fragment("s1", 1, 4), *gop("s1", 5))
    assert drain(viewer) == ["start s1", "key s1:5", "delta s1:6"]


@pytest.mark.parametrize(("limit_frames", "limit_bytes"), [(5, 10_000), (100, 300)])
def test_a_viewer_that_falls_behind_skips_to_the_next_keyframe_and_is_told(metrics, limit_frames, limit_bytes):
    viewer = Viewer("cam", limit_frames, limit_bytes, metrics)
    # Nothing sent: GOP 0 fits, GOP 5's keyframe overflows, so the queue is dropped and GOP 5 starts afresh.
    offer_all(viewer, *gop("s1", 0), *gop("s1", 5))
    assert drain(viewer) == ["skipped 5", "start s1", "key s1:5", "delta s1:6"]
    assert metrics.skipped._value.get() == 5  # noqa: SLF001


def test_a_viewer_behind_mid_gop_waits_for_the_keyframe_counting_what_it_skips(metrics):
    viewer = Viewer("cam", 6, 10_000, metrics)
    offer_all(viewer, *gop("s1", 0))
    assert drain(viewer)[:1] == ["start s1"]  # the init reached the client
    offer_all(viewer, fragment("s1", 10, 1), fragment("s1", 11, 4), fragment("s1", 12, 4))  # 12 overflows
    offer_all(viewer, fragment("s1", 16, 1))  # a group of one; still waiting for a keyframe
    offer_all(viewer, *gop("s1", 20))
    # The queued 5 frames were dropped, the group of 4 that overflowed and the one of 1 were skipped too; the init
    # was already sent, so it is not sent again.
    assert drain(viewer) == ["skipped 10", "key s1:20", "delta s1:21"]


def test_an_init_dropped_before_it_was_sent_is_sent_again(metrics):
    viewer = Viewer("cam", 6, 10_000, metrics)
    offer_all(viewer, *gop("s1", 0), *gop("s2", 0), *gop("s2", 5))
    assert drain(viewer) == ["skipped 10", "start s2", "key s2:5", "delta s2:6"]


def test_a_notice_dropped_unsent_is_folded_into_the_next(metrics):
    viewer = Viewer("cam", 5, 10_000, metrics)
    offer_all(viewer, *gop("s1", 0), *gop("s1", 5))  # queued: skipped 5, start, GOP 5
    offer_all(viewer, *gop("s1", 10))  # behind again before anything was sent
    assert drain(viewer) == ["skipped 10", "start s1", "key s1:10", "delta s1:11"]


def test_a_fragment_larger_than_the_limits_still_goes_to_an_empty_queue(metrics):
    viewer = Viewer("cam", 2, 64, metrics)
    offer_all(viewer, fragment("s1", 0, 1, size=1000))
    assert drain(viewer) == ["start s1", "key s1:0"]


def test_an_ended_source_ends_the_viewer_after_what_was_queued(metrics):
    viewer = Viewer("cam", 100, 10_000, metrics)
    offer_all(viewer, *gop("s1", 0))
    viewer.end(1011, "live source failed (NoServersError)")

    async def take_all() -> list:
        return [await viewer.next() for _ in range(4)]

    items = asyncio.run(take_all())
    assert [type(i).__name__ for i in items] == ["StreamStart", "Fragment", "Fragment", "NoneType"]
    assert viewer.ended == (1011, "live source failed (NoServersError)")
