"""``stream-app agents`` lists the agents and every topic each one reads (QA L6: Faust's own
``agents`` command stopped with ``ValueError: Topic with multiple topic names cannot be
identified`` on the ``process`` agent, which reads all inputs from one subscription)."""

from __future__ import annotations

from stream_app.cli import main
from stream_app.contract import load_contract


def test_agents_lists_every_topic_of_each_agent(capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")   # one line per agent
    main(["agents"])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    rows = {line.split("│")[1].strip(): line for line in out.splitlines()
            if line.count("│") >= 3}
    assert set(rows) >= {"process", "trainer", "anomaly"}
    for topic in (*load_contract().input_topics(), "internal.ticks"):
        assert topic in rows["process"], topic
    assert "scoring.training" in rows["trainer"]
    assert "metrics.partials" in rows["anomaly"]
