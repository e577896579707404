"""``stream-app dev`` checks every option before a service starts: a bad ``--inject`` or an
out-of-range number is one ``Error:`` line at once, not a thread's traceback after the ~15 s
start of the stack (QA M6: ``parse_injection`` ran in the producer thread)."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from stream_app.cli import main
from stream_app.cli.dev_cmd import _produce_simulation, build_simulator
from stream_app.services.stack import Stack


@pytest.mark.parametrize("args, says", [
    (["--inject", "bogus"], "Error: --inject: injection 'bogus': unknown kind 'bogus'"),
    (["--inject", "spike:start=abc"], "Error: --inject: injection 'spike:start=abc': start"),
    (["--inject", "lead_drop:start=1d"], "lead_drop needs channel="),
    (["--speed", "-1"], "Invalid value for '--speed': -1.0 is not in the range x>0"),
    (["--speed", "0"], "Invalid value for '--speed'"),
    (["--arrivals", "0"], "Invalid value for '--arrivals'"),
    (["--arrivals", "-5"], "Invalid value for '--arrivals'"),
    (["--warmup-days", "-1"], "Invalid value for '--warmup-days'"),
    (["--workers", "0"], "Invalid value for '--workers'"),
    (["--partitions", "0"], "Invalid value for '--partitions'"),
    (["--duration", "-1"], "Invalid value for '--duration'"),
    # QA28 F21: checked late (after the stack started) or not at all
    (["--inject", "lead_drop:channel=zzz,start=1d"], "unknown channel 'zzz'"),
    (["--inject", "funnel_collapse:step=nope,start=1d"], "unknown step 'nope'"),
    (["--duration", "nan"], "Invalid value for '--duration': 'nan' is not a finite number"),
    (["--speed", "inf"], "Invalid value for '--speed': 'inf' is not a finite number"),
    (["--arrivals", "nan"], "Invalid value for '--arrivals'"),
])
def test_bad_options_stop_dev_before_any_service_starts(args, says, tmp_path, monkeypatch,
                                                         capsys) -> None:
    built: list[object] = []
    monkeypatch.setattr(Stack, "__init__", lambda self, **kw: built.append(kw))
    monkeypatch.setattr(Stack, "start_services",
                        lambda self: pytest.fail("dev started services"))
    with pytest.raises(SystemExit) as stop:
        main(["dev", "--duration", "1", "--workdir", str(tmp_path / "dev"), *args])
    err = capsys.readouterr().err
    assert stop.value.code in (1, 2)
    assert says in err
    assert "Traceback" not in err
    assert built == []   # not even the stack (it cleans its work directory)


def test_the_simulator_is_built_from_the_options() -> None:
    sim = build_simulator(900.0, 7, ("spike:start=1d,duration=2h,factor=5",), warmup_days=0.5)
    assert sim.config.live.arrivals_per_day == 900.0
    assert sim.config.live.warmup_days == 0.5
    assert [i.kind for i in sim.injections] == ["spike"]


def test_a_simulator_that_fails_is_reported_not_raised_in_its_thread() -> None:
    class Broken:
        def live(self, **kw: object):
            raise RuntimeError("no more learners")

    class FakeStack:
        bootstrap = "127.0.0.1:1"

    failed: list[BaseException] = []
    t = threading.Thread(target=_produce_simulation,
                         args=(FakeStack(), Broken(), None, threading.Event(), Counter(), failed))
    t.start()
    t.join(30)
    assert [str(e) for e in failed] == ["no more learners"]


def test_dev_judges_far_future_events_against_its_simulated_clock(tmp_path, monkeypatch
                                                                  ) -> None:
    """QA29 F2: dev started its workers with STREAM_APP_MAX_FUTURE_MS=0 (no guard), so one
    event dated years ahead expired every user of the demo stack. Now the guard stays on,
    judged against the simulator's clock (its speed, from the stack's start)."""
    built: list[dict] = []

    class Started(Exception):
        pass

    def init(self, **kw):
        built.append(kw)
        raise Started

    monkeypatch.setattr(Stack, "__init__", init)
    with pytest.raises(Started):
        main(["dev", "--duration", "1", "--speed", "1440", "--workdir", str(tmp_path / "d")])
    env = built[0]["env"]
    assert "STREAM_APP_MAX_FUTURE_MS" not in env          # the default, one day, applies
    assert float(env["STREAM_APP_CLOCK_SPEED"]) == 1440.0
    import time  # noqa: PLC0415

    assert abs(int(env["STREAM_APP_CLOCK_ORIGIN_MS"]) - time.time() * 1000) < 60_000
