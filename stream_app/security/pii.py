"""Personal identifiers in events: keyed hashes or nothing, never the clear value.

PIPL asks for the minimum. Profile events may carry a phone number, an e-mail address, a
WeChat id or a real name; stream-app never needs the clear value, only equality ("the same
phone registered twice"). :func:`protect_props` replaces each identifier by an HMAC-SHA256
keyed hash (``h:<hex>``, the key from ``STREAM_APP_PII_KEY``) or drops it, before the event
reaches state, outputs or logs; :func:`redact` makes any structure safe to log.

Call :func:`protect_event_props` on every parsed event before the tag engine sees it.

Example:
    >>> p = protect_props({"phone": "+86 138-0013-8000", "region": "sh"}, key=b"k")
    >>> p["region"], p["phone"].startswith("h:"), "13800138000" in str(p)
    ('sh', True, False)
    >>> p == protect_props({"phone": "8613800138000", "region": "sh"}, key=b"k")
    True
    >>> protect_props({"name": "Li Lei", "email": "A@x.cn"}, key=b"k", mode="drop")
    {}
    >>> redact({"user": {"wechat_id": "wx123"}, "n": 1})
    {'user': {'wechat_id': '<redacted>'}, 'n': 1}
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from typing import Any, Literal

#: property names treated as personal identifiers (lower case; "-" and " " read as "_")
PII_FIELDS = frozenset({
    "phone", "mobile", "phone_number", "mobile_phone", "tel", "telephone",
    "email", "e_mail", "mail",
    "wechat", "wechat_id", "wechatid", "weixin", "wx_id", "wxid", "openid", "unionid",
    "name", "real_name", "realname", "full_name", "first_name", "last_name", "nickname",
    "id_card", "id_number", "idcard",
})
HASH_PREFIX = "h:"
REDACTED = "<redacted>"
Mode = Literal["hash", "drop"]
_DEV_KEY = b"stream-app-dev-pii-key"

# protect_event_props' shortcut: prop names already seen not to be identifiers (bounded, so
# hostile inputs cannot grow it without end) and value types that are never a dict
_NOT_PII_NAMES: set[str] = set()
_NOT_PII_NAMES_MAX = 4096
_FLAT_TYPES = frozenset({str, int, float, bool, type(None), list})


def is_pii(name: str) -> bool:
    """Is property ``name`` a personal identifier?

    >>> is_pii("WeChat-ID"), is_pii("region")
    (True, False)
    """
    return name.lower().replace("-", "_").replace(" ", "_") in PII_FIELDS


def pii_key() -> bytes:
    """The hashing key: ``STREAM_APP_PII_KEY`` (a development key when unset)."""
    k = os.environ.get("STREAM_APP_PII_KEY", "")
    return k.encode("utf-8") if k else _DEV_KEY


def normalize(name: str, value: Any) -> str:
    """Canonical text of an identifier so equal identifiers hash equal.

    >>> normalize("phone", "+86 138-0013-8000"), normalize("email", " A@X.cn ")
    ('13800138000', 'a@x.cn')
    """
    text = str(value).strip()
    kind = name.lower()
    if kind in ("phone", "mobile", "phone_number", "mobile_phone", "tel", "telephone"):
        digits = re.sub(r"\D", "", text)
        if digits.startswith("86") and len(digits) == 13:
            digits = digits[2:]
        return digits
    if "mail" in kind:
        return text.lower()
    return text.casefold()


def keyed_hash(name: str, value: Any, key: bytes | None = None) -> str:
    """``h:`` + hex HMAC-SHA256 of the normalised identifier (truncated to 128 bits).

    >>> keyed_hash("email", "a@x.cn", b"k") == keyed_hash("email", "A@X.CN ", b"k")
    True
    >>> keyed_hash("email", "a@x.cn", b"k") == keyed_hash("email", "a@x.cn", b"other")
    False
    """
    msg = f"{name.lower()}\x00{normalize(name, value)}".encode("utf-8", "surrogatepass")
    return HASH_PREFIX + hmac.new(key or pii_key(), msg, hashlib.sha256).hexdigest()[:32]


def protect_props(props: dict[str, Any], key: bytes | None = None,
                  mode: Mode = "hash") -> dict[str, Any]:
    """A copy of ``props`` with identifiers hashed (``mode="hash"``) or removed (``"drop"``).

    Nested objects are protected too; values already hashed are left as they are.
    """
    out: dict[str, Any] = {}
    for name, value in props.items():
        if isinstance(name, str) and is_pii(name):
            if mode == "drop" or value is None or isinstance(value, dict | list):
                continue
            if isinstance(value, str) and value.startswith(HASH_PREFIX):
                out[name] = value
            else:
                out[name] = keyed_hash(name, value, key)
        elif isinstance(value, dict):
            out[name] = protect_props(value, key, mode)
        else:
            out[name] = value
    return out


def protect_event_props(event: Any, key: bytes | None = None, mode: Mode = "hash") -> Any:
    """Protect ``event.props`` in place (an :class:`~stream_app.events.Event`); return it."""
    props = getattr(event, "props", None)
    if props and _needs_protection(props):
        event.props = protect_props(props, key, mode)
    return event


def _needs_protection(props: Any) -> bool:
    """Does ``props`` hold an identifier, or a nested object that might?

    >>> _needs_protection({"region": "sh", "n": [1]}), _needs_protection({"Phone": "1"})
    (False, True)
    """
    # Shortcut, set operations only: every name known to be no identifier, no dict value.
    if (type(props) is dict and props.keys() <= _NOT_PII_NAMES
            and _FLAT_TYPES.issuperset(map(type, props.values()))):
        return False
    if any(isinstance(k, str) and (is_pii(k) or isinstance(v, dict)) for k, v in props.items()):
        return True
    if len(_NOT_PII_NAMES) < _NOT_PII_NAMES_MAX:
        # only exact str names are remembered: what JSON gives
        _NOT_PII_NAMES.update(k for k in props if type(k) is str)
    return False


def redact(obj: Any) -> Any:
    """A copy of ``obj`` safe to log: identifier values replaced by ``<redacted>``."""
    if isinstance(obj, dict):
        return {k: (REDACTED if isinstance(k, str) and is_pii(k) else redact(v))
                for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [redact(v) for v in obj]
    return obj
