"""PIPL consent tags (config/rules/demographic.yaml ``marketing_consent`` /
``profiling_consent``, version 2) read every usual spelling of a grant or a refusal, in any
case and with blanks around it, and fail closed: a value present that reads as neither is a
refusal (false), never "not told" (null, which the alert policy does not take as a refusal).
Only a user no profile event told anything about is null (QA session 26, F10: "False",
"FALSE" and "N" gave null and the lead was sent to sales)."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import run

from stream_app.rules.compiler import lower_value

GRANTS: list[Any] = [True, 1, 1.0, "true", "True", "TRUE", " true ", "1", "yes", "Yes", "YES",
                     "y", "Y", "t", "T", "on", "On", "agree", "Agreed", "granted", "opt-in",
                     "是", "同意", "已同意", " 同意 ", "允许", "授权"]
REFUSALS: list[Any] = [False, 0, 0.0, "false", "False", "FALSE", " false\n", "0", "no", "No",
                       "NO", "n", "N", "f", "F", "off", "OFF", "disagree", "Refused", "denied",
                       "declined", "opt-out", "opt_out", "否", "拒绝", "不同意", "未同意", "不允许",
                       "不授权"]
#: present but unreadable: a refusal (fail closed)
UNREADABLE: list[Any] = ["", "  ", "maybe", "unknown", "ture", "flase", "nein", "2", 2, -1,
                         0.5, "yes please", "是的吧", [True], ["yes"]]
TAGS = [("marketing_consent", "consent_marketing"), ("profiling_consent", "consent_profiling")]


def _consent(engine, make_event, prop: str, value: Any, etype: str = "registered") -> Any:
    st, _ = run(engine, [make_event(etype, **{prop: value})])
    return st["tags"].get(dict((p, t) for t, p in TAGS)[prop])


@pytest.mark.parametrize(("tag", "prop"), TAGS)
@pytest.mark.parametrize("value", GRANTS, ids=repr)
def test_every_spelling_of_a_grant_is_true(engine, make_event, tag, prop, value) -> None:
    assert _consent(engine, make_event, prop, value) is True


@pytest.mark.parametrize(("tag", "prop"), TAGS)
@pytest.mark.parametrize("value", REFUSALS, ids=repr)
def test_every_spelling_of_a_refusal_is_false(engine, make_event, tag, prop, value) -> None:
    assert _consent(engine, make_event, prop, value) is False


@pytest.mark.parametrize(("tag", "prop"), TAGS)
@pytest.mark.parametrize("value", UNREADABLE, ids=repr)
def test_an_unreadable_consent_fails_closed(engine, make_event, tag, prop, value) -> None:
    assert _consent(engine, make_event, prop, value) is False


@pytest.mark.parametrize(("tag", "prop"), TAGS)
def test_not_told_is_null(engine, make_event, tag, prop) -> None:
    st, _ = run(engine, [make_event("registered", region="hz"),
                         make_event("profile_updated", day=1, goal="转行")])
    assert st["tags"].get(tag) is None
    assert _consent(engine, make_event, prop, None) is None     # JSON null: not told


@pytest.mark.parametrize(("tag", "prop"), TAGS)
def test_the_latest_answer_wins_whatever_its_spelling(engine, make_event, tag, prop) -> None:
    st, _ = run(engine, [make_event("registered", **{prop: "YES"}),
                         make_event("profile_updated", day=1, **{prop: "N"})])
    assert st["tags"][tag] is False
    st, _ = run(engine, [make_event("registered", **{prop: "N"}),
                         make_event("profile_updated", day=1, **{prop: "Yes"})])
    assert st["tags"][tag] is True
    st, _ = run(engine, [make_event("registered", **{prop: "yes"}),
                         make_event("profile_updated", day=1, **{prop: "perhaps"})])
    assert st["tags"][tag] is False       # a grant overwritten by an unreadable answer


@pytest.mark.parametrize(("tag", "prop"), TAGS)
def test_a_later_null_keeps_a_refusal_only_a_grant_lifts_it(engine, make_event, tag,
                                                          prop) -> None:
    """A profile event with the prop JSON null ("not told") used to replace a refusal with
    null, which the alert policy and the scorer do not take as a refusal (version 3)."""
    no = make_event("registered", **{prop: "no"})
    st, _ = run(engine, [no, make_event("profile_updated", day=1, **{prop: None})])
    assert st["tags"][tag] is False
    st, _ = run(engine, [no, make_event("profile_updated", day=1, **{prop: None}),
                         make_event("profile_updated", day=2, **{prop: "yes"})])
    assert st["tags"][tag] is True
    # a grant followed by null is "not told" again (nothing refused)
    st, _ = run(engine, [make_event("registered", **{prop: "yes"}),
                         make_event("profile_updated", day=1, **{prop: None})])
    assert st["tags"].get(tag) is None


def test_the_why_record_shows_the_raw_answer(engine, make_event) -> None:
    r = engine.on_event(None, make_event("registered", consent_marketing="Nope"))
    why = r.why["marketing_consent"]
    assert why["value"] is False and why["values"]["profile.consent_marketing"] == "Nope"


def test_lower_trims_and_lowercases_text_only() -> None:
    assert [lower_value(v) for v in (" FaLsE ", "否", 0, False, None, ["A"])] == [
        "false", "否", 0, False, None, ["A"]]
