"""bench.rounds and the report: the 1 worker / pass-through target judged on the median of
a run's alternating rounds."""

from __future__ import annotations

from bench import report, rounds, verdicts


def _pair(pt, one):
    return {"passthrough": {"eps": pt}, "stream_app_1w": {"eps": one}}


def _res(pairs):
    res = {"date": "d", **_pair(*pairs[0])}
    res["ratio_rounds"] = {"pairs": [_pair(*p) for p in pairs],
                           **rounds.summarize([_pair(*p) for p in pairs])}
    return res


def test_rounds_alternate_after_the_first():
    orders = [rounds.order(i) for i in range(1, 6)]
    assert orders[0] == ("passthrough", "stream_app_1w")
    assert all(a == tuple(reversed(b)) for a, b in zip(orders, orders[1:], strict=False))


def test_the_target_is_the_median_of_the_rounds_not_the_first_pair():
    res = _res([(1000, 480), (900, 470), (950, 500)])   # 0.48, 0.522, 0.526
    t = next(x for x in report.targets(res) if x["target"] == "1 worker >= 50% of pass-through")
    assert (t["value"], t["met"]) == (0.522, True)
    ref = next(x for x in report.targets(res) if "alternating rounds" in x["target"])
    assert ref["reference"] and ref["value"] == 0.48 and "met in 2 of 3" in ref["target"]


def test_a_single_round_is_judged_as_before():
    res = _res([(1000, 480)])
    t = next(x for x in report.targets(res) if x["target"] == "1 worker >= 50% of pass-through")
    assert (t["value"], t["met"]) == (0.48, False)
    assert not any("alternating rounds" in x["target"] for x in report.targets(res))


def test_verdicts_group_runs_with_and_without_rounds_under_one_target():
    runs = [_res([(1000, 400)]), _res([(1000, 480), (1000, 520), (1000, 530)])]
    v = verdicts.verdicts(runs)["1 worker >= 50% of pass-through"]
    assert (v["values"], v["met"]) == ([0.4, 0.52], 1)


def test_rounds_that_did_not_measure_are_left_out():
    s = rounds.summarize([_pair(1000, 500), _pair(0, 400), {"passthrough": {"eps": 900}}])
    assert (s["ratios"], s["rounds"], s["met"]) == ([0.5], 1, 1)


def test_the_phase_keeps_every_pair_next_to_the_summary(monkeypatch):
    from types import SimpleNamespace

    from bench import run

    rates = iter([5000, 10000, 9000, 4600])     # round 2: 1w first, round 3: pass-through
    monkeypatch.setattr(run, "single_throughput",
                        lambda args, recs, system, name: {"eps": next(rates),
                                                          "cpu_us_per_event": 1.0})
    res = {**_pair(10000, 4800)}
    run.phase_rounds(SimpleNamespace(ratio_rounds=3, n=10), SimpleNamespace(records=[]), res)
    rr = res["ratio_rounds"]
    assert [p["stream_app_1w"]["eps"] for p in rr["pairs"]] == [4800, 5000, 4600]
    assert [p["passthrough"]["eps"] for p in rr["pairs"]] == [10000, 10000, 9000]
    assert (rr["ratios"], rr["rounds"], rr["median"]) == ([0.48, 0.5, 0.511], 3, 0.5)


def test_two_workers_are_also_shown_against_the_median_one_worker_round():
    res = _res([(10000, 3500), (10000, 4200), (10000, 4100)])
    res["stream_app_2w"] = {"eps": 6150}
    rows = report.targets(res)
    t = next(x for x in rows if x["target"] == "2 workers >= 1.6 x 1 worker")
    assert (t["value"], t["met"]) == (1.76, True)          # against round 1 (3,500)
    ref = next(x for x in rows if "median one-worker round" in x["target"])
    assert ref["reference"] and (ref["value"], ref["met"]) == (1.5, False)   # 6,150 / 4,100
    assert "3,500, 4,200, 4,100" in ref["target"]
    # one round only: no such row
    single = _res([(10000, 3500)])
    single["stream_app_2w"] = {"eps": 6150}
    assert not any("median one-worker" in x["target"] for x in report.targets(single))
