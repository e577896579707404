"""The CLI prints data literally (QA pass 28 F10, F12): user ids, tag ids, tag values and
dead-letter details are any text from events (``channel``, ``utm_campaign`` come from
landing-page URLs). Read as rich console markup, ``[/]`` crashed ``stream-app tags``/``why``
and stopped the whole ``stream-app dev`` stack (MarkupError), and ``[bold red]HACK[/]`` was
shown as ``HACK``. The fixed parts keep their styles."""

from __future__ import annotations

from collections import Counter, deque
from types import SimpleNamespace

import orjson
import pytest
from click.testing import CliRunner
from rich.console import Console

from stream_app.cli import dev_cmd
from stream_app.cli.tags_cmd import command as tags_command
from stream_app.cli.why_cmd import command as why_command
from stream_app.serving import store as store_mod

NASTY = ["[/]promo", "[bold red]HACK[/]", "x[/link]", "a\\", "a\\\\[b]", ":smile: [x]"]


class FakeStore:
    """ProfileStore over fixed data (no Redis)."""

    def __init__(self, user_id: str, tags: dict) -> None:
        self.user_id, self.tag_values = user_id, tags

    def __call__(self, url: str) -> FakeStore:
        return self

    def profile(self, tenant: str, uid: str) -> dict:
        return {f"tag:{k}": v for k, v in self.tag_values.items()} if uid == self.user_id else {}

    def tags(self, tenant: str, uid: str) -> dict:
        return dict(self.tag_values) if uid == self.user_id else {}

    def why(self, tenant: str, uid: str, tag_id: str) -> dict | None:
        value = self.tag_values.get(tag_id)
        return {"rule": tag_id, "rule_version": 1, "case": f"x = {value}",
                "values": {f"last(click.{value})": value}}

    def timeline(self, tenant: str, uid: str, limit: int = 20) -> list[dict]:
        return [{"tag_id": t, "ts": 1714528800000, "old": v, "new": v, "reason": v,
                 "trigger": v, "rule_version": 1} for t, v in self.tag_values.items()]


def _run(command, args: list[str], store: FakeStore, monkeypatch) -> str:
    monkeypatch.setattr(store_mod, "ProfileStore", store)
    res = CliRunner().invoke(command, args, env={"COLUMNS": "300"})
    assert res.exit_code == 0, (res.output, res.exception)
    assert "Traceback" not in res.output
    return res.output


@pytest.mark.parametrize("value", NASTY)
def test_tags_prints_values_and_user_id_literally(value, monkeypatch) -> None:
    user = f"u{value}1"
    out = _run(tags_command, [user], FakeStore(user, {"first_channel": value}), monkeypatch)
    assert f"{user} (default)" in out
    assert value in out


@pytest.mark.parametrize("value", NASTY)
def test_why_prints_values_and_user_id_literally(value, monkeypatch) -> None:
    user = f"u{value}1"
    store = FakeStore(user, {"last_campaign": value})
    out = _run(why_command, [user, "last_campaign"], store, monkeypatch)
    shown = orjson.dumps(value).decode()   # values as JSON, the API's spelling
    assert f"{user} (default) last_campaign = {shown}" in out
    assert f"value of    last(click.{value}) = {value}" in out
    assert f"matched     x = {value}" in out
    assert shown in out.split("timeline of last_campaign")[1]   # the table's cells


def test_why_keeps_the_header_bold(monkeypatch) -> None:
    monkeypatch.setattr(store_mod, "ProfileStore", FakeStore("u[/]1", {"a": "[/]x"}))
    res = CliRunner().invoke(why_command, ["u[/]1", "a"],
                             env={"COLUMNS": "300", "FORCE_COLOR": "1", "TERM": "xterm"})
    assert res.exit_code == 0, res.output
    assert "\x1b[1mu[/]1\x1b[0m" in res.output


DLQ = {"reason": "bad_ts", "detail": "bad_ts: ts '[/]2024-05-01T10:00:00' is not ISO-8601"}
CHANGE = {"user_id": "qa-[/]mk", "tag_id": "last_channel", "old": "douyin",
          "new": "[/]bilibili", "reason": "last(click.channel) [b]"}
