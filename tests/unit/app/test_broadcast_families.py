"""Rule sets read together are collapsed to the newest (``broadcast.apply_pending``); a tag
only a skipped set defined still leaves with its family. v2 added ``promo_seen`` (family
``promo``), v3 dropped it; a worker reading both at start applied v3 alone, and the
``rule_removed`` change of every user tagged under v2 said ``family: ""`` (and a
``stream_app_tag_changes_total{family=""}`` series). Run in a subprocess: importing the app
builds the Faust app."""

from __future__ import annotations

import os
import subprocess
import sys

CODE = r"""
from pathlib import Path
from stream_app.app import main                      # registers agents and signals
from stream_app.app import broadcast as bc
from stream_app.app.context import runtime
from stream_app.events import Event
from stream_app.rules.engine import TagEngine
from stream_app.rules_bundle import compile_bundle, encode, read_bundle

rules = Path(main.settings.rules_path)
v2 = read_bundle(rules)
v2["files"]["promo.yaml"] = (
    "tags:\n  - {id: promo_seen, family: promo, zh: 看过活动, en: Saw the promo, kind: bool,"
    " value: 'count(page_view) > 0'}\n")
v3 = read_bundle(rules)
v3["files"]["activity.yaml"] = v3["files"]["activity.yaml"].replace(
    "activity_high_days: 3 ", "activity_high_days: 9 ")
# a user tagged by a worker that ran v2 (its state, as the table holds it)
ev = Event("e1", "u1", 1_772_400_000_000, "page_view", "click", props={"page": "/home"})
state = TagEngine(compile_bundle(v2)).on_event(None, ev).state
assert state["tags"]["promo_seen"] is True
for b in (v2, v3):                                   # both read at start, v3 alone applied
    bc.inbox.put(("rules.versions", "default", encode(b)))
bc.apply_pending()
assert runtime.engine.ruleset.params["activity_high_days"] == 9
r = runtime.engine.on_tick(state, ev.ts + 60_000)   # the backfill's tick
print([(c["tag_id"], c["family"], c["reason"]) for c in r.changes
       if c["tag_id"] == "promo_seen"])
"""


def test_a_tag_only_a_skipped_rule_set_defined_leaves_with_its_family(tmp_path) -> None:
    env = {**os.environ, "STREAM_APP_DATADIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[('promo_seen', 'promo', 'rule_removed')]"


FALLBACK = r"""
from pathlib import Path
from stream_app.app import main                      # registers agents and signals
from stream_app.app import broadcast as bc
from stream_app.app.context import runtime
from stream_app.rules_bundle import encode, read_bundle

rules = Path(main.settings.rules_path)
good = read_bundle(rules)
good["files"]["activity.yaml"] = good["files"]["activity.yaml"].replace(
    "activity_high_days: 3 ", "activity_high_days: 9 ")
for value in (encode(good), b"not a bundle"):        # a good set, then a bad record after it
    bc.inbox.put(("rules.versions", "default", value))
bc.apply_pending()
print(runtime.engine.ruleset.params["activity_high_days"])
"""


def test_a_bad_newest_rule_set_falls_back_to_the_newest_good_one_of_the_batch(tmp_path) -> None:
    """QA32 (noted): only the newest record of a batch was tried; a bad one published after a
    good one left a restarted worker on its local rules (activity_high_days 3, not 9)."""
    env = {**os.environ, "STREAM_APP_DATADIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", FALLBACK], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "9"
    assert "cannot apply rules.versions record 'default' (and 1 older" in out.stderr
