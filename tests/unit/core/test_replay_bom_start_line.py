"""``stream-app replay`` (QA pass 28): a UTF-8 byte-order mark before the first line (files
saved by Windows tools) is not part of the event (F9: line 1 was skipped as "not JSON"), and
a ``--start-line`` past the end of the file is an error before anything is sent (F18: it
"delivered 0 events", exit 0)."""

from __future__ import annotations

import orjson
import pytest
from click.testing import CliRunner

from stream_app import kafka_io
from stream_app.cli.replay_cmd import command as replay
from stream_app.replay import iter_file
from tests.unit.core.test_replay_delivery import FakeProducer

EVENT = {"stream": "click", "event_id": "e1", "user_id": "u1", "ts": 1714528800000,
         "type": "course_view", "props": {}}
BOM = b"\xef\xbb\xbf"


@pytest.mark.parametrize("name", ["bom.jsonl", "bom.jsonl.gz"])
def test_a_leading_bom_is_not_part_of_the_first_line(tmp_path, name) -> None:
    import gzip

    body = BOM + orjson.dumps(EVENT) + b"\r\n" + orjson.dumps({**EVENT, "event_id": "e2"})
    path = tmp_path / name
    path.write_bytes(gzip.compress(body) if name.endswith(".gz") else body)
    lines = list(iter_file(path))
    assert [(n, doc["event_id"]) for n, _, doc in lines] == [(1, "e1"), (2, "e2")]
    assert lines[0][1] == orjson.dumps(EVENT)     # the raw line sent: without the mark


def test_a_bom_later_in_the_file_is_still_not_json(tmp_path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(orjson.dumps(EVENT) + b"\n" + BOM + orjson.dumps(EVENT) + b"\n")
    assert [doc is None for _, _, doc in iter_file(path)] == [False, True]


def test_replay_sends_the_first_line_of_a_file_with_a_bom(tmp_path, monkeypatch) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(BOM + orjson.dumps(EVENT) + b"\r\n")
    fake = FakeProducer()
    monkeypatch.setattr(kafka_io, "connected_producer", lambda bs, **kw: fake)
    monkeypatch.setattr(kafka_io, "topic_message_limit", lambda bs, topic, **kw: 1_048_588)
    res = CliRunner().invoke(replay, [str(path), "--quiet"])
    assert res.exit_code == 0, res.output
    assert fake.acked == ["e1"]


@pytest.mark.parametrize("start, lines", [(5, 2), (3, 2), (2, 1)])
def test_a_start_line_past_the_end_is_an_error_before_sending(tmp_path, monkeypatch,
                                                             start, lines) -> None:
    path = tmp_path / "two.jsonl"
    path.write_bytes(b"".join(orjson.dumps({**EVENT, "event_id": f"e{i}"}) + b"\n"
                              for i in range(lines)))

    def no_broker(*a: object, **k: object) -> None:
        raise AssertionError("connected to a broker")

    monkeypatch.setattr(kafka_io, "connected_producer", no_broker)
    res = CliRunner().invoke(replay, [str(path), "--quiet", "--start-line", str(start)])
    assert res.exit_code == 1, res.output
    what = "1 line" if lines == 1 else f"{lines} lines"
    assert f"Error: --start-line {start} is past the end of {path} ({what})" in res.output
