"""BusinessAggregator: windows, zeros for silent series, lateness, state, merging."""

from __future__ import annotations

import random

import pytest

from stream_app.business import BusinessAggregator, SeriesPoint, load_business_spec, merge_points
from stream_app.errors import ConfigError
from stream_app.events import Event

MIN = 60_000


def ev(t: str, ts: int, ch: str = "douyin", **props) -> Event:
    return Event(event_id=f"{t}{ts}", user_id="u", ts=ts, type=t, stream="x",
                 props={"channel": ch, **props})


@pytest.fixture
def spec():
    return load_business_spec()


def by(points: list[SeriesPoint], metric: str, channel: str = "douyin", window: str = "1m"):
    return {p.start_ms: p.value for p in points
            if p.metric == metric and p.channel == channel and p.window == window}


def test_counts_rates_and_revenue_per_minute(spec) -> None:
    agg = BusinessAggregator(spec)
    out: list[SeriesPoint] = []
    for i in range(8):
        out += agg.add(ev("registered", 10 + i))
    for i in range(2):
        out += agg.add(ev("trial_booked", 20 + i))
    out += agg.add(ev("trial_purchased", 30))
    out += agg.add(ev("order_paid", 40, amount=1999))
    out += agg.add(ev("lesson_attended", 50, ch="bilibili"))
    out += agg.add(ev("lesson_missed", 51, ch="bilibili"))
    out += agg.add(ev("lesson_missed", 52, ch="bilibili"))
    assert out == []  # nothing closed yet
    out += agg.advance(MIN + spec.windows["1m"].lateness_ms)
    assert by(out, "leads") == {0: 8.0}
    assert by(out, "lead_to_trial") == {0: 0.25}
    assert by(out, "trial_to_purchase") == {0: 0.5}
    assert by(out, "revenue") == {0: 1999.0}
    assert by(out, "attendance", "bilibili") == {0: pytest.approx(1 / 3)}
    assert by(out, "leads", "all") == {0: 8.0}
    assert not by(out, "leads", window="1h")  # hour still open


def test_silent_channel_yields_zero_points_not_gaps(spec) -> None:
    agg = BusinessAggregator(spec)
    agg.add(ev("registered", 0, "douyin"))
    out: list[SeriesPoint] = []
    for m in range(1, 6):  # only bilibili leads from minute 1 on
        out += agg.add(ev("registered", m * MIN, "bilibili"))
    out += agg.advance(10 * MIN)
    dy = by(out, "leads", "douyin")
    assert dy[0] == 1.0
    assert [dy[m * MIN] for m in range(1, 6)] == [0.0] * 5


def test_late_event_is_dropped_and_counted(spec) -> None:
    agg = BusinessAggregator(spec)
    agg.add(ev("registered", 0))
    agg.advance(5 * MIN)
    agg.add(ev("registered", 10))  # its minute closed, its hour is open
    assert agg.late == 1
    out = agg.advance(2 * 3600_000)
    assert by(out, "leads", window="1h")[0] == 2.0


def test_unknown_channel_and_type(spec) -> None:
    agg = BusinessAggregator(spec)
    agg.add(ev("registered", 0, ch="spam-network-42"))
    agg.add(ev("some_new_type", 1))
    agg.add(Event(event_id="e", user_id="u", ts=2, type="registered", stream="profile"))
    agg.add(ev("lesson_attended", 3), channel="wechat_oa")  # user's first-touch channel
    out = agg.advance(10 * MIN)
    assert by(out, "leads", "other")[0] == 1.0
    assert by(out, "leads", "unknown")[0] == 1.0
    assert by(out, "attendance", "wechat_oa") == {0: 1.0}  # no rate point without denominator
    assert by(out, "leads", "all")[0] == 2.0


def test_snapshot_restore_continues_identically(spec) -> None:
    rng = random.Random(3)
    events = sorted((ev(rng.choice(["registered", "trial_booked", "order_paid"]),
                        rng.randrange(0, 30 * MIN), rng.choice(["douyin", "bilibili"]),
                        amount=10) for _ in range(400)), key=lambda e: e.ts)
    a, b = BusinessAggregator(spec), BusinessAggregator(spec)
    out_a: list[SeriesPoint] = []
    out_b: list[SeriesPoint] = []
    for i, e in enumerate(events):
        out_a += a.add(e)
        out_b += b.add(e)
        if i == 200:
            c = BusinessAggregator(spec)
            c.restore(__import__("orjson").loads(__import__("orjson").dumps(b.snapshot())))
            b = c
    out_a += a.advance(3 * 3600_000)
    out_b += b.advance(3 * 3600_000)
    assert out_a == out_b and len(out_a) > 100


def test_partials_of_two_workers_merge_to_the_whole(spec) -> None:
    rng = random.Random(7)
    events = sorted((ev(rng.choice(["registered", "trial_booked"]), rng.randrange(0, 5 * MIN))
                     for _ in range(300)), key=lambda e: e.ts)
    whole, w1, w2 = (BusinessAggregator(spec) for _ in range(3))
    for i, e in enumerate(events):
        whole.add(e)
        (w1 if i % 2 else w2).add(e)
    end = 10 * MIN
    expect = {(p.key, p.start_ms): p.value for p in whole.advance(end)}
    merged = {(p.key, p.start_ms): p.value
              for p in merge_points(w1.advance(end) + w2.advance(end))}
    assert merged == pytest.approx(expect)


