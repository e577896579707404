"""``stream-app why``: values read as docs/API.md "Command line" says (QA pass 28 F11: every
value was printed with ``str()``, ``0.6666666666666666`` and bare milliseconds), and
``--limit`` is 1..100 like the API's (F3: ``--limit 0``/``-5`` emptied the timeline and the
command then claimed Redis keeps none)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from stream_app.cli.why_cmd import command, why_lines
from stream_app.serving import store as store_mod


def test_why_lines_rounds_and_shows_durations() -> None:
    lines = why_lines({"rule": "a", "rule_version": 1, "values": {
        "since(lesson_attended)": 85585413, "since_first(order_paid)": 3 * 86_400_000,
        "attendance_rate": 2 / 3, "active_days(30d)": 4, "tag(intent)": "high"}})
    assert lines[1:] == ["value of    since(lesson_attended) = 85585413 ms (23.8 h)",
                         "value of    since_first(order_paid) = 259200000 ms (3 d)",
                         "value of    attendance_rate = 0.67",
                         "value of    active_days(30d) = 4",
                         "value of    tag(intent) = high"]


class OneEntry:
    """A store holding one why record and one timeline entry of u1/activity."""

    def __init__(self, url: str) -> None:
        pass

    def why(self, tenant: str, uid: str, tag_id: str) -> dict:
        return {"rule": "activity", "rule_version": 1, "values": {"attendance_rate": 2 / 3}}

    def tags(self, tenant: str, uid: str) -> dict:
        return {"activity": "high"}

    def timeline(self, tenant: str, uid: str, limit: int = 20) -> list[dict]:
        return [{"tag_id": "activity", "ts": 1714528800000, "old": None, "new": "high",
                 "reason": "x", "trigger": "e1", "rule_version": 1}]

    def exists(self, tenant: str, uid: str) -> bool:
        return True


@pytest.mark.parametrize("limit", ["0", "-5", "101"])
def test_limit_outside_1_to_100_is_refused(limit, monkeypatch) -> None:
    monkeypatch.setattr(store_mod, "ProfileStore", OneEntry)
    res = CliRunner().invoke(command, ["u1", "activity", "--limit", limit])
    assert res.exit_code == 2, res.output
    assert "Invalid value for '--limit'" in res.output
    assert "no timeline in Redis" not in res.output


def test_the_text_shows_the_rounded_value_and_the_timeline(monkeypatch) -> None:
    monkeypatch.setattr(store_mod, "ProfileStore", OneEntry)
    res = CliRunner().invoke(command, ["u1", "activity", "--limit", "1"],
                             env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "value of    attendance_rate = 0.67" in res.output
    assert '"high"' in res.output.split("timeline of activity")[1]


class NoWhy(OneEntry):
    """Why records off (``STREAM_APP_REDIS_WHY=off``), no timeline: only the value."""

    def why(self, tenant: str, uid: str, tag_id: str) -> None:
        return None

    def timeline(self, tenant: str, uid: str, limit: int = 20) -> list[dict]:
        return []


def test_a_held_tag_without_why_record_shows_its_value(monkeypatch) -> None:
    """QA28 F20: with why records off, `why` said the user has no record of a tag the user
    holds (the API answers the value with a null why); a tag not held is still an error."""
    monkeypatch.setattr(store_mod, "ProfileStore", NoWhy)
    res = CliRunner().invoke(command, ["u1", "activity"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert 'activity = "high"' in res.output and "STREAM_APP_REDIS_WHY=off" in res.output
    res = CliRunner().invoke(command, ["u1", "activity", "--json"])
    assert res.exit_code == 0 and '"why": null' in res.output, res.output
    res = CliRunner().invoke(command, ["u1", "intent"])
    assert res.exit_code == 1 and "has no record of tag 'intent'" in res.output, res.output


class OnlyInAcme(NoWhy):
    """u1 has a profile in tenant acme only."""

    def tags(self, tenant: str, uid: str) -> dict:
        return {"activity": "high"} if (tenant, uid) == ("acme", "u1") else {}

    def exists(self, tenant: str, uid: str) -> bool:
        return (tenant, uid) == ("acme", "u1")


@pytest.mark.parametrize("args", [["u1", "intent"], ["nobody_at_all", "activity", "--json"],
                                  ["u1", "activity", "--tenant", "globex"]])
def test_a_user_without_a_profile_in_the_tenant_is_said_so(args, monkeypatch) -> None:
    """QA30 F6: a user unknown in the tenant (a typo, or a user of another tenant asked
    without --tenant) was said to have "no record of tag", as if the user existed."""
    monkeypatch.setattr(store_mod, "ProfileStore", OnlyInAcme)
    res = CliRunner().invoke(command, args)
    tenant = args[args.index("--tenant") + 1] if "--tenant" in args else "default"
    assert res.exit_code == 1, res.output
    assert res.output.strip() == (f"Error: no profile for user {args[0]!r} in tenant "
                                  f"{tenant!r} (a user of another tenant: --tenant)")
    res = CliRunner().invoke(command, ["u1", "intent", "--tenant", "acme"])
    assert res.exit_code == 1
    assert "user 'u1' (tenant 'acme') has no record of tag 'intent'" in res.output


class KnownUserNoTag(OneEntry):
    """A known user holding nothing of the asked tag."""

    def why(self, tenant: str, uid: str, tag_id: str) -> None:
        return None

    def tags(self, tenant: str, uid: str) -> dict:
        return {"activity": "high"}

    def timeline(self, tenant: str, uid: str, limit: int = 20) -> list[dict]:
        return []


def test_a_mistyped_tag_id_is_told_apart_from_a_tag_not_held(monkeypatch) -> None:
    """QA38 F7: both said "has no record of tag ..."."""
    monkeypatch.setattr(store_mod, "ProfileStore", KnownUserNoTag)
    typo = CliRunner().invoke(command, ["u1", "intnet"])
    assert typo.exit_code == 1
    assert "not defined by the rules (did you mean 'intent'?)" in typo.output
    held = CliRunner().invoke(command, ["u1", "at_risk"])
    assert held.exit_code == 1
    assert "has no record of tag 'at_risk'" in held.output
