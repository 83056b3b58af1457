"""Camera leases: who claims what and when (pure), and the lease and seat rules over a real NATS KV bucket."""

import asyncio

import pytest

from spectare.core.bus import ensure_topology
from spectare.core.leases import (
    RENEWALS_PER_TTL,
    LeaseTable,
    SeatMove,
    claims_wait,
    plan_adoptions,
    plan_claims,
    renew_interval,
    seat_move,
)

CAMS = {f"c{i}" for i in range(6)}


@pytest.mark.parametrize(
    ("owners", "mine", "max_cameras", "workers", "long_free", "count"),
    [
        ({}, set(), 10, 1, set(), 6),  # alone: take everything
        ({}, set(), 10, 2, set(), 3),  # two workers: fair share first
        ({}, set(), 2, 1, set(), 2),  # never above the maximum
        ({"c0": "w2", "c1": "w2", "c2": "w2"}, set(), 10, 2, set(), 3),
        ({"c0": "w2", "c1": "w2"}, {"c2", "c3", "c4"}, 10, 2, set(), 0),  # at its share already
        ({"c0": "w2", "c1": "w2"}, {"c2", "c3", "c4"}, 10, 2, {"c5"}, 1),  # c5 left free a round: take it
        ({"c0": "w2", "c1": "w2"}, {"c2", "c3", "c4"}, 3, 2, {"c5"}, 0),  # ...unless full
        ({c: "w2" for c in CAMS}, set(), 10, 2, set(), 0),  # nothing free
        # A dead worker's leases expired together with its seat: the survivor's share is everything.
        ({"c0": "w2", "c1": "w2", "c2": "w2"}, set(), 10, 1, set(), 3),
    ],
)
def test_plan_claims(owners, mine, max_cameras, workers, long_free, count):
    picks = plan_claims(CAMS, owners, mine, max_cameras, workers, long_free)
    assert len(picks) == count
    assert not set(picks) & (set(owners) | mine), "never claims an owned camera"
    assert len(set(picks)) == len(picks)


@pytest.mark.parametrize(
    ("owners", "mine", "max_cameras", "adopted"),
    [
        ({}, set(), 10, []),
        ({"c0": "me", "c1": "me", "c2": "w2"}, set(), 10, ["c0", "c1"]),  # a restart: ours come back, not w2's
        ({"c0": "me", "c1": "me"}, {"c1"}, 10, ["c0"]),  # held already: nothing to adopt
        ({"c0": "me", "c1": "me", "c2": "me"}, {"c5"}, 2, ["c0"]),  # never above the maximum
        ({"c0": "me", "gone": "me"}, set(), 10, ["c0"]),  # a camera no longer registered stays to expire
        ({"c0": "me-2"}, set(), 10, []),  # another id, however alike
    ],
)
def test_plan_adoptions(owners, mine, max_cameras, adopted):
    assert plan_adoptions(CAMS, owners, mine, "me", max_cameras) == adopted


@pytest.mark.parametrize(
    ("holder", "starting", "move"),
    [
        (None, True, SeatMove.TAKE),
        (None, False, SeatMove.TAKE),  # standing by, the seat came free: take it
        ("me", False, SeatMove.KEEP),
        ("me", True, SeatMove.KEEP),
        ("old", True, SeatMove.TAKE_OVER),  # a restart: the newest process wins the id
        ("new", False, SeatMove.STAND_BY),  # running and taken over: stand by, no ping-pong
    ],
)
def test_seat_move(holder, starting, move):
    assert seat_move(holder, "me", starting) is move


@pytest.mark.parametrize("ttl", [2.0, 5.0, 10.0, 120.0])
def test_renewals_leave_room_for_missed_rounds(ttl):
    assert renew_interval(ttl) * (RENEWALS_PER_TTL - 1) < ttl, "three missed renewals do not lose a lease"


