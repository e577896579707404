"""protect_event_props' shortcut (names already seen not to be identifiers) changes nothing.

The oracle is protect_event_props before the shortcut, kept here: every name through is_pii.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from types import SimpleNamespace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from stream_app.security import pii

KEY = b"test-key"


def reference_protect(event: Any) -> Any:
    """protect_event_props before the shortcut."""
    props = getattr(event, "props", None)
    if props and any(isinstance(k, str) and (pii.is_pii(k) or isinstance(v, dict))
                     for k, v in props.items()):
        event.props = pii.protect_props(props, KEY)
    return event


def assert_same(props: Any) -> None:
    """The new and the reference step leave equal props (same types), in place or not."""
    new, ref = SimpleNamespace(props=copy.deepcopy(props)), SimpleNamespace(props=props)
    kept_new, kept_ref = new.props, ref.props
    pii.protect_event_props(new, KEY)
    reference_protect(ref)
    assert repr(new.props) == repr(ref.props)
    assert (new.props is kept_new) == (ref.props is kept_ref)   # replaced in both or neither


def test_a_known_safe_name_with_a_nested_object_is_still_protected():
    assert_same({"region": "sh", "extra": 1})          # both names now known safe
    assert_same({"region": {"phone": "13800138000"}, "extra": 1})
    assert_same({"region": OrderedDict(mobile="13900000000")})
    assert_same({"region": "sh", "Phone": "1"})
    assert_same({"region": "sh", 7: {"email": "a@b"}})    # a non-str name is never protected


def test_names_memo_holds_no_identifier_and_stays_bounded():
    assert_same({"WeChat-ID": "wx1", "channel": "x"})
    assert not any(pii.is_pii(k) for k in pii._NOT_PII_NAMES)
    for i in range(pii._NOT_PII_NAMES_MAX + 10):
        pii.protect_event_props(SimpleNamespace(props={f"name{i}": 1}), KEY)
    assert len(pii._NOT_PII_NAMES) <= pii._NOT_PII_NAMES_MAX + 1


NAMES = (st.sampled_from(["channel", "region", "phone", "Phone", "E-Mail", "e mail", "wechat_id",
                          "WeChat ID", "name", "nickname", "id_card", "amount", "tags"])
         | st.text(max_size=8) | st.integers(0, 3))
SCALARS = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
           | st.text(max_size=8))
VALUES = (SCALARS | st.lists(SCALARS, max_size=3)
          | st.dictionaries(NAMES, SCALARS, max_size=3)
          | st.dictionaries(NAMES, SCALARS, max_size=2).map(OrderedDict))


@settings(max_examples=500, deadline=None)
@given(st.lists(st.dictionaries(NAMES, VALUES, max_size=6), min_size=1, max_size=6))
def test_fuzzed_props_match_the_reference(batch):
    """Several events in a row, so that names learned from one meet the next."""
    for props in batch:
        assert_same(props)
