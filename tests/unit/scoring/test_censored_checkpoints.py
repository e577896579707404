"""QA41 F4: `stream-app evaluate` evaluates only the checkpoints whose outcome window closed
before the file's end, and counts the others.

A checkpoint is resolved when its outcome arrives; an order comes soon (the simulator: one
minute after it), a lost lead's outcome 14 days after registration. Near a file's end only
the buyers' checkpoints were resolved, the rest dropped without a count, so the last weeks
of a file (the "warm model" block) were mostly positives: 1.00 positive in the last week
of a 60-day simulator file, precision at 0.6 0.25 over the run and 0.72 after the warm-up.
"""

from __future__ import annotations

import json

from click.testing import CliRunner

from stream_app.cli.evaluate_cmd import command
from stream_app.scoring.evaluate import evaluate_file

DAY = 86_400_000
T0 = 1_700_000_000_000
LEADS = 60          # lead i arrives on day i; even leads buy on day i + 2
END = T0 + 64 * DAY  # the file ends here: the outcomes of the last leads are not in it
QUIET = 5           # this lead never gets an outcome (a CRM that sent none)


def _lead_file(tmp_path):
    """Leads arriving daily, a ``d1`` checkpoint a day after arrival; buyers pay a day later,
    the others get ``convert = 0`` 14 days after arrival (the simulator's timing); the file
    is cut at day 64, so negatives after day 50 are missing."""
    rows = []
    for i in range(LEADS):
        u, t = f"u{i:02d}", T0 + i * DAY
        rows.append({"event_id": f"v{i}", "user_id": u, "ts": t, "stream": "click",
                     "type": "trial_booked" if i % 2 == 0 else "page_view", "props": {}})
        rows.append({"event_id": f"c{i}", "user_id": u, "ts": t + DAY, "stream": "label",
                     "type": "checkpoint", "props": {"target": "convert", "group": "d1"}})
        if i == QUIET:
            continue
        if i % 2 == 0:
            rows.append({"event_id": f"o{i}", "user_id": u, "ts": t + 2 * DAY,
                         "stream": "order", "type": "order_paid", "props": {"amount": 1}})
        else:
            rows.append({"event_id": f"n{i}", "user_id": u, "ts": t + 14 * DAY,
                         "stream": "label", "type": "outcome",
                         "props": {"target": "convert", "value": 0}})
    rows.append({"event_id": "end", "user_id": "bystander", "ts": END, "stream": "click",
                 "type": "page_view", "props": {}})
    rows = sorted((r for r in rows if r["ts"] <= END), key=lambda r: r["ts"])
    path = tmp_path / "leads.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _truth(first: int, last: int) -> tuple[int, int]:
    """(checkpoints, positives) of the leads ``first..last`` that have an outcome."""
    leads = [i for i in range(first, last + 1) if i != QUIET]
    return len(leads), sum(1 for i in leads if i % 2 == 0)


def test_late_checkpoints_are_left_out_and_counted(tmp_path) -> None:
    res = evaluate_file(_lead_file(tmp_path), "convert")
    cps = res["checkpoints"]
    # the delay is the data's: the longest checkpoint -> label time (a negative's 13 days)
    assert cps["label_delay"]["from"] == "data"
    assert cps["label_delay"]["groups"]["d1"]["days"] == 13.0
    assert cps["label_delay"]["groups"]["d1"]["horizon_ts"] == END - 13 * DAY
    # leads 0..50 (checkpoint on day <= 51): every outcome is in the file; 51..59 are not
    n, pos = _truth(0, 50)
    d1 = cps["groups"]["d1"]
    assert (d1["n"], d1["positives"]) == (n, pos)
    # leads 51..59: censored; the four buyers among them (52..58) were resolved, all positive
    assert (d1["censored"], d1["censored_resolved"], d1["censored_positives"]) == (9, 4, 4)
    assert d1["unresolved"] == 1     # the quiet lead: its window closed, no outcome came
    assert cps["all"]["n"] == n and cps["all"]["censored"] == 9


