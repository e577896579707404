"""`stream-app dlq show` and `dlq export` on the real broker and worker: a dead-lettered
event is found with its reason and original value, exported as a replay line, fixed, sent
again with `stream-app replay`, and processed (QA40 F3: there was no documented way to read
or re-send dead letters)."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson
import pytest

from tests.helpers import T0, uid, wait_until

pytestmark = pytest.mark.integration


def _cli(stack, *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "stream_app", *args],
                         env={**os.environ, **stack.settings_env()}, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_a_dead_letter_is_shown_exported_fixed_and_sent_again(stack, harness, tags_reader,
                                                              tmp_path):
    marker = uid("dlqcmd")
    bad = {"event_id": f"{marker}-1", "user_id": marker, "ts": T0, "props": {}}  # no type
    harness.send("click", orjson.dumps(bad), key=marker)
    harness.send("click", b"not json " + marker.encode(), key=marker)

    def shown():
        lines = _cli(stack, "dlq", "show", "--json", "--last", "0", "--source", "click")
        recs = [orjson.loads(x) for x in lines.splitlines()]
        mine = [r for r in recs if marker in r["value_text"]]
        return mine if len(mine) == 2 else None

    mine = wait_until(shown, timeout=90, interval=2.0, what="2 dead letters in `dlq show`")
    assert sorted(r["reason"] for r in mine) == ["bad_json", "schema"]
    assert all(r["source_topic"] == "events.click" for r in mine)
    summary = _cli(stack, "dlq", "show", "--summary", "--reason", "schema")
    assert "schema" in summary and "bad_json" not in summary

    out = tmp_path / "dlq.jsonl"
    said = _cli(stack, "dlq", "export", str(out), "--source", "events.click")
    assert "not written" in said and "bad_json" in said      # the non-JSON one: counted
    docs = [orjson.loads(x) for x in out.read_bytes().splitlines()]
    ours = [d for d in docs if d.get("user_id") == marker]
    assert ours == [dict(bad, stream="click")]

    fixed = tmp_path / "fixed.jsonl"
    fixed.write_bytes(orjson.dumps(dict(ours[0], type="course_view")) + b"\n")
    _cli(stack, "replay", str(fixed), "--quiet")
    assert tags_reader.wait_for(timeout=90, user_id=marker)   # processed: tags changed
