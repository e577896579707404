"""``TagDef.plain``: evaluations skip ``TagDef.normalise`` for a tag whose every rule value
comes back from it as it is (enum tags, case rules of such values). The values must equal
what normalising every raw value gives (the reference), kind for kind, on random tags.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from stream_app.rules.compiler import Compiled
from stream_app.rules.model import KINDS, CaseDef, RuleSet, TagDef
from stream_app.state.record import new_state

VALUES = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.integers(2**53, 2**60),
                   st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=3),
                   st.lists(st.sampled_from(["b", "a", "c"]), max_size=3))


@st.composite
def tags(draw: Any, i: int) -> TagDef:
    """A tag of a random kind whose rule is a value expression or cases (the first case
    whose flag holds, else the last one's value)."""
    kind = draw(st.sampled_from(KINDS))
    rnd = draw(st.sampled_from([None, 0, 2]))
    if draw(st.booleans()):
        v = draw(VALUES)
        return TagDef(f"t{i}", "f", "", "", kind=kind, round=rnd,
                      expr=Compiled(lambda ctx, v=v: v, "v"))
    cases = [CaseDef(draw(VALUES), Compiled(lambda ctx, b=draw(st.booleans()): b, "b"))
             for _ in range(draw(st.integers(1, 3)))]
    cases.append(CaseDef(draw(VALUES)))
    return TagDef(f"t{i}", "f", "", "", kind=kind, round=rnd, cases=cases)


def _reference(rs: RuleSet) -> dict[str, Any]:
    """Every tag's raw rule value, normalised (None stays None)."""
    out = {}
    for tag in rs.order:
        raw, _ = RuleSet._run(tag, None)
        out[tag.id] = None if raw is None else tag.normalise(raw)
    return out


def _typed(values: dict[str, Any]) -> dict[str, Any]:
    """Values with their types, NaN as text (NaN != NaN)."""
    return {k: (type(v), repr(v)) for k, v in values.items()}


@settings(max_examples=400, deadline=None)
@given(data=st.data(), n=st.integers(1, 6))
def test_evaluations_equal_normalising_every_value(data, n):
    rs = RuleSet("t", [data.draw(tags(i)) for i in range(n)])
    want = _typed(_reference(rs))
    values, _ = rs.evaluate_raw(new_state("u"), 0)
    assert _typed(values) == want
    plan = (frozenset(rs.by_id), tuple(rs.order), False)
    ran, _ = rs.evaluate_some(new_state("u"), 0, {}, plan)
    assert _typed({t.id: v for t, v in ran}) == want


def test_plain_tags_of_the_default_rules():
    from stream_app.rules.engine import DEFAULT_RULES  # noqa: PLC0415
    from stream_app.rules.loader import load_ruleset  # noqa: PLC0415
    rs = load_ruleset(DEFAULT_RULES)
    plain = {t.id for t in rs.order if t.plain}
    assert {t.id for t in rs.order if t.kind == "enum"} <= plain
    assert {"refunded", "at_risk", "has_shared"} <= plain            # bool cases
    assert not plain & {"lead_points", "first_channel", "categories_bought"}   # expressions
