"""The benchmark's measuring method: the 2-worker CPU ceiling, per-process CPU from /proc,
event times re-stamped at produce time, and how the report judges the targets."""

from __future__ import annotations

import doctest
import os
import signal
import subprocess
import sys
import time

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench import ceiling, measure, report, run, systems, workload
from bench.measure import CpuProbe, cpu_window, machine_cpu_seconds, two_worker_ceiling
from bench.workload import WallStamper, event_time_speedup, event_ts, restamp


@pytest.mark.parametrize("module", [measure, workload, report, run, systems])
def test_bench_doctests(module):
    """The bench package is outside ``testpaths``: its examples run here."""
    failed, attempted = doctest.testmod(
        module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert attempted > 0 and failed == 0


# -- the 2-worker ceiling --------------------------------------------------------------------

@given(w=st.floats(100, 10_000), o=st.floats(0, 5_000))
def test_ceiling_is_2w_over_w_plus_o_when_one_worker_runs_at_its_thread_limit(w, o):
    c = two_worker_ceiling(1e6 / w, w + o, cores=2)
    assert c["ratio"] == pytest.approx(2 * w / (w + o), abs=2e-3)
    assert c["ratio"] <= 2.0 + 1e-9


def test_a_faster_worker_lowers_the_bound_and_outside_load_lowers_it_further():
    o = 450.0
    slow = two_worker_ceiling(1e6 / 1400, 1400 + o, cores=2)["ratio"]
    fast = two_worker_ceiling(1e6 / 700, 700 + o, cores=2)["ratio"]
    assert fast < slow < 1.6
    busy = two_worker_ceiling(1e6 / 1400, 1400 + o, cores=2, outside_cores=0.3)["ratio"]
    assert busy == pytest.approx(slow * 1.7 / 2, abs=2e-3)


def test_ceiling_of_reports_the_share_of_the_bound():
    one = {"eps": 800, "cpu": {"steady": {"us_per_event": {
        "worker-1": 1400.0, "tansu": 400.0, "redis-server": 40.0, "bench process": 10.0}}}}
    steady = {"us_per_event": {"worker-1": 700.0, "worker-2": 720.0, "tansu": 420.0,
                               "redis-server": 45.0, "bench process": 15.0},
              "outside_us_per_event": 200.0, "total_us_per_event": 2100.0,
              "idle_share": 0.01, "busy_cores": 1.98}
    c = run.ceiling_of(one, {"eps": 1100, "cpu": {"steady": steady}}, 2)
    assert c["eps"] == pytest.approx(2e6 / 2100, abs=0.1)
    assert c["ratio_bound"] == pytest.approx(2e6 / 2100 / 800, abs=1e-3)
    assert c["ratio_bound_machine_alone"] == pytest.approx(2e6 / 1900 / 800, abs=1e-3)
    assert c["workers_us_per_event"] == 1420.0
    assert c["ratio_bound_formula_1w_costs"] == pytest.approx(2 * 1400 / 1850, abs=1e-3)
    assert run.ceiling_of({"eps": 800}, {"eps": 1100, "cpu": {"steady": steady}}, 2)[
        "ratio_bound_formula_1w_costs"] is None
    assert c["measured_share_of_bound"] == pytest.approx(1100 / 800 / c["ratio_bound"],
                                                         abs=2e-3)


# -- CPU from /proc ----------------------------------------------------------------------------

def test_cpu_window_charges_each_process_and_the_rest_of_the_machine_per_event():
    a = (10.0, 100, {"w": 5.0, "b": 1.0}, (100.0, 50.0))
    b = (12.0, 1100, {"w": 6.5, "b": 1.2, "new": 0.1}, (104.0, 50.0))
    r = cpu_window(a, b)
    assert r["us_per_event"] == {"w": 1500.0, "b": 200.0, "new": 100.0}
    assert r["outside_us_per_event"] == pytest.approx(2200.0)
    assert r["total_us_per_event"] == 4000.0
    assert (r["idle_share"], r["busy_cores"], r["events"]) == (0.0, 2.0, 1000)


def test_machine_cpu_seconds_reads_proc_stat():
    busy, idle = machine_cpu_seconds()
    assert busy > 0 and idle >= 0
    later_busy, later_idle = machine_cpu_seconds()
    assert later_busy + later_idle >= busy + idle


def test_probe_counts_a_busy_grandchild_of_the_watched_process():
    """A wrapper (shell) whose child burns CPU: the wrapper's tree gets the CPU."""
    # the child burns until it is killed: a child that had exited would leave the live tree
    # (and its CPU with it) before the probe saw it, on a loaded machine
    code = "import time\nt = time.process_time()\nwhile time.process_time() - t < 30: pass\n"
    shell = subprocess.Popen(["/bin/sh", "-c", f"{sys.executable} -c '{code}'; sleep 5"],
                             start_new_session=True)
    try:
        probe = CpuProbe({"wrapper": shell.pid}, self_name=None)
        probe.snap(0)
        time.sleep(0.1)
        probe.snap(0)  # the python child is running by now
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            time.sleep(0.2)
            probe.snap(1000)
            if probe.snaps[-1][2]["wrapper"] >= 0.3:
                break
        r = probe.window(0, len(probe.snaps) - 1)
        # >= 0.3 s of CPU over 1000 events, though the shell itself is idle
        assert r["us_per_event"]["wrapper"] >= 300.0
        assert probe.index_at(1) == 2 and probe.index_at(10**9) == len(probe.snaps) - 1
    finally:
        os.killpg(shell.pid, signal.SIGKILL)   # the shell and its burning child
        shell.wait()


# -- event time at produce time ----------------------------------------------------------------

def test_restamp_moves_ts_and_the_labels_event_time_together_and_keeps_the_rest():
    ev = {"event_id": "e", "user_id": "u", "ts": 1_772_381_222_099, "type": "label",
          "props": {"event_ts": 1_772_381_000_000, "target": "convert", "value": 1}}
    out = orjson.loads(restamp(orjson.dumps(ev), 1_800_000_000_000))
    assert out["ts"] == 1_800_000_000_000
    assert out["props"]["event_ts"] == 1_800_000_000_000 - 222_099
    assert {k: v for k, v in out.items() if k not in ("ts", "props")} == \
        {k: v for k, v in ev.items() if k not in ("ts", "props")}
    assert orjson.loads(restamp(b'{"ts": 1, "props": {"minutes": 5}}', 9)) == \
        {"ts": 9, "props": {"minutes": 5}}


@given(walls=st.lists(st.floats(0, 1e6), min_size=1, max_size=50))
def test_wall_stamper_never_moves_back(walls):
    s = WallStamper(continue_from=(5_000_000, 100.0))
    ts = [orjson.loads(s(b'{"ts": 0}', w))["ts"] for w in walls]
    assert ts == sorted(ts)
    assert ts[0] == int(walls[0] * 1000) - 100_000 + 5_000_000


def test_wall_stamper_without_continuation_stamps_the_real_wall_clock():
    now = time.time()
    assert abs(orjson.loads(WallStamper()(b'{"ts": 0}', now))["ts"] - now * 1000) < 1


def test_speedup_of_the_simulator_records_and_of_restamped_ones():
    recs = [("events.click", b"u", orjson.dumps({"ts": i * 5_000}), f"e{i}")
            for i in range(101)]
    assert event_time_speedup(recs, rate=100.0) == 500.0  # 500 s of event time in 1 s
    s = WallStamper()
    live = [(t, k, s(v, 1000.0 + i / 100.0), e) for i, (t, k, v, e) in enumerate(recs)]
    assert event_time_speedup(live, rate=100.0) == pytest.approx(1.0, abs=0.02)
    assert event_ts(live[0]) == 1_000_000


class _FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    def produce(self, topic, key=None, value=None) -> None:  # noqa: ANN001
        self.sent.append((topic, value))

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        return 0


def test_pacer_stamps_each_value_with_its_own_send_time():
    recs = [("events.click", b"u", orjson.dumps({"ts": 1, "event_id": f"e{i}"}), f"e{i}")
            for i in range(30)]
    p = _FakeProducer()
    pacer = ceiling.Pacer(p, rate=300.0, stamp=WallStamper())
    pacer.run(recs)
    stamped = [orjson.loads(v) for _, v in p.sent]
    assert len(stamped) == 30
    for ev in stamped:
        assert ev["ts"] == int(pacer.sent_at[ev["event_id"]] * 1000)
    assert stamped[-1]["ts"] - stamped[0]["ts"] >= 50  # paced over ~100 ms, not at once


# -- the report --------------------------------------------------------------------------------

def _res(**extra):
    return {"date": "d", "mode": "quick", "command": "c", "seconds": 1, "errors": {},
            "machine": {"cpus": 2}, "workload": {}, "stream_app_1w": {"eps": 800},
            "stream_app_2w": {"eps": 1100}, **extra}


def test_latency_target_judges_the_realtime_mode_and_shows_the_replay_as_reference():
    lat = {"loads": {"50": {"broker": {"p99": 40.0},
                            "stream_app_replay": {"p99": 120.0, "event_time_speedup": 2100.0},
                            "stream_app_realtime": {"p99": 70.0}}}}
    ts = {t["target"]: t for t in report.targets(_res(latency=lat))}
    live = next(t for n, t in ts.items() if n.startswith("p99") and "real-time" in n)
    assert (live["value"], live["met"], live["reference"]) == (1.75, True, False)
    ref = next(t for n, t in ts.items() if "replayed ~2,100 x faster" in n)
    assert (ref["value"], ref["met"], ref["reference"]) == (3.0, False, True)
    md = report.markdown(_res(latency=lat), [])
    assert "| 50% | - | stream-app | replayed ~2,100 x faster than wall time |" in md
    assert "| reference: no |" in md


def test_the_passthrough_latency_is_shown_next_to_the_target_but_not_judged():
    lat = {"loads": {"50": {"broker": {"p99": 40.0},
                            "stream_app_realtime": {"p99": 130.0, "rate": 600},
                            "passthrough_realtime": {"p99": 100.0, "rate": 600}}}}
    ts = {t["target"]: t for t in report.targets(_res(latency=lat))}
    live = next(t for n, t in ts.items() if n.startswith("p99") and "real-time" in n)
    assert (live["value"], live["met"], live["reference"]) == (3.25, False, False)
    pt = next(t for n, t in ts.items() if "Faust pass-through" in n)
    assert (pt["value"], pt["met"], pt["reference"]) == (2.5, False, True)
    md = report.markdown(_res(latency=lat), [])
    assert "| 50% | 600 | Faust pass-through (decode + forward) | produce time (real-time) |" in md


def test_two_worker_rows_keep_the_target_and_add_the_ceiling():
    res = _res(two_worker_ceiling={"cores": 2, "ratio_bound": 1.31, "eps": 1050.0,
                                   "measured_share_of_bound": 1.05, "us_per_event_all": 1900,
                                   "ratio_bound_machine_alone": 1.5, "measured_ratio": 1.375,
                                   "us_per_event_benchmark": 1700, "idle_share_2w": 0.0})
    ts = report.targets(res)
    target = next(t for t in ts if t["target"] == "2 workers >= 1.6 x 1 worker")
    assert (target["value"], target["met"], target["reference"]) == (1.38, False, False)
    bound = next(t for t in ts if "ceiling" in t["target"] and "1.6" in t["target"])
    assert (bound["value"], bound["met"], bound["reference"]) == (1.31, False, True)
    summary = report.write(res, _tmp(), _tmp() / "R.md")
    assert "[reference: no]" in summary and "[NOT MET] 2 workers >= 1.6" in summary


def test_old_results_without_modes_are_still_judged():
    lat = {"loads": {"50": {"broker": {"p99": 40.0}, "stream_app": {"p99": 100.0}}}}
    t = next(t for t in report.targets(_res(latency=lat)) if t["target"].startswith("p99"))
    assert (t["value"], t["met"]) == (2.5, False)


def _tmp():
    import tempfile
    from pathlib import Path

    return Path(tempfile.mkdtemp())


def test_probe_does_not_charge_the_benchmarks_children_to_the_benchmark():
    """The services are children of the benchmark process: its own row must leave them out."""
    code = ("import time\nt = time.process_time()\nwhile time.process_time() - t < 0.5: pass\n"
            "time.sleep(10)\n")
    child = subprocess.Popen([sys.executable, "-c", code])
    try:
        probe = CpuProbe({"child": child.pid})
        probe.snap(0)
        deadline = time.monotonic() + 15
        while measure.cpu_seconds(child.pid) < 0.45 and time.monotonic() < deadline:
            time.sleep(0.1)
        probe.snap(1000)
        r = probe.window(0, 1)
    finally:
        child.kill()
        child.wait()
    assert r["us_per_event"]["child"] >= 400.0
    assert r["us_per_event"]["bench process"] < 300.0


@given(blocks=st.integers(1, 8))
def test_latency_blocks_alternate_and_balance_the_modes(blocks):
    order = run.block_order(blocks)
    assert order.count("replay") == order.count("realtime") == blocks
    assert all(a != b for a, b in zip(order[::2], order[1::2], strict=True))  # a pair each
    if blocks % 2 == 0:  # ABBA: the mean position of both modes is the same
        pos = {m: sum(i for i, x in enumerate(order) if x == m) for m in ("replay", "realtime")}
        assert pos["replay"] == pos["realtime"]


def test_one_latency_mode_alone_and_bad_modes_are_refused():
    assert run.block_order(3, ("realtime",)) == ["realtime"] * 3
    assert run.parse_args(["--latency-modes", "realtime"]).latency_mode_list == ("realtime",)
    assert run.parse_args([]).latency_mode_list == ("replay", "realtime")
    with pytest.raises(SystemExit):
        run.parse_args(["--latency-modes", "realtime,live"])


class _Sweeps:
    """A group lag whose clock sweeps sent ``sent`` ticks so far, one value per call."""

    def __init__(self, sent):
        self.sent = iter(sent)
        self.waits = 0

    def wait_zero(self, timeout):
        self.waits += 1

    def ticks(self):
        return next(self.sent)


def test_settle_waits_out_a_tick_burst_sweep_by_sweep():
    naps: list[float] = []
    lag = _Sweeps([0, 20_000, 40_000, 40_030])   # two full sweeps, then a quiet one
    run.settle(lag, 5.0, sleep=naps.append)
    assert naps == [5.5, 5.5, 5.5] and lag.waits == 4
    naps.clear()
    run.settle(_Sweeps([7, 7]), 5.0, sleep=naps.append)    # nothing due: one sweep
    assert naps == [5.5]
    naps.clear()
    run.settle(_Sweeps(range(0, 10**9, 1000)), 5.0, max_sweeps=4, sleep=naps.append)
    assert len(naps) == 4                                    # bounded


def test_merged_blocks_take_percentiles_over_all_samples():
    base = {"rate": 200, "achieved_rate": 200, "events": 100, "event_time_speedup": 1.0,
            "waited_for_idle_s": 0.5, "drained_s": 3.0, "machine": None}
    parts = [{**base, "values": [float(v) for v in range(0, 50)]},
             {**base, "values": [float(v) for v in range(50, 100)], "achieved_rate": 100}]
    m = run.merge_blocks(parts)
    assert (m["matched"], m["events"], m["blocks"]) == (100, 200, 2)
    assert m["p50"] == measure.percentiles(range(100))["p50"] == 49.5
    assert m["p99"] == pytest.approx(98.01)
    assert m["achieved_rate"] == 150
    assert m["machine"] == {"busy_cores": None, "idle_share": None, "outside_cores": None,
                            "broker_us_per_event": None, "worker_us_per_event": None}


def test_merged_blocks_keep_the_receipt_series_apart_from_the_publish_series():
    base = {"rate": 200, "achieved_rate": 200, "events": 2, "event_time_speedup": 1.0,
            "waited_for_idle_s": 0.0, "drained_s": 1.0, "machine": None}
    parts = [{**base, "values": [10.0, 20.0], "visible_values": [30.0, 40.0]},
             {**base, "values": [30.0], "visible_values": [90.0]}]
    m = run.merge_blocks(parts)
    assert m["p50"] == 20.0 and m["visible"]["p50"] == 40.0
    assert m["visible"]["p99"] == pytest.approx(89.0)
    assert "visible" not in run.merge_blocks([{**base, "values": [1.0]}])  # older results


def test_the_receipt_latency_is_shown_and_compared_but_not_judged():
    lat = {"loads": {"50": {"broker": {"p99": 40.0},
                            "stream_app_realtime": {"p99": 60.0, "rate": 600,
                                                    "visible": {"p50": 45.0, "p99": 100.0}}}}}
    ts = {t["target"]: t for t in report.targets(_res(latency=lat))}
    live = next(t for n, t in ts.items() if n.startswith("p99") and "real-time" in n)
    assert (live["value"], live["met"]) == (1.5, True)
    seen = next(t for n, t in ts.items() if "receipt" in n)
    assert (seen["value"], seen["met"], seen["reference"]) == (2.5, False, True)
    md = report.markdown(_res(latency=lat), [])
    assert "| 45 / 100 |" in md


def test_each_latency_point_records_broker_and_worker_cpu_per_event_and_the_report_shows_it():
    p = CpuProbe({}, self_name=None)
    p.snaps = [(0.0, 0, {"tansu": 1.0, "worker-1": 0.0, "worker-2": 0.5}, (10.0, 5.0)),
               (10.0, 100, {"tansu": 1.05, "worker-1": 0.02, "worker-2": 0.51}, (25.0, 10.0))]
    load = run._machine_load(p)
    assert load["broker_us_per_event"] == 500.0
    assert load["worker_us_per_event"] == 300.0     # both workers: 200 + 100
    lat = {"loads": {"50": {"broker": {"p99": 40.0, "machine": load},
                            "stream_app_realtime": {"p99": 60.0, "rate": 600,
                                                    "machine": {**load,
                                                                "broker_us_per_event": 950.0}}}}}
    md = report.markdown(_res(latency=lat), [])
    assert "| 500 / 300 |" in md and "| 950 / 300 |" in md


def test_a_pinned_latency_run_says_so_in_the_report():
    lat = {"loads": {"50": {"broker": {"p99": 40.0},
                            "stream_app_realtime": {"p99": 60.0, "rate": 600}}}}
    assert "pinned" not in report.markdown(_res(latency=lat), [])
    pinned = {**lat, "pinned": {"worker-1": [0], "tansu": [1]}}
    assert "pinned during these points (--latency-pin): {'worker-1': [0]" in report.markdown(
        _res(latency=pinned), [])


def test_each_realtime_block_is_judged_against_the_broker_block_before_it():
    broker = [{"p99": 40.0}, {"p99": 80.0}, {"p99": 0.0}]
    live = [{"p99": 60.0}, {"p99": 100.0}, {"p99": 5.0}]
    pairs = run.pair_ratios(broker, live)
    assert [p["ratio"] for p in pairs] == [1.5, 1.25, None]  # no division by a zero p99
    assert pairs[1] == {"broker_p99": 80.0, "realtime_p99": 100.0, "ratio": 1.25}


def test_the_block_pairs_are_shown_as_a_reference_with_how_many_met():
    lat = {"loads": {"50": {"broker": {"p99": 40.0},
                            "stream_app_realtime": {"p99": 90.0, "rate": 600},
                            "pairs": [{"ratio": 1.5}, {"ratio": 2.5}, {"ratio": 1.8}]}}}
    ts = {t["target"]: t for t in report.targets(_res(latency=lat))}
    live = next(t for n, t in ts.items() if n.startswith("p99") and "real-time" in n)
    assert (live["value"], live["met"]) == (2.25, False)   # the pooled verdict stays the target
    pair = next(t for n, t in ts.items() if "per block pair" in n)
    assert (pair["value"], pair["met"], pair["reference"]) == (1.8, True, True)
    assert "1.5, 2.5, 1.8 (within 2x in 2 of 3)" in pair["target"]


def test_broker_blocks_keep_their_quarters_and_the_report_lists_every_block():
    """The broker alone's p99 by quarter sits beside stream-app's, block by block: whether
    the broker's own tail grows within a block as stream-app's does (item 44)."""
    lat = [float(v) for v in range(1, 401)]              # a tail that grows with time
    quarters = measure.p99_over_time(lat)
    assert quarters == sorted(quarters) and quarters[0] < 100 < quarters[-1]
    blocks = [run._broker_block({"rate": 500, "achieved_rate": 500, "n": 400, "p99": 396.0,
                                 "values": lat, "p99_quarters": quarters, "machine": None}),
              run._broker_block({"rate": 500, "achieved_rate": 500, "n": 4, "p99": 4.0,
                                 "values": [1.0, 2.0, 3.0, 4.0],
                                 "p99_quarters": [1.0, 2.0, 3.0, 4.0], "machine": None})]
    m = run.merge_blocks(blocks)
    assert m["p99_quarters"] == [quarters, [1.0, 2.0, 3.0, 4.0]]
    live = {"p99": 60.0, "rate": 500, "p99_quarters": [[50.0, 55.0, 60.0, 70.0]]}
    md = report.markdown(_res(latency={"loads": {"50": {"broker": m,
                                                        "stream_app_realtime": live}}}), [])
    rows = [ln for ln in md.splitlines() if ln.startswith("| 50% |") and ln.count("/") == 3]
    assert rows == [
        f"| 50% | broker alone (producer -> consumer) | 1 | "
        f"{' / '.join(report._fmt(q) for q in quarters)} |",
        "| 50% | broker alone (producer -> consumer) | 2 | 1 / 2 / 3 / 4 |",
        "| 50% | stream-app (real time) | 1 | 50 / 55 / 60 / 70 |"]
    # an older result without quarters gets no table
    assert "by quarter of each block" not in report.markdown(
        _res(latency={"loads": {"50": {"broker": {"p99": 40.0}}}}), [])


def test_broker_layouts_default_to_the_inputs_judged_and_one_topic_as_reference():
    assert run.parse_args([]).broker_layouts == ("inputs", "one")
    assert run.parse_args(["--latency-broker-layout", "one"]).broker_layouts == ("one",)
    for bad in ("two", "inputs,inputs", ","):
        with pytest.raises(SystemExit):
            run.parse_args(["--latency-broker-layout", bad])


def test_the_target_uses_the_first_layout_and_the_other_is_a_reference_row():
    lat = {"broker_layouts": ["inputs", "one"], "broker": "fresh",
           "loads": {"50": {"broker": {"p99": 50.0, "p99_quarters": [[40.0, 45, 50, 55]]},
                            "broker_one": {"p99": 40.0, "p99_quarters": [[35.0, 38, 40, 44]]},
                            "stream_app_realtime": {"p99": 90.0, "rate": 600}}}}
    ts = report.targets(_res(latency=lat))
    target = next(t for t in ts if t["target"].startswith("p99 at 50%"))
    assert (target["value"], target["met"]) == (1.8, True)
    assert "input topics' layout" in target["target"]
    ref = next(t for t in ts if "every record to one topic" in t["target"])
    assert (ref["value"], ref["met"], ref["reference"]) == (2.25, False, True)
    md = report.markdown(_res(latency=lat), [])
    assert "Broker alone: each record to a copy of its own input topic" in md
    assert ("| 50% | broker alone, every record on one topic (reference) | 1 "
            "| 35 / 38 / 40 / 44 |") in md
    # a result from before the layouts: judged against its one broker block, no reference row
    old = {"loads": {"50": {"broker": {"p99": 40.0},
                            "stream_app_realtime": {"p99": 90.0, "rate": 600}}}}
    ts = report.targets(_res(latency=old))
    assert not any("one topic" in t["target"] or "layout" in t["target"] for t in ts)
    assert next(t for t in ts if t["target"].startswith("p99 at 50%"))["value"] == 2.25


def test_broker_blocks_merge_like_the_stream_app_blocks():
    a = run._broker_block({"rate": 500, "achieved_rate": 498, "n": 3, "p99": 1.0,
                           "values": [10.0, 20.0, 30.0], "machine": None})
    b = run._broker_block({"rate": 500, "achieved_rate": 502, "n": 1, "p99": 1.0,
                           "values": [40.0], "machine": None})
    m = run.merge_blocks([a, b])
    assert (m["matched"], m["events"], m["blocks"], m["achieved_rate"]) == (4, 4, 2, 499)
    assert m["p50"] == 25.0
