"""The OULAD converter on a tiny hand-made dataset with the original file layout."""

import gzip

import orjson
import pytest

from stream_app.events import Event
from stream_app.oulad.convert import VLE_FILE, convert, day_ts
from stream_app.scoring.config import load_scoring_config
from stream_app.scoring.registry import ModelRegistry
from stream_app.scoring.scorer import Scorer


def _csv(path, header, rows):
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write(",".join(f'"{h}"' for h in header) + "\n")
        for r in rows:
            f.write(",".join(f'"{v}"' for v in r) + "\n")


@pytest.fixture()
def events(tmp_path):
    src = tmp_path / "oulad"
    src.mkdir()
    _csv(src / "courses.csv.gz", ["code_module", "code_presentation", "module_presentation_length"],
         [["AAA", "2014J", "100"]])
    info_h = ["code_module", "code_presentation", "id_student", "gender", "region",
              "highest_education", "imd_band", "age_band", "num_of_prev_attempts",
              "studied_credits", "disability", "final_result"]
    _csv(src / "studentInfo.csv.gz", info_h, [
        ["AAA", "2014J", "1", "F", "Wales", "HE", "0-10%", "0-35", "0", "60", "N", "Pass"],
        ["AAA", "2014J", "2", "M", "Wales", "HE", "?", "0-35", "1", "120", "N", "Withdrawn"],
        ["AAA", "2014J", "3", "M", "Kent", "HE", "0-10%", "35-55", "0", "60", "N", "Fail"],
    ])
    _csv(src / "studentRegistration.csv.gz", ["code_module", "code_presentation", "id_student",
                                              "date_registration", "date_unregistration"],
         [["AAA", "2014J", "1", "-20", ""], ["AAA", "2014J", "2", "-5", "30"],
          ["AAA", "2014J", "3", "25", ""]])
    _csv(src / "assessments.csv.gz", ["code_module", "code_presentation", "id_assessment",
                                      "assessment_type", "date", "weight"],
         [["AAA", "2014J", "9", "TMA", "15", "20"]])
    _csv(src / "studentAssessment.csv.gz", ["id_assessment", "id_student", "date_submitted",
                                            "is_banked", "score"],
         [["9", "1", "14", "0", "80"], ["9", "2", "18", "0", "?"]])
    _csv(src / "vle.csv.gz", ["id_site", "code_module", "code_presentation", "activity_type",
                              "week_from", "week_to"],
         [["100", "AAA", "2014J", "resource", "", ""], ["101", "AAA", "2014J", "quiz", "", ""]])
    with gzip.open(src / VLE_FILE, "wt") as f:
        f.write("code_module,code_presentation,id_student,id_site,date,sum_click\n")
        f.write("AAA,2014J,1,100,3,4\nAAA,2014J,1,100,3,2\nAAA,2014J,1,101,3,1\n")
        f.write("AAA,2014J,2,100,12,7\n")
    out = tmp_path / "ev.jsonl.gz"
    counts = convert(src, out, presentations=("AAA-2014J",))
    with gzip.open(out) as f:
        evs = [orjson.loads(line) for line in f]
    return counts, evs


def test_checkpoints_only_for_learners_registered_then(events):
    _, evs = events
    cps = {(e["user_id"][-1], e["props"]["group"]) for e in evs if e["type"] == "checkpoint"}
    groups = lambda u: sorted(int(g.split("@")[1]) for uu, g in cps if uu == u)  # noqa: E731
    assert groups("1") == [10, 20, 40, 60, 80, 100]
    assert groups("2") == [10, 20]             # withdrew on day 30 (40% = day 40)
    assert groups("3") == [40, 60, 80, 100]    # registered on day 25 (20% = day 20)


def test_outcomes_and_when_they_are_known(events):
    _, evs = events
    out = {e["user_id"][-1]: e for e in evs if e["type"] == "outcome"}
    assert {u: e["props"]["value"] for u, e in out.items()} == {"1": 0, "2": 1, "3": 1}
    assert out["2"]["ts"] == day_ts("AAA-2014J", 30, 21)       # at the withdrawal
    assert out["1"]["ts"] == out["3"]["ts"] == day_ts("AAA-2014J", 101, 1)   # after the end
    last_cp = max(e["ts"] for e in evs if e["type"] == "checkpoint")
    assert last_cp < out["1"]["ts"]