def test_the_warm_block_ends_at_the_horizon_too(tmp_path) -> None:
    """The old code's warm block (from half the span to the end) was leads 31..59 with the
    late buyers only: 14 positives of 24. It now stops at the horizon, at the truth's rate."""
    res = evaluate_file(_lead_file(tmp_path), "convert", warmup=0.5)
    late = res["checkpoints"]["after_warmup"]
    assert late["from_ts"] == T0 + 32 * DAY
    d1 = late["groups"]["d1"]
    n, pos = _truth(31, 50)            # checkpoints on days 32..51
    assert (d1["n"], d1["positives"]) == (n, pos) == (20, 10)
    assert d1["censored"] == 9 and d1["unresolved"] == 0


def test_a_given_label_delay_replaces_the_datas(tmp_path) -> None:
    res = evaluate_file(_lead_file(tmp_path), "convert", label_delay_days=20)
    cps = res["checkpoints"]
    assert cps["label_delay"]["from"] == "option"
    assert cps["label_delay"]["groups"]["d1"] == {"days": 20.0, "horizon_ts": END - 20 * DAY}
    n, pos = _truth(0, 43)             # checkpoints on days <= 44
    assert (cps["groups"]["d1"]["n"], cps["groups"]["d1"]["positives"]) == (n, pos)
    assert cps["groups"]["d1"]["censored"] == LEADS - 44


def test_groups_keep_their_own_delay_when_every_outcome_arrives(tmp_path) -> None:
    """OULAD-like: checkpoints at 10% and 100% of one course, outcomes at its end. A 10%
    checkpoint waits for the course's end, a 100% one a day; both are complete, so nothing
    is left out (one delay for all, the longest, would drop the 100% checkpoints)."""
    rows = []
    for i in range(20):
        u = f"s{i}"
        rows.append({"event_id": f"a{i}", "user_id": u, "ts": T0, "stream": "study",
                     "type": "lesson_attended" if i % 2 else "lesson_missed", "props": {}})
        for pct, day in ((10, 10), (100, 100)):
            rows.append({"event_id": f"c{i}-{pct}", "user_id": u, "ts": T0 + day * DAY,
                         "stream": "label", "type": "checkpoint",
                         "props": {"target": "at_risk", "group": f"AAA@{pct}"}})
        rows.append({"event_id": f"o{i}", "user_id": u, "ts": T0 + 101 * DAY,
                     "stream": "label", "type": "outcome",
                     "props": {"target": "at_risk", "value": i % 2}})
    path = tmp_path / "course.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cps = evaluate_file(path, "at_risk", learn_from=("checkpoints",))["checkpoints"]
    assert {g: d["days"] for g, d in cps["label_delay"]["groups"].items()} == {
        "AAA@10": 91.0, "AAA@100": 1.0}
    for g in ("AAA@10", "AAA@100"):
        assert (cps["groups"][g]["n"], cps["groups"][g]["censored"]) == (20, 0)


def test_the_command_prints_what_it_left_out(tmp_path) -> None:
    out = tmp_path / "r.json"
    path = _lead_file(tmp_path)
    res = CliRunner().invoke(command, [str(path), "-t", "convert", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "unresolved" in res.output and "censored" in res.output
    assert ("left out: 9 censored checkpoints (taken less than their label delay before the "
            "file's last event; 4 of them resolved, 4 positive), 1 unresolved") in res.output
    assert "label delay (the longest checkpoint-to-label time in the file): d1 13.0 days" \
        in res.output
    assert json.loads(out.read_text())["checkpoints"]["groups"]["d1"]["censored"] == 9
    res = CliRunner().invoke(command, [str(path), "-t", "convert", "--out", str(out),
                                       "--label-delay", "-1"])
    assert res.exit_code == 1
    assert "Error: --label-delay -1.0: a number of days, 0 or more" in res.output
