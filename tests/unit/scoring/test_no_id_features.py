"""No model feature carries a user id: the simulator's invitees register with their inviter's
user_id (``inviter_id``, ``referrer``; config/rules/referral.yaml reads them), and as
categorical props of the profile stream each inviter became a one-hot feature of its own
(52 features in a 1,500-person month before they joined ``exclude_props``)."""

from __future__ import annotations

import re

from stream_app.scoring.registry import ModelRegistry
from stream_app.scoring.scorer import Scorer
from tests.unit.scoring.fixtures import config
from tests.unit.scoring.test_fast_path import _sim_events


def test_no_feature_names_a_user() -> None:
    cfg = config()
    sc = Scorer(cfg, ModelRegistry(cfg), alert_policy=None)
    states: dict = {}
    feats: set[str] = set()
    invitees = 0
    for i, e in enumerate(_sim_events(users=600, days=20, seed=3)):
        invitees += e.type == "registered" and bool(e.props.get("inviter_id"))
        s = sc.on_event(states.get(e.user_id), e)
        states[e.user_id] = s.sc_state
        if i % 3 == 0 and s.scores:
            feats.update(sc.features(s.sc_state, e.ts))
    assert invitees > 3 and len(feats) > 100      # the replay has invitees and features
    users = re.compile(r"u\d{7}")
    assert [f for f in feats if users.search(f)] == []
