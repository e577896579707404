"""bench.first_events: the waves hold each held user's next and next-but-one events, and the
summary compares the variants wave by wave."""

from __future__ import annotations

from bench import first_events as fe


def _rec(user: str, n: int) -> tuple[str, bytes, bytes, str]:
    return ("events.click", user.encode(), str(n).encode(), f"e{n}")


def test_waves_take_the_first_two_events_of_held_users_only_in_order():
    recs = [_rec(u, i) for i, u in enumerate("axbaybcab")]
    w1, w2 = fe.waves(recs, {b"a", b"b", b"c"}, 10)
    # c has one event only: in neither wave; x and y are not held
    assert [(r[1], r[2]) for r in w1] == [(b"a", b"0"), (b"b", b"2")]
    assert [(r[1], r[2]) for r in w2] == [(b"a", b"3"), (b"b", b"5")]
    # every user of wave 1 is in wave 2 once, after its wave-1 event
    assert sorted(r[1] for r in w1) == sorted(r[1] for r in w2)


def test_waves_stop_at_the_user_limit():
    recs = [_rec(u, i) for i, u in enumerate("abcabc")]
    w1, w2 = fe.waves(recs, {b"a", b"b", b"c"}, 2)
    assert [r[1] for r in w1] == [b"a", b"b"] and [r[1] for r in w2] == [b"a", b"b"]


def test_summary_takes_medians_and_restart_over_warm():
    def run(v, eps, cpu):
        return {"variant": v, "wave1": {"eps": eps, "cpu_us_per_event": cpu, "note": "x"},
                "wave2": {"eps": 100, "cpu_us_per_event": 200}}

    runs = [run("restart", 40, 400), run("warm", 80, 200), run("restart", 60, 300),
            run("warm", 100, 220)]
    s = fe.summary(runs)
    assert s["median"]["restart"]["wave1"] == {"eps": 50, "cpu_us_per_event": 350}
    assert s["restart_over_warm"]["wave1"] == {"eps": 0.556, "cpu_us_per_event": 1.667}
    assert s["restart_over_warm"]["wave2"] == {"eps": 1.0, "cpu_us_per_event": 1.0}


def test_summary_of_one_variant_has_no_ratio():
    s = fe.summary([{"variant": "warm", "wave1": {"eps": 1}, "wave2": {"eps": 2}}])
    assert s["restart_over_warm"] == {} and s["median"]["warm"]["wave2"] == {"eps": 2}