ALERT = {"user_id": "[bold red]u1[/]", "score": 0.9, "reasons": [{"en": "x [/] y"}]}


def test_describe_shows_the_record_literally_and_styles_the_fixed_parts() -> None:
    dlq = dev_cmd._describe("events.dlq", DLQ)
    assert dlq.plain == "DLQ bad_ts: bad_ts: ts '[/]2024-05-01T10:00:00' is not ISO-8601"
    assert [(s.start, s.end, str(s.style)) for s in dlq.spans] == [(0, 3, "red")]
    change = dev_cmd._describe("tags.changes", CHANGE)
    assert change.plain == ("qa-[/]mk last_channel: douyin -> [/]bilibili  "
                            "(last(click.channel) [b])")
    assert [(change.plain[s.start:s.end], str(s.style)) for s in change.spans] == [
        ("qa-[/]mk", "cyan"), ("[/]bilibili", "bold")]
    alert = dev_cmd._describe("alerts.hot_lead", ALERT)
    assert alert.plain == "hot_lead [bold red]u1[/] score 0.90: x [/] y"
    assert [(alert.plain[s.start:s.end], str(s.style)) for s in alert.spans] == [
        ("hot_lead", "magenta")]


def test_plain_feed_prints_a_dlq_line_with_markup_and_goes_on() -> None:
    console = Console(width=200, record=True)
    feed = dev_cmd.PlainFeed(console, started=0.0, every_s=0.0)
    feed.alerts.append(dev_cmd._describe("events.dlq", DLQ))
    feed.alerts.append("a plain [/] line")
    feed.update(Counter(events=1, dlq=1), rate=1.0, now=10.0)
    text = console.export_text()
    assert "  DLQ bad_ts: bad_ts: ts '[/]2024-05-01T10:00:00' is not ISO-8601" in text
    assert "  a plain [/] line" in text


def test_the_live_table_renders_the_lines_literally() -> None:
    tag_feed = deque([dev_cmd._describe("tags.changes", CHANGE), "plain [/] text"])
    alert_feed = deque([dev_cmd._describe("events.dlq", DLQ),
                        dev_cmd._describe("alerts.hot_lead", ALERT)])
    console = Console(width=250, record=True)
    console.print(dev_cmd._render(Counter(events=5, **{"family:[/]x": 2}), tag_feed,
                                  alert_feed, 0.0, 1.0, workers="worker-[/]1 down"))
    text = console.export_text()
    for want in ("qa-[/]mk last_channel: douyin -> [/]bilibili", "plain [/] text",
                 "ts '[/]2024-05-01T10:00:00'", "hot_lead [bold red]u1[/] score 0.90",
                 "[/]x", "worker-[/]1 down"):
        assert want in text


def test_a_worker_notice_is_printed_literally() -> None:
    class Sup:
        def check(self) -> list[str]:
            return ["worker-[/]1 exited unexpectedly"]

    console, feed = Console(width=120, record=True), deque()
    dev_cmd._supervise(Sup(), console, feed)
    assert "worker-[/]1 exited unexpectedly" in console.export_text()
    assert feed[0].plain == "worker-[/]1 exited unexpectedly"
    assert str(feed[0].style) == "bold red"


def test_the_simulate_summary_takes_channel_names_literally(monkeypatch) -> None:
    from stream_app.cli import simulate_cmd

    console = Console(width=200, record=True)
    monkeypatch.setattr("rich.console.Console", lambda *a, **k: console)
    cfg = SimpleNamespace(channels={"[/]x": SimpleNamespace(zh="[b]渠道")})
    simulate_cmd._print_summary([{"channel": "[/]x", "people": 1, "leads": 1, "lead_rate": 1.0,
                                  "trials": 0, "buyers": 0, "conversion": 0.0,
                                  "dropped": 0}], cfg)
    assert "[/]x [b]渠道" in console.export_text()
