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
