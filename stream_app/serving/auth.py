"""Bearer-token authentication of the serving API, with per-tenant tokens.

Two kinds of token: the *admin* token may read every tenant; a *tenant* token reads only
its tenant. ``settings.api_token`` (``STREAM_APP_API_TOKEN``) holds either one admin token or
``tenant=token`` pairs separated by commas (the form of :mod:`stream_app.security.tokens`;
a bare entry among them is an admin token); a YAML token map adds tenant tokens. Tokens are
compared as SHA-256 digests with :func:`hmac.compare_digest` against every configured
entry (no early exit), so the time taken does not reveal how much of a token matched. A
token map may hold digests (``sha256:<hex>``) instead of the tokens themselves.

Token map file (``--tokens FILE`` of ``stream-app api``)::

    tenants:
      acme: ["s3cret-acme"]
      globex: ["sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"]

Example:
    >>> auth = TokenAuth("admin-tok", {"acme": ["acme-tok"]})
    >>> auth.allows("admin-tok", "globex"), auth.allows("acme-tok", "acme")
    (True, True)
    >>> auth.allows("acme-tok", "globex"), auth.known("nope")
    (False, False)
    >>> pairs = TokenAuth("acme=tok-acme-123,globex=tok-globex-456")
    >>> pairs.allows("tok-acme-123", "acme"), pairs.allows("tok-acme-123", "globex")
    (True, False)
    >>> TokenAuth("c2VjcmV0LXRva2Vu==").allows("c2VjcmV0LXRva2Vu==", "any")  # base64, not a pair
    True
"""

from __future__ import annotations

import hashlib
import hmac
import re
from pathlib import Path

import yaml

from stream_app.errors import ConfigError

ADMIN = "*"
_PAIR = re.compile(r"^\s*([A-Za-z0-9_.\-]{1,64})=([^=\s][^\s]*)\s*$")


def parse_token_setting(spec: str | None) -> list[tuple[str, str]]:
    """``(token, tenant or "*")`` entries of the token setting.

    ``"t1=alpha,t2=beta"`` gives tenant tokens; a part without ``tenant=`` is an admin token.
    A value that is not made of such parts (e.g. a base64 token ending in ``=``) is one admin
    token as a whole.

    >>> parse_token_setting("t1=alpha, master-key")
    [('alpha', 't1'), ('master-key', '*')]
    >>> parse_token_setting("abc=")
    [('abc=', '*')]
    """
    if not spec:
        return []
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    out: list[tuple[str, str]] = []
    for part in parts:
        m = _PAIR.match(part)
        if m:
            out.append((m.group(2), m.group(1)))
        elif "=" in part or " " in part:
            return [(spec, ADMIN)]
        else:
            out.append((part, ADMIN))
    return out


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _stored(entry: str) -> bytes:
    if entry.startswith("sha256:"):
        try:
            return bytes.fromhex(entry[7:])
        except ValueError:
            raise ConfigError(f"bad sha256 token digest {entry[:15]}...") from None
    return _digest(entry)


class TokenAuth:
    """Which tenants a bearer token may read."""

    def __init__(self, admin_token: str | None = None,
                 tenant_tokens: dict[str, list[str]] | None = None) -> None:
        self.entries: list[tuple[bytes, str]] = []
        for token, tenant in parse_token_setting(admin_token):
            self.entries.append((_stored(token), tenant))
        for tenant, tokens in (tenant_tokens or {}).items():
            if not isinstance(tenant, str):
                raise ConfigError(f"token map: tenant name {tenant!r} is not text")
            for tok in ([tokens] if isinstance(tokens, str) else tokens):
                self.entries.append((_stored(str(tok)), str(tenant)))

    def scopes(self, token: str | None) -> set[str]:
        """Tenants the token reads (``{"*"}`` for the admin token; empty: unknown token)."""
        if not token:
            return set()
        d = _digest(token)
        found = set()
        for stored, tenant in self.entries:
            if hmac.compare_digest(stored, d):
                found.add(tenant)
        return found

    def known(self, token: str | None) -> bool:
        return bool(self.scopes(token))

    def allows(self, token: str | None, tenant: str) -> bool:
        s = self.scopes(token)
        return ADMIN in s or tenant in s


_STR = "tag:yaml.org,2002:str"


def _as_written(node: yaml.Node) -> str:
    """A YAML node's text as written in the file (a scalar) or its kind (a collection)."""
    if isinstance(node, yaml.ScalarNode):
        return str(node.value)
    return "a list" if isinstance(node, yaml.SequenceNode) else "a mapping"


def _yaml_type(node: yaml.Node) -> str:
    return node.tag.rsplit(":", 1)[-1] if isinstance(node, yaml.ScalarNode) else _as_written(node)


def load_tenant_tokens(path: Path | str) -> dict[str, list[str]]:
    """Read a token map file (``tenants: {name: [token or sha256:hex, ...]}``).

    Tenant names and tokens must be YAML strings: YAML 1.1 reads an unquoted ``007`` as the
    number 7 and ``on`` as true, which would give tenant ``007``'s tokens to tenant ``7``
    (or ``True``); such a key or token is refused, naming it as written, and must be quoted.
    A tenant listed twice is refused too (YAML would keep only the last list).
    """
    path = Path(path)
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read token map: {exc}") from None
    tenants = None
    if isinstance(root, yaml.MappingNode):
        tenants = next((v for k, v in root.value
                        if isinstance(k, yaml.ScalarNode) and k.tag == _STR
                        and k.value == "tenants"), None)
    if not isinstance(tenants, yaml.MappingNode):
        raise ConfigError(f"{path}: expected a 'tenants:' mapping of tenant -> tokens")
    out: dict[str, list[str]] = {}
    for knode, vnode in tenants.value:
        line = knode.start_mark.line + 1
        if not (isinstance(knode, yaml.ScalarNode) and knode.tag == _STR):
            written = _as_written(knode)
            raise ConfigError(
                f"{path}:{line}: tenant name {written} is read by YAML as "
                f"{_yaml_type(knode)}, not text: quote it ('{written}': [...]) so that "
                "its tokens are this tenant's")
        tenant = str(knode.value)
        if tenant in out:
            raise ConfigError(f"{path}:{line}: tenant {tenant!r} is listed twice: "
                              "put all its tokens in one list")
        items = vnode.value if isinstance(vnode, yaml.SequenceNode) else [vnode]
        toks: list[str] = []
        for i, tnode in enumerate(items, 1):
            if not (isinstance(tnode, yaml.ScalarNode) and tnode.tag == _STR and tnode.value):
                kind = ("empty" if isinstance(tnode, yaml.ScalarNode) and not tnode.value
                        else f"read by YAML as {_yaml_type(tnode)}, not text (quote a token "
                        "that YAML would read as a number, a date or true/false)")
                raise ConfigError(
                    f"{path}:{tnode.start_mark.line + 1}: tenant {tenant!r}: tokens must be "
                    f"a list of strings; token {i} is {kind}")
            toks.append(str(tnode.value))
        out[tenant] = toks
    return out
