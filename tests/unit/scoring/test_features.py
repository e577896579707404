import copy

import orjson

from stream_app.events import Event
from stream_app.scoring.config import load_scoring_config
from stream_app.scoring.features import featurize, new_state, update
from tests.unit.scoring.fixtures import DAY, HOUR, T0, ev

FC = load_scoring_config().features


def _state(*events):
    st = new_state()
    for e in events:
        update(st, e, FC)
    return st


def test_window_counts_follow_the_windows():
    st = _state(ev("u", T0, "course_view"), ev("u", T0 + 10 * DAY, "course_view"),
                ev("u", T0 + 20 * DAY, "course_view"), ev("u", T0 + 20 * DAY + HOUR, "course_view"))
    x = featurize(st, T0 + 20 * DAY + 2 * HOUR, FC)
    import math
    assert math.isclose(x["course_view|1d"], math.log1p(2))
    assert math.isclose(x["course_view|7d"], math.log1p(2))
    assert math.isclose(x["course_view|30d"], math.log1p(4))
    assert math.isclose(x["course_view|n"], math.log1p(4))
    # 40 days later every window is empty but the total stays
    later = featurize(st, T0 + 60 * DAY, FC)
    assert "course_view|7d" not in later and "course_view|30d" not in later
    assert later["course_view|rec"] < x["course_view|rec"]


def test_unknown_types_and_props_become_features():
    st = _state(ev("u", T0, "registered", "profile", hobby="chess", age=31),
                ev("u", T0 + HOUR, "brand_new_thing", "click", minutes=12, channel="xhs",
                   colour="red"))
    x = featurize(st, T0 + 2 * HOUR, FC)
    assert "brand_new_thing|n" in x and "brand_new_thing|7d" in x
    assert x["hobby=chess"] == 1.0          # profile string prop -> one-hot
    assert x["channel=xhs"] == 1.0          # channel prop from a click
    assert "colour=red" not in x            # other click strings are not categorical
    assert x["#minutes|mean"] == 12 and x["#age|mean"] == 31


def test_excluded_props_and_types_do_not_leak_in():
    st = _state(ev("u", T0, "registered", "profile", phone="13800000000", region="bj"),
                ev("u", T0 + HOUR, "checkpoint", "label", target="convert"))
    x = featurize(st, T0 + 2 * HOUR, FC)
    assert not any("phone" in k or "checkpoint" in k for k in x)
    assert x["region=bj"] == 1.0


def test_featurize_is_pure_and_state_is_json_roundtrippable():
    st = _state(ev("u", T0, "course_view", seconds=3), ev("u", T0 + 3 * DAY, "search"))
    before = copy.deepcopy(st)
    x1 = featurize(st, T0 + 4 * DAY, FC)
    assert st == before
    st2 = orjson.loads(orjson.dumps(st))
    assert featurize(st2, T0 + 4 * DAY, FC) == x1


def test_late_event_lands_in_its_own_day():
    st = _state(ev("u", T0 + 10 * DAY, "search"), ev("u", T0 + 2 * DAY, "search"))
    x = featurize(st, T0 + 10 * DAY + HOUR, FC)
    import math
    assert math.isclose(x["search|7d"], math.log1p(1))
    assert math.isclose(x["search|n"], math.log1p(2))
    assert [b[0] for b in st["b"]] == sorted(b[0] for b in st["b"])


def test_time_features_are_rates_comparable_over_time():
    st = _state(*(ev("u", T0 + d * DAY, "course_view") for d in range(10)))
    early = featurize(st, T0 + 9 * DAY, FC)
    st2 = _state(*(ev("u", T0 + d * DAY, "course_view") for d in range(30)))
    late = featurize(st2, T0 + 29 * DAY, FC)
    # one view a day: the rate is about the same early and late, totals differ
    assert abs(early["course_view|rate"] - late["course_view|rate"]) < 0.1
    assert late["course_view|n"] > early["course_view|n"]


class _Num(int):
    pass


class _Text(str):
    __slots__ = ()


def test_prop_kinds_exact_types_and_subclasses_alike() -> None:
    """Exact JSON types take update's fast branches; subclasses and other values the
    isinstance chain: either way, the same state."""
    fc = load_scoring_config().features
    for stream in ("profile", "click"):
        st = new_state()
        update(st, Event("e1", "u1", DAY, "x", stream, props={
            "n": 2, "f": 1.5, "b": True, "channel": "douyin", "goal": "job", "l": [1],
            "sn": _Num(3), "schannel": _Text("bili"), "utm_source": _Text("ads"), "z": None,
            "d": {"a": 1}}), fc)
        assert st["tot"]["#n"] == 2 and st["tot"]["#f"] == 1.5 and st["tot"]["#sn"] == 3
        assert st["tot"]["~n"] == st["tot"]["~f"] == st["tot"]["~sn"] == 1
        assert st["b"][0][1]["#sn"] == 3
        expected = {"channel": "douyin", "utm_source": "ads"}
        if stream == "profile":
            expected.update(b="1", goal="job", schannel="bili")
        assert st["cat"] == expected
        assert "#b" not in st["tot"] and "#l" not in st["tot"]


def test_categorical_values_equal_cat_value():
    # update() stores a short plain value as itself, without _cat_value: the same strings
    from stream_app.scoring.features import _cat_value
    rng = __import__("random").Random(3)
    words = ["douyin", "a" * 40, "b" * 41, "é" * 45, "", "北京市海淀区" * 8, "x|y=z"]
    props_pool = ["channel", "utm_source", "city", "school", "region", "goal", "amount"]
    for i in range(3_000):
        props = {}
        for k in rng.sample(props_pool, rng.randrange(1, 5)):
            props[k] = rng.choice(words + [True, False, 3, 2.5, None, ["l"]])
        stream = rng.choice(["profile", "click"])
        st = new_state()
        update(st, ev("u", T0 + i, "course_view", stream=stream, **props), FC)
        expected = {}
        for k, v in props.items():
            if v is None or k in FC.exclude_props:
                continue
            if isinstance(v, bool):
                if stream in FC.categorical_streams:
                    expected[k] = "1" if v else "0"
            elif isinstance(v, str) and (stream in FC.categorical_streams
                                         or k in FC.channel_props):
                expected[k] = _cat_value(k, v, FC)
        assert st["cat"] == expected
        # and the one-hot names of the vector are "prop=value" (cached by prop and value)
        x = featurize(st, T0 + i, FC)
        assert [n for n in x if "=" in n] == [f"{k}={v}" for k, v in expected.items()]
