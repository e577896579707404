"""``Selector.total`` and ``Selector.extreme`` (with their one-stream fast path, session 10)
against the plain definitions over :meth:`Selector.resolve`, on random states (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from stream_app.state.requirements import Selector

TYPES = ["page_view", "course_view", "lesson_attended", "order_paid", "outcome", "registered",
         "x_label"]
STREAMS = ["click", "study", "order", "label", "profile", "feedback"]
SELECTORS = [Selector.parse(s) for s in (
    "any", "stream:click", "stream:study", "stream:label", "click|study", "course_view",
    "order_paid|stream:study", "page_view|course_view", "stream:click|page_view", "nothing")]

STATES = st.dictionaries(st.sampled_from(TYPES), st.sampled_from(STREAMS), max_size=7)


@settings(max_examples=500, deadline=None)
@given(type_streams=STATES, sel=st.sampled_from(SELECTORS),
       counts=st.dictionaries(st.sampled_from(TYPES), st.integers(0, 9)),
       times=st.dictionaries(st.sampled_from(TYPES), st.integers(0, 5)),
       latest=st.booleans(), skip=st.one_of(st.none(), st.sampled_from(TYPES)))
def test_total_and_extreme_equal_the_resolved_types(type_streams, sel, counts, times, latest,
                                                     skip):
    types = sel.resolve(type_streams)
    assert sel.total(counts, type_streams) == sum(counts.get(t, 0) for t in types)
    vals = [times[t] for t in types if t in times and t != skip]
    want = (max(vals) if latest else min(vals)) if vals else None
    assert sel.extreme(times, type_streams, latest, skip) == want


def test_one_stream_fast_path_is_taken_only_for_one_stream():
    assert Selector.parse("stream:click").one_stream == "click"
    assert Selector.parse("study").one_stream == "study"
    assert {Selector.parse(s).one_stream for s in ("any", "click|study", "stream:click|x",
                                                   "x")} == {None}
    assert Selector.parse("stream:click") == Selector(streams=frozenset({"click"}))
