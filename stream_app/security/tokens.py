"""Bearer tokens for the HTTP API: constant-time comparison and tenant scoping.

A token is configured either as one shared secret (``STREAM_APP_API_TOKEN``; all tenants)
or as ``tenant=secret`` pairs separated by commas (each token sees only its tenant).
Comparison uses :func:`hmac.compare_digest` on every configured token (no early exit, so
timing does not reveal which token or how many characters matched).

Example:
    >>> tokens = parse_tokens("t1=alpha,t2=beta")
    >>> authorize("Bearer alpha", tokens), authorize("Bearer beta", tokens)
    ('t1', 't2')
    >>> authorize("Bearer gamma", tokens) is None, authorize(None, tokens) is None
    (True, True)
    >>> allowed("t1", "t1"), allowed("t1", "t2"), allowed(ALL_TENANTS, "t2")
    (True, False, True)
    >>> authorize("Bearer s3cret", parse_tokens("s3cret")) == ALL_TENANTS
    True
"""

from __future__ import annotations

import hmac

ALL_TENANTS = "*"


def parse_tokens(spec: str) -> dict[str, str]:
    """``"secret"`` or ``"tenant=secret,..."`` -> {secret: tenant}; empty secrets ignored."""
    out: dict[str, str] = {}
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        tenant, sep, secret = part.partition("=")
        if sep:
            if secret:
                out[secret] = tenant.strip()
        else:
            out[part] = ALL_TENANTS
    return out


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def authorize(header: str | None, tokens: dict[str, str]) -> str | None:
    """The tenant scope (a tenant or ``*``) of the request's token; None when not valid."""
    token = bearer(header)
    if token is None:
        return None
    given = token.encode("utf-8", "surrogatepass")
    found: str | None = None
    for secret, tenant in tokens.items():
        if hmac.compare_digest(given, secret.encode("utf-8", "surrogatepass")):
            found = tenant
    return found


def allowed(scope: str, tenant: str) -> bool:
    """May a token of ``scope`` read ``tenant``?"""
    return scope == ALL_TENANTS or hmac.compare_digest(scope.encode(), tenant.encode())