async def test_lease_is_exclusive_renewable_and_expires(js, settings):
    a = await LeaseTable.open(js, settings, "ingest", "worker-a")
    b = await LeaseTable.open(js, settings, "ingest", "worker-b")
    other_role = await LeaseTable.open(js, settings, "segmenter", "worker-s")
    assert a.ttl_s == settings.leases.ttl_s == 5.0, "read from the bucket"
    lease = await a.claim("porch")
    assert lease is not None and lease.token == lease.revision
    assert await b.claim("porch") is None, "held by a"
    assert await b.adopt("porch") is None, "adopting is only for one's own id"
    assert await other_role.claim("porch") is not None, "roles lease independently"
    assert await a.renew("porch")
    assert (await b.owners()) == {"porch": "worker-a"}
    assert await a.take_seat(starting=True) is None
    assert await b.take_seat(starting=True) is None
    assert (await a.snapshot())[1] == 2
    # a stops renewing: within the TTL the lease is free, and b's claim gets a higher fencing token.
    await asyncio.sleep(a.ttl_s + 1.5)
    taken = await b.claim("porch")
    assert taken is not None and taken.token > lease.token
    assert not await a.renew("porch"), "a's stale lease must not come back"
    assert "porch" not in a.held
    await b.release("porch")
    assert await a.claim("porch") is not None, "a released lease is free at once"


def test_claims_wait_two_renewals_after_the_bucket_failed_to_answer():
    assert claims_wait(0.0, 5.0) and claims_wait(2 * renew_interval(5.0) - 0.1, 5.0)
    assert not claims_wait(2 * renew_interval(5.0), 5.0)
    assert not claims_wait(float("inf"), 5.0), "never failed: claims at once"


async def test_a_lease_expired_unrenewed_is_kept_unless_another_worker_held_it(js, settings):
    """What a NATS cluster electing the bucket's leader for longer than the TTL leaves: leases expired under
    their live owners."""
    a = await LeaseTable.open(js, settings, "ingest", "worker-a")
    b = await LeaseTable.open(js, settings, "ingest", "worker-b")
    kept, taken, released = [await a.claim(c) for c in ("kept", "taken", "released")]
    assert kept and taken and released
    await asyncio.sleep(a.ttl_s + 1.5)  # nobody could renew
    assert await a.owners() == {}
    assert await b.claim("taken") is not None
    assert await b.claim("released") is not None
    await b.release("released")
    assert await a.renew("kept"), "nobody took it: still a's"
    assert a.held["kept"].token == kept.token, "the same token: the recording under it goes on"
    assert await b.claim("kept") is None and (await b.owners())["kept"] == "worker-a"
    assert await a.renew("kept"), "and renewed as usual after"
    assert not await a.renew("taken"), "b holds it"
    assert not await a.renew("released"), "b held it in between: a's session is over"
    assert set(a.held) == {"kept"}


async def test_a_restart_with_the_same_id_adopts_at_a_new_token_and_fences_the_old(js, settings):
    old = await LeaseTable.open(js, settings, "ingest", "host-ingest-0")
    assert await old.take_seat(starting=True) is None
    held = await old.claim("door")
    assert held is not None
    # The same id in a new process: the seat is taken over, the lease adopted at a new revision.
    new = await LeaseTable.open(js, settings, "ingest", "host-ingest-0")
    assert await new.take_seat(starting=True) is None
    adopted = await new.adopt("door")
    assert adopted is not None and adopted.token > held.token, "a new token: a new session id"
    assert await new.adopt("door") is not None, "adopting again is a no-op change, still ours"
    # The old process, if it still lives, finds both taken and stands by: it holds nothing any more.
    assert not await old.renew("door")
    assert await old.keep_seat() == new.instance
    assert await old.take_seat(starting=False) == new.instance, "no ping-pong: it waits for the seat to be free"
    assert await new.keep_seat() is None and await new.renew("door")
    # refence: a task started again under a held lease gets a new token too.
    again = await new.refence("door")
    assert again is not None and again.token > adopted.token
    await new.withdraw()
    assert await old.take_seat(starting=False) is None, "a freed seat is taken by the one standing by"


async def test_ensure_topology_moves_the_lease_ttl_of_an_existing_bucket(js, settings):
    bucket = await js.key_value(settings.names.leases_bucket)
    assert (await bucket.status()).ttl == 5.0
    longer = settings.model_copy(update={"leases": settings.leases.model_copy(update={"ttl_s": 10.0})})
    await ensure_topology(js, longer)
    assert (await bucket.status()).ttl == 10.0
    table = await LeaseTable.open(js, longer, "ingest", "w")
    assert table.ttl_s == 10.0
    await ensure_topology(js, settings)
    assert (await bucket.status()).ttl == 5.0, "back to the default: workers renew for the TTL the bucket has"
