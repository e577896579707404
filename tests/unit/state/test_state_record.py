"""State records: generic counts, required aggregates only, dedup, retention."""

from __future__ import annotations

import orjson

from stream_app.events import Event
from stream_app.state import PairSpec, PropSpec, Requirements, Selector, StateUpdater, new_state
from stream_app.state.record import PAIR_CAP, day_of

T0 = 1_714_528_800_000  # 2024-05-01T10:00+08:00
DAY = 86_400_000


def ev(i, etype, ts, stream="click", **props):
    return Event(f"e{i}", "u1", ts, etype, stream, props=props)


def test_generic_counts_and_times_only():
    up = StateUpdater(Requirements())
    st = new_state("u1", "t1")
    up.apply(st, ev(1, "course_view", T0, channel="douyin"))
    up.apply(st, ev(2, "course_view", T0 - DAY))
    up.apply(st, ev(3, "order_paid", T0 + 5, "order", amount=10))
    d0 = day_of(T0, 8 * 3_600_000)
    assert st["d"] == {"course_view": [[d0 - 1, 1], [d0, 1]], "order_paid": [[d0, 1]]}
    assert st["n"] == {"course_view": 2, "order_paid": 1}
    assert st["f"]["course_view"] == T0 - DAY and st["l"]["course_view"] == T0
    assert (st["ft"], st["lt"], st["tenant"]) == (T0 - DAY, T0 + 5, "t1")
    assert st["st"] == {"course_view": "click", "order_paid": "order"}
    # nothing the rules did not ask for
    assert not {"s", "S", "mx", "fp", "lp", "dv", "pr", "sk", "sq", "rt"} & set(st)
    assert "douyin" not in orjson.dumps(st).decode()


def test_required_aggregates():
    req = Requirements()
    amount = PropSpec(Selector.parse("order_paid"), "amount")
    chan = PropSpec(Selector.parse("stream:click"), "channel")
    req.sums.add(amount)
    req.peaks.add(amount)
    req.firsts.add(chan)
    req.lasts.add(chan)
    req.profile.add("region")
    up = StateUpdater(req)
    st = new_state("u1")
    up.apply(st, ev(1, "order_paid", T0, "order", amount=30))
    up.apply(st, ev(2, "order_paid", T0 + 1, "order", amount=12.5))
    up.apply(st, ev(3, "order_paid", T0 + 2, "order", amount="n/a"))
    up.apply(st, ev(4, "ad_landing", T0 + 3, channel="b"))
    up.apply(st, ev(5, "ad_landing", T0 + 1, channel="a"))
    up.apply(st, ev(6, "registered", T0, "profile", region="bj", phone="1"))
    up.apply(st, ev(7, "page_view", T0 + 9, region="nope"))
    assert st["S"][amount.key] == 42.5 and st["mx"][amount.key] == 30
    assert st["fp"][chan.key][2] == "a" and st["lp"][chan.key][2] == "b"
    assert {k: v[2] for k, v in st["pr"].items()} == {"region": "bj"}


def test_streak_cap_and_reset():
    req = Requirements()
    spec = PairSpec(Selector.parse("lesson_missed"), Selector.parse("lesson_attended"))
    req.streaks.add(spec)
    up = StateUpdater(req)
    st = new_state("u1")
    for i in range(PAIR_CAP + 5):
        up.apply(st, ev(i, "lesson_missed", T0 + i, "study"))
    assert len(st["sk"][spec.key]["a"]) == PAIR_CAP
    up.apply(st, ev(99, "lesson_attended", T0 + 10, "study"))
    assert st["sk"][spec.key]["a"] == [T0 + i for i in range(11, PAIR_CAP + 5)]


def test_dedup_memory():
    up = StateUpdater(Requirements(), dedup_window=2)
    st = new_state("u1")
    for i in range(3):
        up.apply(st, ev(i, "x", T0))
    assert not up.seen(st, "e0") and up.seen(st, "e1") and up.seen(st, "e2")


def test_retention_per_type_follows_the_rules():
    req = Requirements()
    req.need_days(Selector.parse("order_paid"), 365)
    up = StateUpdater(req, retention_days=30)
    assert up.type_retention("order_paid", "order") == 365
    assert up.type_retention("course_view", "click") == 30
    st = new_state("u1")
    up.apply(st, ev(1, "order_paid", T0, "order"))
    up.apply(st, ev(2, "course_view", T0, "click"))
    up.prune(st, T0 + 100 * DAY)
    assert st["d"]["order_paid"] and "course_view" not in st["d"]
    assert st["n"] == {"order_paid": 1, "course_view": 1}     # lifetime counts stay
    # an event older than the retention is counted in lifetime totals only
    up.apply(st, ev(3, "course_view", T0 - 60 * DAY, "click"))
    assert "course_view" not in st["d"] and st["n"]["course_view"] == 2


