"""Restart decisions of the local stack's supervisor, with a fake clock (pure logic)."""

import pytest

from spectare.local.supervisor import RestartPolicy, Supervised, Supervisor


@pytest.mark.parametrize(
    ("failures", "delay"), [(0, 0.0), (1, 0.0), (2, 1.0), (3, 2.0), (4, 4.0), (6, 16.0), (7, 30.0), (50, 30.0)]
)
def test_first_restart_is_immediate_then_backoff_doubles_up_to_the_cap(failures, delay):
    assert RestartPolicy(first_delay_s=1, max_delay_s=30).delay(failures) == delay


@pytest.mark.parametrize(("failures", "ran_for", "after"), [(0, 1, 1), (3, 5, 4), (3, 60, 1), (9, 3600, 1)])
def test_a_healthy_spell_resets_the_backoff(failures, ran_for, after):
    assert RestartPolicy(healthy_after_s=60).failures_after(failures, ran_for) == after


class FakeChild:
    def __init__(self):
        self.running = False
        self.starts = 0

    def start(self):
        self.running = True
        self.starts += 1

    def stop(self):
        self.running = False


def test_dead_child_restarts_after_backoff_and_stop_is_reverse_order():
    now = [100.0]
    supervisor = Supervisor(RestartPolicy(first_delay_s=1, max_delay_s=8, healthy_after_s=60), clock=lambda: now[0])
    order = []
    children = {name: FakeChild() for name in ("nats", "s3", "ingest")}
    for name, child in children.items():
        supervisor.start(Supervised(name, child.start, lambda c=child: c.running,
                                    lambda n=name, c=child: (order.append(n), c.stop())))
    ingest = children["ingest"]
    ingest.running = False  # the first death after starting: restarted in the same poll
    supervisor.poll()
    assert ingest.starts == 2
    for expected_delay in (1.0, 2.0, 4.0, 8.0, 8.0):
        ingest.running = False  # it crashes right after starting
        starts = ingest.starts
        supervisor.poll()  # notices the death, schedules the restart
        now[0] += expected_delay - 0.01
        supervisor.poll()
        assert ingest.starts == starts, "restarted before its back-off elapsed"
        now[0] += 0.02
        supervisor.poll()
        assert ingest.starts == starts + 1
    assert children["nats"].starts == 1 and children["s3"].starts == 1
    supervisor.stop_all()
    assert order == ["ingest", "s3", "nats"]
    assert not any(c.running for c in children.values())