def test_long_silence_skips_instead_of_flooding(spec) -> None:
    agg = BusinessAggregator(spec, max_gap_windows=30)
    agg.add(ev("registered", 0))
    out = agg.advance(30 * 24 * 3600_000)  # a month later
    per_series = len(by(out, "leads"))
    assert 1 <= per_series <= 32


def test_bad_spec_is_a_config_error(tmp_path) -> None:
    p = tmp_path / "a.yaml"
    p.write_text("business:\n  steps: {registered: lead}\n  windows: {1m: {size_s: 60}}\n"
                 "  rates: {x: {num: nope, den: [lead]}}\n")
    with pytest.raises(ConfigError, match="nope"):
        load_business_spec(p)


def test_without_zeros_the_nonzero_points_are_the_same(spec) -> None:
    """The worker's partial aggregators skip zero points (the merger fills them)."""
    rng = random.Random(7)
    types = ["registered", "trial_booked", "order_paid", "lesson_missed", "page_view"]
    events = [ev(rng.choice(types), ts, rng.choice(["douyin", "bilibili", "wechat"]),
                 amount=rng.randint(1, 500))
              for ts in sorted(rng.randint(0, 90 * MIN) for _ in range(400))]
    full, lean = BusinessAggregator(spec), BusinessAggregator(spec, zeros=False)
    got_full: list[SeriesPoint] = []
    got_lean: list[SeriesPoint] = []
    for e in events:
        got_full += full.add(e)
        got_lean += lean.add(e)
    got_full += full.advance(200 * MIN)
    got_lean += lean.advance(200 * MIN)
    nonzero = [p for p in got_full if p.num or p.den]
    assert nonzero and sorted(map(repr, nonzero)) == sorted(
        repr(p) for p in got_lean if p.kind != "rate" or p.den)
    assert len(got_lean) < len(got_full)   # the zeros were never built
    # a partial also keeps a rate's numerator without its denominator (another partition
    # may hold the denominator), and nothing else
    assert all(p.num or p.den for p in got_lean)
    assert any(p.kind == "rate" and not p.den for p in got_lean)


def test_without_zeros_runs_of_empty_windows_close_at_once(spec) -> None:
    """Jumps of event time (a compressed replay) close the non-empty windows, in order, and
    skip the empty ones without a step per window; the points equal the zeros mode's."""
    rng = random.Random(11)
    ts, events = 0, []
    for _ in range(600):
        ts += rng.choice([1_000, 20_000, 7 * MIN, 5 * 3600_000])
        events.append(ev(rng.choice(["registered", "ad_landing", "trial_booked"]), ts,
                         rng.choice(["douyin", "bilibili"])))
    full, lean = BusinessAggregator(spec), BusinessAggregator(spec, zeros=False)
    got_full: list[SeriesPoint] = []
    got_lean: list[SeriesPoint] = []
    for i, e in enumerate(events):
        got_full += full.add(e)
        got_lean += lean.add(e)
        if i == 300:   # restored state continues identically
            lean2 = BusinessAggregator(spec, zeros=False)
            lean2.restore(__import__("orjson").loads(__import__("orjson").dumps(lean.snapshot())))
            lean = lean2
    got_full += full.advance(ts + 2 * 3600_000)
    got_lean += lean.advance(ts + 2 * 3600_000)
    nonzero = [p for p in got_full if p.num or p.den]
    assert len(nonzero) > 500
    assert [repr(p) for p in nonzero] == [repr(p) for p in got_lean
                                           if p.kind != "rate" or p.den]
    # per window kind, oldest first
    for w in spec.windows:
        starts = [p.start_ms for p in got_lean if p.window == w]
        assert starts == sorted(starts)


def test_an_unlisted_tenant_is_folded_into_other_and_logged_once(spec, monkeypatch,
                                                                 caplog) -> None:
    """QA F6: a tenant missing from labels.tenants counts as "other", with one warning per
    tenant per process naming it and the config key."""
    from stream_app.business import spec as spec_module

    monkeypatch.setattr(spec_module, "_unlisted_tenants", set())
    agg = BusinessAggregator(spec, zeros=False)
    caplog.set_level("WARNING", logger="stream_app.business.spec")
    for i, tenant in enumerate(["acme", "default", "acme", "beta", "acme"]):
        e = ev("registered", 1_000 + i)
        e.tenant = tenant
        agg.add(e)
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 2 and "'acme'" in warned[0] and "'beta'" in warned[1]
    assert all("labels.tenants in config/anomaly.yaml" in w for w in warned)
    pts = agg.add(ev("page_view", 10 * MIN))
    leads = {p.tenant: p.num for p in pts if p.key[0] == "leads" and p.channel == "all"
             and p.window == "1m"}
    assert leads == {"default": 1, "other": 4}
