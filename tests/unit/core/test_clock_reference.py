"""HybridClock against the reference it was written from (``observe`` through ``now``): the
same answers for any sequence of observations, wall-clock steps and queries."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from stream_app.clock import HybridClock


class ReferenceClock(HybridClock):
    """``observe`` as first written: ``now(partition)``, then the update."""

    def observe(self, ts_ms: int, partition=0) -> None:
        now = self.now(partition)
        if now is None or ts_ms > now:
            self._parts[partition] = (ts_ms, self._wall())


OPS = st.lists(st.one_of(
    st.tuples(st.just("observe"), st.one_of(st.integers(0, 40), st.integers(0, 10**13)),
              st.sampled_from([0, 1, ("t", 2)])),
    st.tuples(st.just("wall"), st.one_of(st.integers(0, 9).map(lambda n: n / 1000),
                                         st.floats(0, 1000, allow_nan=False)), st.none()),
    st.tuples(st.just("revoke"), st.none(), st.sampled_from([0, 1, ("t", 2)]))), max_size=50)


@settings(max_examples=300, deadline=None)
@given(OPS)
def test_same_times_as_the_reference(ops) -> None:
    wall = [0.0]
    clocks = [HybridClock(wall=lambda: wall[0]), ReferenceClock(wall=lambda: wall[0])]
    for op, value, part in ops:
        for c in clocks:
            if op == "observe":
                c.observe(value, part)
            elif op == "revoke":
                c.revoke({part})
        if op == "wall":
            wall[0] += value
        a, b = ([c.now(), c.watermark(), c.now(0), c.now(1), c.now(("t", 2)),
                 sorted(map(str, c.partitions()))] for c in clocks)
        assert a == b


@settings(max_examples=300, deadline=None)
@given(OPS, st.one_of(st.integers(0, 20), st.integers(0, 10**7)))
def test_advance_is_now_then_observe_unless_late(ops, grace) -> None:
    """What the agent did before ``advance``: ``now(source)``, then ``observe`` unless the
    event is late."""
    wall = [0.0]
    new, ref = HybridClock(wall=lambda: wall[0]), ReferenceClock(wall=lambda: wall[0])
    for op, value, part in ops:
        if op == "observe":
            before = ref.now(part)
            if before is None or not value < before - grace:
                ref.observe(value, part)
            assert new.advance(value, part) == before
        elif op == "revoke":
            new.revoke({part})
            ref.revoke({part})
        else:
            wall[0] += value
        assert [new.now(), new.watermark(), new.now(0), new.now(1)] == \
            [ref.now(), ref.watermark(), ref.now(0), ref.now(1)]
