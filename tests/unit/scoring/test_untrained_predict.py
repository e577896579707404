"""A model that has learned nothing compiles to a constant (``models._constant``): the same
probability as the compiled dot-product loop with no weighted feature, and as River, for any
feature vector (what a worker scores its checkpoints with while every gate is closed).
"""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from stream_app.scoring.models import (
    _constant,
    _maxabs,
    _plain,
    _standard,
    compile_predict,
    make_learner,
    predict,
)
from tests.unit.scoring.fixtures import config

_VALUES = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 5))
_X = st.dictionaries(st.sampled_from([f"f{i}" for i in range(8)] + ["pts|convert"]), _VALUES,
                     max_size=9)


def _learners() -> dict[str, dict]:
    cfg = config()
    return dict(cfg.learners, plain={"kind": "logreg", "lr": 0.05, "scaler": "none"})


@settings(max_examples=300, deadline=None)
@given(intercept=st.floats(-40.0, 40.0), x=_X)
def test_constant_equals_the_loops_without_weights(intercept: float, x: dict) -> None:
    """Bit for bit (``repr``), whatever ``x`` holds (NaN and inf included)."""
    got = _constant(intercept)(x)
    for loop in (_maxabs({}, intercept), _standard({}, intercept), _plain({}, intercept)):
        assert repr(got) == repr(loop(x))


@settings(max_examples=100, deadline=None)
@given(x=_X.filter(lambda x: all(math.isfinite(v) for v in x.values())))
def test_an_untrained_learner_compiles_to_rivers_probability(x: dict) -> None:
    for name in ("logreg", "logreg_std", "plain"):
        model = make_learner(name, None, _learners())
        fn = compile_predict(model)
        assert fn is not None
        assert repr(fn(x)) == repr(predict(model, x)), name


def test_a_learner_with_weights_is_not_a_constant() -> None:
    """After one label, the loop (not the constant) scores: two vectors, two probabilities."""
    for name in ("logreg", "logreg_std", "plain"):
        model = make_learner(name, None, _learners())
        for i in range(5):
            model.learn_one({"a": float(i), "b": 1.0}, i % 2 == 0)
        fn = compile_predict(model)
        assert fn({"a": 0.0, "b": 1.0}) != fn({"a": 4.0, "b": 1.0}), name


class _Unread(dict):
    def items(self):   # noqa: ANN201 - a vector that must not be walked
        raise AssertionError("the constant walked x")


def test_an_untrained_learner_does_not_walk_the_vector() -> None:
    for name in ("logreg", "logreg_std", "plain"):
        fn = compile_predict(make_learner(name, None, _learners()))
        assert fn(_Unread(a=1.0)) == 0.5, name
