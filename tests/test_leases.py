"""Camera leases: who claims what (pure), and the lease rules over a real NATS KV bucket."""

import asyncio

import pytest

from spectare.core.leases import LeaseTable, plan_claims

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
    ],
)
def test_plan_claims(owners, mine, max_cameras, workers, long_free, count):
    picks = plan_claims(CAMS, owners, mine, max_cameras, workers, long_free)
    assert len(picks) == count
    assert not set(picks) & (set(owners) | mine), "never claims an owned camera"
    assert len(set(picks)) == len(picks)


async def test_lease_is_exclusive_renewable_and_expires(js, settings):
    a = await LeaseTable.open(js, settings, "ingest", "worker-a")
    b = await LeaseTable.open(js, settings, "ingest", "worker-b")
    other_role = await LeaseTable.open(js, settings, "segmenter", "worker-s")
    lease = await a.claim("porch")
    assert lease is not None and lease.token == lease.revision
    assert await b.claim("porch") is None, "held by a"
    assert await other_role.claim("porch") is not None, "roles lease independently"
    assert await a.renew("porch")
    assert (await b.owners()) == {"porch": "worker-a"}
    await a.announce()
    await b.announce()
    assert (await a.snapshot())[1] == 2
    # a stops renewing: within the TTL the lease is free, and b's claim gets a higher fencing token.
    await asyncio.sleep(a.ttl_s + 1.5)
    taken = await b.claim("porch")
    assert taken is not None and taken.token > lease.token
    assert not await a.renew("porch"), "a's stale lease must not come back"
    assert "porch" not in a.held
    await b.release("porch")
    assert await a.claim("porch") is not None, "a released lease is free at once"
