"""featurize against the pre-optimisation reference (``reference.featurize_reference``) under
generated feature settings (per-type kinds, windows, day offset, recency scale) and generated
event sequences (several days, negative and positive numeric props, categorical props,
milestones), bit for bit and in the same key order: the settings featurize reads once per
config (``_Names.settings``, ``day_offset``, ``lookups``) must be what it read per call.
"""

from __future__ import annotations

from dataclasses import replace

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_app.events import Event
from stream_app.scoring.features import DAY_MS, featurize, new_state, update
from tests.unit.scoring.fixtures import config
from tests.unit.scoring.reference import featurize_reference

_TYPES = ["course_view", "registered", "order_paid", "page_view", "lesson_attended"]
_KINDS = ["windows", "total", "rate", "recency"]

_EVENTS = st.lists(st.tuples(
    st.integers(0, 45 * DAY_MS),                       # offset from the first event
    st.sampled_from(_TYPES),
    st.sampled_from(["click", "profile", "study"]),
    st.dictionaries(st.sampled_from(["minutes", "amount", "channel", "region"]),
                    st.one_of(st.integers(-50, 50), st.floats(-1e3, 1e3),
                              st.sampled_from(["douyin", "wechat", "x" * 50])),
                    max_size=3),
), min_size=1, max_size=25)


@settings(max_examples=200, deadline=None)
@given(events=_EVENTS,
       kinds=st.sets(st.sampled_from(_KINDS)),
       offset_hours=st.sampled_from([0.0, 8.0, -5.5, 23.0]),
       scale_days=st.sampled_from([7.0, 0.5, 30.0]),
       windows=st.sampled_from([(1, 7, 30), (3,), (2, 14)]),
       later=st.integers(0, 40 * DAY_MS))
def test_featurize_equals_the_reference_under_any_settings(
        events: list, kinds: set[str], offset_hours: float, scale_days: float,
        windows: tuple[int, ...], later: int) -> None:
    fc = replace(config().features, per_type=frozenset(kinds), day_offset_hours=offset_hours,
                 recency_scale_days=scale_days, windows_days=windows)
    state = new_state()
    t0 = 1_700_000_000_000
    for i, (dt, etype, stream, props) in enumerate(sorted(events, key=lambda e: e[0])):
        update(state, Event(f"e{i}", "u1", t0 + dt, etype, stream, "default", props), fc)
        for now in (t0 + dt, t0 + dt + later):
            got, want = featurize(state, now, fc), featurize_reference(state, now, fc)
            assert orjson.dumps(got) == orjson.dumps(want)
