"""Every tag change names the event that made it, in ``trigger`` and in its evidence
(tag_change.schema.json: "also when the event's new model scores made it, reason score; for a
deletion, the deletion request's"): QA39 F2 (a score change's ``evidence.trigger`` was null)
and F3 (a deletion's removals carried ``trigger: null``, as if a clock tick made them)."""

from __future__ import annotations

import json

from stream_app.scoring.with_tags import fold_changes
from tests.unit.app.snippet import GLUE_FEED, last_line


def test_a_score_change_names_its_event_in_the_evidence_too() -> None:
    extra = {"tag_id": "intent", "old": "low", "new": "medium", "reason": "score", "seq": 3,
             "trigger": None, "evidence": {"rule": "intent", "trigger": None}}
    changes: list[dict] = []
    fold_changes(changes, [extra], "e7")
    assert changes[0]["trigger"] == "e7"
    assert changes[0]["evidence"]["trigger"] == "e7"


CODE = GLUE_FEED + r"""
n = len(side.producer.records)
feed("events.click", "click", {"event_id": "c1", "user_id": "u1", "ts": now,
                               "type": "course_view", "props": {}})
feed("events.profile", "profile", {"event_id": "del-1", "user_id": "u1", "ts": now + 1,
                                   "type": "deletion_requested", "props": {}})
changes = [orjson.loads(r[2]) for r in side.producer.records[n:] if r[0] == "tags.changes"]
print(json.dumps([[c["reason"], c["trigger"]] for c in changes]))
"""


def test_a_deletions_removals_name_the_request(tmp_path) -> None:
    changes = json.loads(last_line(CODE, tmp_path))
    removed = [t for reason, t in changes if reason == "deleted"]
    assert removed and set(removed) == {"del-1"}
    assert {t for reason, t in changes if reason != "deleted"} == {"c1"}