def test_stream_buckets_kept_only_for_windowed_streams():
    req = Requirements()
    req.need_days(Selector.parse("stream:study|order_paid"), 30)
    up = StateUpdater(req)
    st = new_state("u1")
    up.apply(st, ev(1, "vle_quiz", T0, "study"))
    up.apply(st, ev(2, "vle_page", T0, "study"))
    up.apply(st, ev(3, "page_view", T0, "click"))
    d0 = day_of(T0, 8 * 3_600_000)
    assert st["ds"] == {"study": [[d0, 2]]}


def test_overlapping_sub_day_selectors_keep_one_timestamp():
    """Two sub-day windows whose selectors both match an event keep its time once (it was
    inserted once per matching selector, so each window counted the event twice)."""
    req = Requirements()
    req.recent |= {Selector.parse("page_view|course_view"), Selector.parse("stream:click")}
    req.recent_ms = 6 * 3_600_000
    up = StateUpdater(req)
    st = new_state("u1")
    up.apply(st, ev(1, "page_view", T0))
    up.apply(st, ev(2, "course_view", T0 + 5))
    up.apply(st, ev(3, "lesson_attended", T0 + 9, "study"))
    assert st["rt"] == {"page_view": [T0], "course_view": [T0 + 5]}


def test_moved_prop_aggregates():
    """apply() reports the one-value prop aggregates whose value an event changed (what the
    engine's prop guards read): an equal latest value or a later first value is no move."""
    req = Requirements()
    chan = PropSpec(Selector.parse("stream:click"), "channel")
    amount = PropSpec(Selector.parse("order_paid"), "amount")
    req.firsts.add(chan)
    req.lasts.add(chan)
    req.peaks.add(amount)
    req.distincts.add(amount)
    up = StateUpdater(req)
    st = new_state("u1")
    steps = [(ev(1, "page_view", T0, channel="a"), {"fp:" + chan.key, "lp:" + chan.key}),
             (ev(2, "page_view", T0 + 1, channel="a"), set()),
             (ev(3, "page_view", T0 + 2, channel="b"), {"lp:" + chan.key}),
             (ev(4, "page_view", T0 - 1, channel="c"), {"fp:" + chan.key}),
             (ev(5, "page_view", T0 + 3), set()),
             (ev(6, "order_paid", T0, "order", amount=10), {"mx:" + amount.key,
                                                             "dv:" + amount.key}),
             (ev(7, "order_paid", T0 + 1, "order", amount=5), {"dv:" + amount.key}),
             (ev(8, "order_paid", T0 + 2, "order", amount=10), set())]
    for e, want in steps:
        moved: set[str] = set()
        up.apply(st, e, moved)
        assert moved == want, e.event_id


def test_selector_extreme_and_total_equal_max_min_sum_over_resolve():
    """Selector.extreme (what since()/since_first() and the clock horizon read) and
    Selector.total (count()) give the max / min / sum over the types resolve() lists, for
    every kind of selector."""
    import random  # noqa: PLC0415

    rnd = random.Random(7)
    types = {"page_view": "click", "course_view": "click", "lesson_missed": "study",
             "order_paid": "order", "outcome": "label", "registered": "profile"}
    sels = [Selector.parse(t) for t in ("any", "stream:click", "order_paid|stream:study",
                                        "refund", "outcome|page_view", "stream:label",
                                        "course_view|order_paid")]
    for _ in range(300):
        st = {t: s for t, s in types.items() if rnd.random() < 0.7}
        times = {t: rnd.randrange(100) for t in st if rnd.random() < 0.8}
        for sel in sels:
            vals = [times[t] for t in sel.resolve(st) if t in times]
            assert sel.extreme(times, st, True) == (max(vals) if vals else None)
            assert sel.extreme(times, st, False) == (min(vals) if vals else None)
            assert sel.total(times, st) == sum(times.get(t, 0) for t in sel.resolve(st))


def test_sums_stay_writable_whatever_the_amounts():
    """Schema-valid amounts whose sum leaves 64-bit integers or the finite floats: the state
    still encodes (orjson raised, or wrote null that broke the next sum after a restart),
    the sum saturates as a float, and a null an earlier release wrote counts as 0."""
    from stream_app.state.codec import decode, encode

    amount = PropSpec(Selector.parse("order_paid"), "amount")
    req = Requirements()
    req.sums.add(amount)
    up = StateUpdater(req)
    for big, want in ((2**64 - 1, float(2 * (2**64 - 1))), (1e308, 1.7976931348623157e308),
                      (-(2**63), float(-(2**64)))):
        st = new_state("u1")
        up.apply(st, ev(1, "order_paid", T0, "order", amount=big))
        up.apply(st, ev(2, "order_paid", T0 + 1, "order", amount=big))
        assert st["S"][amount.key] == want
        back, _ = decode(encode(st))
        assert back["S"][amount.key] == want and back["s"][amount.key][0][1] == want
        up.apply(back, ev(3, "order_paid", T0 + 2, "order", amount=1))   # no TypeError
    st = new_state("u1")
    up.apply(st, ev(1, "order_paid", T0, "order", amount=5))
    st["S"][amount.key] = None
    st["s"][amount.key][-1][1] = None
    up.apply(st, ev(2, "order_paid", T0 + 1, "order", amount=7))
    assert st["S"][amount.key] == 7 and st["s"][amount.key][-1][1] == 7
