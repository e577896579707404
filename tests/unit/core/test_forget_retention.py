"""``stream-app forget`` says what it removes at once and how long the topics keep records
that name the user, from the contract's retention (QA L8: it said "every trace of the user is
removed" while alerts and tags.changes keep the user 7 days, events.dlq 30)."""

from __future__ import annotations

import re
import shutil

from stream_app.cli.forget_cmd import retention_note
from stream_app.config import REPO_ROOT
from stream_app.contract import load_contract

DAY_MS = 86_400_000


def test_the_note_reads_the_retention_of_the_contract(tmp_path) -> None:
    assert retention_note() == ("input events, tags.changes, alerts, scoring.training: 7 days; "
                                "events.dlq: 30 days")
    topics = tmp_path / "topics"
    shutil.copytree(REPO_ROOT / "topics", topics)
    text = (topics / "topics.yaml").read_text()
    text = text.replace("""  - name: tags.changes
    role: output
    key: user_id
""", """  - name: tags.changes
    role: output
    key: user_id
    config:
      retention.ms: 259200000
""")
    (topics / "topics.yaml").write_text(text)
    assert retention_note(load_contract(topics)) == (
        "input events, alerts, scoring.training: 7 days; tags.changes: 3 days; "
        "events.dlq: 30 days")


def test_the_guarantees_table_matches_the_contract() -> None:
    """docs/GUARANTEES.md section 8 lists how long each topic keeps a deleted user's
    records: the days must be the contract's."""
    contract = load_contract()
    text = (REPO_ROOT / "docs" / "GUARANTEES.md").read_text()
    rows = [line for line in text.splitlines()
            if line.lstrip().startswith("| `") and re.search(r"\| (\d+) days \|$", line)]
    checked = 0
    for row in rows:
        days = int(re.search(r"\| (\d+) days \|$", row).group(1))
        for name in re.findall(r"`([a-z_.]+)`", row.split("|")[1]):
            if name in contract.topics:
                ms = int(contract.topic(name).config["retention.ms"])
                assert ms == days * DAY_MS, (name, days)
                checked += 1
    assert checked >= 7   # inputs, tags.changes, alerts, scoring.training, ticks, dlq
    readme = (REPO_ROOT / "README.md").read_text()
    assert "every trace of the user is removed" not in readme
