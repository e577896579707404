"""Channel family: first/last touch channel and campaign."""

from __future__ import annotations

from conftest import run


def test_first_and_last_touch(engine, make_event):
    st, _ = run(engine, [
        make_event("ad_landing", day=0, channel="douyin", campaign="spring"),
        make_event("course_view", day=1),
        make_event("ad_landing", day=2, channel="bilibili", campaign="may_day"),
    ])
    t = st["tags"]
    assert (t["first_channel"], t["last_channel"]) == ("douyin", "bilibili")
    assert (t["first_campaign"], t["last_campaign"]) == ("spring", "may_day")


def test_out_of_order_touch_is_placed_by_time(engine, make_event):
    st, _ = run(engine, [make_event("ad_landing", day=5, channel="baidu_sem")])
    st, ch = run(engine, [make_event("ad_landing", day=1, channel="wechat_mp")], st)
    assert st["tags"]["first_channel"] == "wechat_mp"
    assert st["tags"]["last_channel"] == "baidu_sem"
    assert [(c["tag_id"], c["old"], c["new"]) for c in ch if c["family"] == "channel"] == [
        ("first_channel", "baidu_sem", "wechat_mp")]


def test_utm_fallbacks(engine, make_event):
    st, _ = run(engine, [make_event("ad_landing", utm_source="douyin", utm_campaign="c1")])
    assert (st["tags"]["first_channel"], st["tags"]["last_campaign"]) == ("douyin", "c1")


def test_utm_source_fallback_and_no_channel(engine, make_event):
    st, _ = run(engine, [make_event("page_view")])
    assert "first_channel" not in st["tags"]
    st, _ = run(engine, [make_event("ad_landing", day=1, utm_source="moments")], st)
    assert st["tags"]["first_channel"] == "moments"


# -- first / last touch over two props (first(click.channel|utm_source)): the touch is the
#    click seen first / last in event time, whichever of the two props it carried ----------
def _channels(state):
    t = state["tags"]
    return tuple(t.get(k) for k in ("first_channel", "last_channel", "first_campaign",
                                    "last_campaign"))


def test_last_touch_is_the_latest_click_whichever_prop_it_carries(engine, make_event):
    # QA: a click with channel=A, later one with only utm_source=B: the last touch is B
    st, ch = run(engine, [
        make_event("ad_landing", day=0, channel="A", campaign="c_a"),
        make_event("ad_landing", day=1, utm_source="B", utm_campaign="c_b"),
    ])
    assert _channels(st) == ("A", "B", "c_a", "c_b")
    assert {(c["tag_id"], c["old"], c["new"], c["reason"]) for c in ch
            if c["trigger"] == "e2" and c["family"] == "channel"} == {
        ("last_channel", "A", "B", "changed"), ("last_campaign", "c_a", "c_b", "changed")}


def test_first_touch_is_the_earliest_click_whichever_prop_it_carries(engine, make_event):
    # QA: the first click had only utm_source=X, a later one channel=Y: the first touch is X
    st, _ = run(engine, [
        make_event("ad_landing", day=0, utm_source="X", utm_campaign="u1"),
        make_event("ad_landing", day=1, channel="Y", campaign="k1"),
    ])
    assert _channels(st) == ("X", "Y", "u1", "k1")


def test_late_click_is_placed_by_event_time_across_props(engine, make_event):
    st, _ = run(engine, [make_event("ad_landing", day=3, channel="baidu_sem")])
    # late: a utm-only click dated before it is the first touch, not the last
    st, ch = run(engine, [make_event("ad_landing", day=1, utm_source="moments")], st)
    assert _channels(st)[:2] == ("moments", "baidu_sem")
    assert [(c["tag_id"], c["old"], c["new"]) for c in ch if c["family"] == "channel"] == [
        ("first_channel", "baidu_sem", "moments")]
    # late: a utm-only click dated after it (the clock is later still) is the last touch
    st, _ = run(engine, [make_event("page_view", day=9)], st)
    st, ch = run(engine, [make_event("ad_landing", day=5, utm_source="douyin")], st)
    assert _channels(st)[:2] == ("moments", "douyin")
    # a late one between changes neither
    st, ch = run(engine, [make_event("ad_landing", day=2, channel="wechat_mp")], st)
    assert _channels(st)[:2] == ("moments", "douyin")
    assert not [c for c in ch if c["family"] == "channel"]


def test_a_click_with_both_props_gives_channel_and_one_with_neither_nothing(engine, make_event):
    st, _ = run(engine, [make_event("ad_landing", day=0, utm_source="u", channel="c")])
    assert _channels(st)[:2] == ("c", "c")       # the prop listed first, both ways
    st, ch = run(engine, [make_event("page_view", day=1, referrer="x")], st)
    assert _channels(st)[:2] == ("c", "c") and not [c for c in ch if c["family"] == "channel"]
    st, _ = run(engine, [make_event("ad_landing", day=2, utm_source="u2", channel="c2")], st)
    assert _channels(st)[:2] == ("c", "c2")


def test_same_millisecond_clicks_are_ordered_by_event_id(engine, make_event):
    st, _ = run(engine, [make_event("ad_landing", event_id="e2", channel="A"),
                         make_event("ad_landing", event_id="e1", utm_source="B")])
    assert _channels(st)[:2] == ("B", "A")


def test_a_channel_seen_again_after_another_touch_is_the_last_touch_again(engine, make_event):
    """The latest channel record keeps its value (A again) but passes the utm_source one
    (B): the rule must run although no record's value moved."""
    st, _ = run(engine, [make_event("ad_landing", day=0, channel="A"),
                         make_event("ad_landing", day=1, utm_source="B")])
    assert _channels(st)[:2] == ("A", "B")
    st, ch = run(engine, [make_event("page_view", day=2, channel="A")], st)
    assert _channels(st)[:2] == ("A", "A")
    assert [(c["tag_id"], c["old"], c["new"]) for c in ch] == [("last_channel", "B", "A")]
    # first touch, late: an earlier click re-asserting utm_source X passes channel Y
    st, _ = run(engine, [make_event("ad_landing", day=5, utm_source="X"),
                         make_event("ad_landing", day=3, channel="Y")], None)
    st, ch = run(engine, [make_event("ad_landing", day=2, utm_source="X")], st)
    assert _channels(st)[:2] == ("X", "X")