def test_no_final_result_in_features_and_events_in_time_order(events):
    _, evs = events
    assert all("final_result" not in e["props"] for e in evs if e["stream"] != "label")
    assert [e["ts"] for e in evs] == sorted(e["ts"] for e in evs)
    reg = next(e for e in evs if e["type"] == "registered" and e["user_id"].endswith("-2"))
    assert "imd_band" not in reg["props"] and reg["props"]["studied_credits"] == 120


def test_daily_activity_by_type_and_submissions(events):
    counts, evs = events
    vle = {(e["user_id"][-1], e["type"]): e["props"]["clicks"] for e in evs
           if e["type"].startswith("vle_")}
    assert vle == {("1", "vle_resource"): 6, ("1", "vle_quiz"): 1, ("2", "vle_resource"): 7}
    sub = [e for e in evs if e["type"] == "assignment_submitted"]
    assert {e["user_id"][-1]: e["props"].get("score") for e in sub} == {"1": 80, "2": None}
    assert next(e for e in sub if e["user_id"].endswith("-1"))["props"]["days_late"] == -1
    assert counts["learners"] == 3 and counts["positives"] == 2


def test_the_checkpoint_sees_the_whole_day_and_withdrawal_excludes(events):
    _, evs = events
    # withdrawal (20:00) comes before that day's checkpoint (23:00) would
    assert day_ts("AAA-2014J", 30, 20) < day_ts("AAA-2014J", 30, 23)
    cp = next(e for e in evs if e["type"] == "checkpoint" and e["user_id"].endswith("-1"))
    vle = next(e for e in evs if e["type"] == "vle_resource" and e["user_id"].endswith("-1"))
    assert vle["ts"] < cp["ts"]


def test_outcomes_say_when_they_happened(events):
    """QA33 F3: a withdrawal's outcome names the unregistered event's time; the others the
    end of the course's last day, after its last checkpoint."""
    _, evs = events
    out = {e["user_id"][-1]: e for e in evs if e["type"] == "outcome"}
    unreg = next(e for e in evs if e["type"] == "unregistered")
    assert out["2"]["props"]["event_ts"] == unreg["ts"] == day_ts("AAA-2014J", 30, 20)
    end = day_ts("AAA-2014J", 101, 0)
    assert out["1"]["props"]["event_ts"] == out["3"]["props"]["event_ts"] == end
    assert max(e["ts"] for e in evs if e["type"] == "checkpoint") < end < out["1"]["ts"]


def test_no_training_pair_of_a_withdrawal_holds_the_withdrawal(events):
    """QA33 F3: replayed with the default ``--learn-from checkpoints,live``, no pair (and no
    gate pair) of any outcome contains the ``unregistered`` event."""
    _, evs = events
    cfg = load_scoring_config()
    sc = Scorer(cfg, ModelRegistry(cfg), alert_policy=None, targets=["at_risk"],
                learn_from=("checkpoints", "live"))
    states, pairs = {}, []
    for d in evs:
        e = Event(d["event_id"], d["user_id"], d["ts"], d["type"], d["stream"], d["tenant"],
                  d["props"])
        s = sc.on_event(states.get(e.user_id), e)
        states[e.user_id] = s.sc_state
        pairs += [(e.user_id[-1], t) for t in s.training]
    withdrew = [t for u, t in pairs if u == "2"]
    assert withdrew and sum(t.gate for t in withdrew) == 1 and all(t.y == 1 for t in withdrew)
    assert not any(k.startswith("unregistered") for _, t in pairs for k in t.x)


def test_a_file_of_another_converter_is_not_current(events, tmp_path):
    """``oulad eval`` converts again a file this converter did not write (session 30: one
    without the outcomes' event_ts was evaluated as is and gave stale gate figures)."""
    from stream_app.oulad.convert import is_current, stamp_of

    src = tmp_path / "oulad"
    out = tmp_path / "default.jsonl.gz"
    convert(src, out)                                   # the default choices: current
    assert is_current(out)
    assert not is_current(tmp_path / "ev.jsonl.gz")     # other presentations: not current
    stamp_of(out).write_bytes(b'{"converter": "an-older-one"}')
    assert not is_current(out)
    stamp_of(out).unlink()
    assert not is_current(out)                          # no stamp (before session 30)
