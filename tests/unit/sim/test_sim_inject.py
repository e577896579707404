"""Injected anomalies show up in the counts and in the ground truth."""

from __future__ import annotations

import pytest

from stream_app.errors import ConfigError
from stream_app.sim import START, Simulator, load_sim_config, parse_injection
from stream_app.sim.rhythm import DAY_MS, HOUR_MS

from .fixtures import Run, make_run

INJECT = ("lead_drop:channel=douyin,start=4d,duration=4d",
          "funnel_collapse:step=trial_booked,start=10d,duration=3d",
          "spike:start=14d,duration=2h,factor=10")


@pytest.fixture(scope="module")
def injected() -> Run:
    return make_run(users=2500, days=18, seed=4, inject=INJECT)


def _count(run: Run, typ: str, lo: int, hi: int, channel: str | None = None) -> int:
    return sum(1 for e in run.events if e["type"] == typ and lo <= e["ts"] < hi
               and (channel is None or e["props"].get("channel") == channel))


def test_ground_truth_lists_the_windows(injected: Run) -> None:
    inj = injected.ground["injections"]
    assert [i["kind"] for i in inj] == ["lead_drop", "funnel_collapse", "spike"]
    assert inj[0]["start_ms"] == START + 4 * DAY_MS and inj[0]["end_ms"] == START + 8 * DAY_MS
    assert inj[0]["factor"] == pytest.approx(0.1)     # default from config/simulator.yaml
    assert inj[1]["step"] == "trial_booked" and inj[2]["factor"] == 10


def test_lead_drop_cuts_the_channels_lead_rate_only(injected: Run) -> None:
    def rate(channel: str, inside: bool) -> float:
        lo, hi = START + 4 * DAY_MS, START + 8 * DAY_MS
        people = [t for t in injected.truth.values() if t["channel"] == channel
                  and (lo <= t["arrival_ts"] < hi) == inside and t["spike"] is None]
        return sum(t["registered"] for t in people) / len(people)

    assert rate("douyin", True) < 0.25 * rate("douyin", False)
    assert rate("bilibili", True) > 0.6 * rate("bilibili", False)


def test_funnel_collapse_stops_the_step(injected: Run) -> None:
    lo, hi = START + 10 * DAY_MS, START + 13 * DAY_MS
    assert _count(injected, "trial_booked", lo, hi) == 0
    assert _count(injected, "trial_booked", lo - 3 * DAY_MS, lo) > 20
    assert _count(injected, "registered", lo, hi) > 100   # the rest of the funnel goes on


def test_spike_multiplies_arrivals(injected: Run) -> None:
    lo = START + 14 * DAY_MS
    spike = _count(injected, "ad_landing", lo, lo + 2 * HOUR_MS)
    before = [_count(injected, "ad_landing", lo - d * DAY_MS, lo - d * DAY_MS + 2 * HOUR_MS)
              for d in (1, 2, 3, 7)]
    assert spike > 5 * max(1.0, sum(before) / len(before)), (spike, before)
    tagged = [t for t in injected.truth.values() if t["spike"] == 2]
    assert len(tagged) > spike / 2


def test_parse_injection_forms_and_errors() -> None:
    a = parse_injection("spike:start=2026-03-05T12:00:00+08:00,duration=90m,channel=douyin")
    assert not a.relative and a.duration_ms == 90 * 60_000 and a.channel == "douyin"
    assert a.resolve(0).start_ms == a.start_ms
    b = parse_injection("funnel_collapse:start=36h")
    assert b.resolve(1000, default_factor=0.0, default_step="trial_booked").step == "trial_booked"
    for bad in ("lead_drop:start=1d", "spike:duration=1d", "spike:start=soon",
                "spike:start=1d,factor=-1", "spike:start=1d,colour=red"):
        with pytest.raises(ConfigError):
            parse_injection(bad)


@pytest.mark.parametrize("spec", ["lead_drop:channel=tiktok,start=1d",
                                  "funnel_collapse:step=teleport,start=1d"])
def test_unknown_channel_or_step_is_refused(spec: str) -> None:
    # when the simulator is built (session 27: `dev` builds it before any service starts;
    # it was found when the run began)
    with pytest.raises(ConfigError, match="unknown (channel 'tiktok'|step 'teleport')"):
        Simulator(load_sim_config(overrides={"users": 10}), injections=[parse_injection(spec)])
