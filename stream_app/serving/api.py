"""The serving API: profiles, why records, timelines, segments and exports, read from Redis.

A FastAPI app that only reads the Redis projection (so it scales apart from the workers).
Every ``/v1`` route needs ``Authorization: Bearer <token>`` (401 without a known token;
403 when the token's tenants do not include the path's tenant); the tenant is the path's
``/v1/tenants/{tenant}/...`` and every Redis key read is under that tenant's prefix.
``/healthz``, ``/ready`` (Redis answers) and ``/metrics`` (Prometheus) are open, as are the
OpenAPI spec (``/openapi.json``) and its viewer (``/docs``). The routes are described in
``docs/API.md``.

Example:
    >>> from stream_app.config import Settings
    >>> app = create_app(Settings(api_token="t"), redis=object())
    >>> sorted(r.path for r in app.routes if r.path.startswith("/v1/tenants"))[:3]
    ['/v1/tenants/{tenant}/segments/explain', '/v1/tenants/{tenant}/segments/export', \
'/v1/tenants/{tenant}/segments/members']
"""


import logging
import os
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any
from urllib.parse import unquote

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from stream_app import metrics
from stream_app.config import Settings, get_settings
from stream_app.serving import export, keys, reader
from stream_app.serving.auth import ADMIN, TokenAuth
from stream_app.serving.segment_runner import CursorError, SegmentRunner, StoredDataError
from stream_app.serving.segments import Catalog, SegmentError

log = logging.getLogger(__name__)

SIZE_CACHE_ENV = "STREAM_APP_SEGMENT_SIZE_CACHE_S"
"""Seconds a segment size is cached per (tenant, expression); 0 turns the cache off."""
TENANT_PATTERN = r"^[A-Za-z0-9_.\-]{1,64}$"
Tenant = Annotated[str, Path(pattern=TENANT_PATTERN, description="tenant name")]
UserIdPath = Annotated[str, Path(min_length=1, max_length=256,
                                  description="user id (a '/' in it written %2F)")]
Expr = Annotated[str, Query(min_length=1, max_length=4000,
                            description="segment expression (docs/API.md)")]


# -- response models (the OpenAPI spec) ----------------------------------------------------

class ErrorBody(BaseModel):
    """Body of every error answer but 422 (whose ``detail`` is FastAPI's list of problems)."""

    detail: str = Field(description="what went wrong, e.g. the column of a syntax error, "
                        "the unknown tag or value and the allowed values")


class NotReady(BaseModel):
    """``/ready`` when Redis does not answer."""

    status: str = Field(description="not ready")
    redis: str | None = Field(None, description="a generic reason (the Redis error itself to "
                              "the admin token)")


ERRORS: dict[int, str] = {
    400: "bad segment expression or cursor (the message names the column, the unknown tag "
         "or value and the allowed values)",
    401: "missing or unknown bearer token (WWW-Authenticate: Bearer)",
    403: "the token may not read this tenant",
    404: "no such user (or no record of the tag)",
    410: "the cursor's snapshot expired: start again without a cursor",
    500: "the API could not answer: a Redis error, data in Redis it cannot read (the message "
         "names the key and the repair, e.g. redis-rebuild) or a fault (the API's log has "
         "the details)",
    503: "Redis unavailable",
}
"""The error answers of the ``/v1`` routes, as the OpenAPI spec declares them."""


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` of a route for these error codes (body :class:`ErrorBody`).

    >>> sorted(errors(401, 503)), errors(404)[404]["description"]
    ([401, 503], 'no such user (or no record of the tag)')
    """
    return {c: {"model": ErrorBody, "description": ERRORS[c]} for c in codes}


#: the errors of every route reading a tenant (token, tenant, Redis)
TENANT_ERRORS = (401, 403, 500, 503)

class Label(BaseModel):
    zh: str
    en: str


class Profile(BaseModel):
    tenant: str
    user_id: str
    tags: dict[str, Any] = Field(description="tag_id -> current value")
    labels: dict[str, Label] = Field(description="tag_id -> label of the tag's current value")
    scores: dict[str, Any] = Field(description="model target -> score")
    layers: dict[str, Any] = Field(description="model target -> intent layer")
    sources: dict[str, Any] = Field(
        default_factory=dict,
        description="model target -> what set the layer: model (the gated model) or rules")
    counts: dict[str, Any] = Field(description="counter name -> value")
    fields: dict[str, Any] = Field(description="other profile fields")
    updated_ms: int | None = None


class Timeline(BaseModel):
    tenant: str
    user_id: str
    changes: list[dict[str, Any]] = Field(description="newest-first tag-change records")
    note: str | None = Field(None, description="set when Redis keeps no timeline: how to "
                             "enable it, where the history is")


NOT_READY_REASON = "Redis does not answer (the API's log has the error)"
"""What ``/ready`` tells a caller without the admin token when Redis fails: the error text
names Redis's host and port."""

TIMELINE_OFF = ("Redis keeps no tag-change timeline for this user: the workers keep none "
                "unless STREAM_APP_REDIS_TIMELINE is set (0, the default). The full history, "
                "with evidence, is the tags.changes topic. To serve the last N changes per "
                "user here, set STREAM_APP_REDIS_TIMELINE=N (e.g. 5, ~160 B per change and "
                "user) on the workers; users get a timeline from their next changes (or at "
                "once with `stream-app redis-rebuild`).")
"""The timeline's note when Redis holds no timeline for the user at all."""

#: a user route whose id holds an encoded '/' (``%2F``): the id segment of the raw path
_SLASHED_ID = re.compile(rb"^(/v1/tenants/[^/]+/users/)([^/]*%2[fF][^/]*)(/.*)?$")


class SlashedUserIds:
    """ASGI middleware: user ids may hold '/' (the event contract allows any text), which a
    client writes ``%2F``. The router matches decoded paths, where ``org%2F42`` would read as
    two segments (and ``tl%2Ftimeline`` as the timeline of ``tl``), so the id is taken from
    the raw path here, the route is matched with a stand-in segment, and
    :func:`real_user_id` gives the endpoints the id itself.

    Example:
        >>> seen = {}
        >>> async def app(scope, receive, send): seen.update(scope)
        >>> import asyncio
        >>> asyncio.run(SlashedUserIds(app)({"type": "http", "path": "/v1/tenants/t/users/org/42",
        ...     "raw_path": b"/v1/tenants/t/users/org%2F42/why"}, None, None))
        >>> seen["path"], seen["state"]
        ('/v1/tenants/t/users/-/why', {'user_id': 'org/42'})
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        raw = scope.get("raw_path") if scope["type"] == "http" else None
        m = _SLASHED_ID.match(raw) if raw and b"%2" in raw else None
        if m is not None:
            rest = unquote(m.group(3).decode("ascii", "replace")) if m.group(3) else ""
            scope = {**scope, "path": unquote(m.group(1).decode("ascii", "replace")) + "-" + rest,
                     "state": {**scope.get("state", {}),
                               "user_id": unquote(m.group(2).decode("ascii", "replace"))}}
        await self.app(scope, receive, send)


def real_user_id(request: Request, user_id: UserIdPath) -> str:
    """The route's user id; the raw one when it holds a '/' (:class:`SlashedUserIds`)."""
    real = getattr(request.state, "user_id", None)
    if real is None:
        return user_id
    if len(real) > 256:  # what the path parameter's own max_length answers, as FastAPI words it
        raise RequestValidationError([{
            "type": "string_too_long", "loc": ("path", "user_id"),
            "msg": "String should have at most 256 characters", "input": real,
            "ctx": {"max_length": 256}}])
    return real


UserId = Annotated[str, Depends(real_user_id)]


class Why(BaseModel):
    tenant: str
    user_id: str
    tag_id: str
    value: Any = Field(description="current value (null: the user does not hold the tag)")
    why: dict[str, Any] | None = Field(
        description="rule, rule_version, ruleset, case (the matched condition), values that "
        "decided it: as of the tag's last change, not now (the record is written when the "
        "tag's value changes; when and by which event: the change's ts and trigger on "
        "tags.changes)")
    timeline: list[dict[str, Any]] = Field(description="newest-first changes of this tag "
                                           "(empty unless STREAM_APP_REDIS_TIMELINE > 0)")


class SegmentSize(BaseModel):
    tenant: str
    expr: str
    size: int


class SegmentPage(BaseModel):
    tenant: str
    expr: str
    total: int = Field(description="size of the segment when the first page was asked")
    members: list[str] = Field(description="user ids, in user-id order")
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page")
    skipped: int = Field(0, description="members of this page left out because the user was "
                         "deleted (forget) after the first page; over all pages, members "
                         "plus skipped add up to total")


class Explain(BaseModel):
    tenant: str
    expr: str
    plan: str
    commands: list[list[Any]]


class ValueDefOut(BaseModel):
    value: Any
    zh: str
    en: str


class TagDefOut(BaseModel):
    id: str
    family: str
    zh: str
    en: str
    kind: str
    version: int | str
    description: str
    values: list[ValueDefOut]


class TagDefs(BaseModel):
    ruleset_version: str
    tags: list[TagDefOut]


# -- the app -------------------------------------------------------------------------------

def _labels(ruleset: Any, tags: dict[str, Any]) -> dict[str, Label]:
    out = {}
    for tag_id, value in tags.items():
        t = ruleset.by_id.get(tag_id)
        if t is not None and value is not None:
            out[tag_id] = Label(zh=t.label(value, "zh"), en=t.label(value, "en"))
    return out


def create_app(settings: Settings | None = None, *, redis: Any = None, ruleset: Any = None,
               tenant_tokens: dict[str, list[str]] | None = None,
               follow_rules: bool = False) -> FastAPI:
    """Build the API. ``redis``: a ``redis.asyncio`` client (default: ``settings.redis_url``);
    ``ruleset``: default ``load_ruleset(settings.rules_path)``; ``tenant_tokens``: tenant ->
    tokens (see :mod:`stream_app.serving.auth`); ``follow_rules``: switch to rule sets
    published on ``rules.versions`` (``stream-app rules apply``), like the workers do."""
    settings = settings or get_settings()
    if ruleset is None:
        from stream_app.rules.loader import load_ruleset  # noqa: PLC0415

        ruleset = load_ruleset(settings.rules_path)
    if redis is None:
        import redis.asyncio as aioredis  # noqa: PLC0415

        redis = aioredis.Redis.from_url(settings.redis_url, socket_timeout=5,
                                        socket_connect_timeout=2)
    if settings.api_token == "change-me":
        log.warning("the API token is the default 'change-me': set STREAM_APP_API_TOKEN")
    auth = TokenAuth(settings.api_token, tenant_tokens)
    runner = SegmentRunner(redis, Catalog.from_ruleset(ruleset),
                           size_cache_s=float(os.environ.get(SIZE_CACHE_ENV, "5")))
    current = {"ruleset": ruleset}

    def use_ruleset(rs: Any) -> None:
        current["ruleset"] = rs
        runner.catalog = Catalog.from_ruleset(rs)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        follower = None
        if follow_rules:
            from stream_app.serving.rules_follow import RuleFollower  # noqa: PLC0415

            follower = RuleFollower(settings.kafka_bootstrap, use_ruleset).start()
        yield
        if follower is not None:
            follower.stop()
        close = getattr(redis, "aclose", None)
        if close is not None:
            await close()

    app = FastAPI(title="stream-app serving API", version="1",
                  description="Real-time learner tags, why records and segments (reads Redis).",
                  lifespan=lifespan)
    app.add_middleware(SlashedUserIds)
    app.state.redis, app.state.runner, app.state.use_ruleset = redis, runner, use_ruleset

    @app.get("/metrics", include_in_schema=False)
    async def metrics_page() -> Response:
        """Prometheus exposition at exactly ``/metrics`` (the mount below serves
        ``/metrics/`` with content negotiation). ``stream_app_ready`` is the API's own
        readiness, Redis answering PING, read at each scrape (it stayed 0: a worker's gauge
        the API never set)."""
        try:
            metrics.set_ready(bool(await redis.ping()))
        except (RedisError, OSError):
            metrics.set_ready(False)
        body, ctype = metrics.render()
        return Response(body, media_type=ctype)

    app.mount("/metrics", metrics.asgi_app())
    bearer = HTTPBearer(auto_error=False)

    def _token(creds: HTTPAuthorizationCredentials | None) -> str | None:
        return creds.credentials if creds is not None else None

    async def any_token(creds: Annotated[HTTPAuthorizationCredentials | None,
                                         Depends(bearer)]) -> None:
        if not auth.known(_token(creds)):
            raise HTTPException(401, "missing or unknown bearer token",
                                headers={"WWW-Authenticate": "Bearer"})

    async def tenant_token(tenant: Tenant, creds: Annotated[
            HTTPAuthorizationCredentials | None, Depends(bearer)]) -> str:
        scopes = auth.scopes(_token(creds))
        if not scopes:
            raise HTTPException(401, "missing or unknown bearer token",
                                headers={"WWW-Authenticate": "Bearer"})
        if "*" not in scopes and tenant not in scopes:
            raise HTTPException(403, f"this token may not read tenant {tenant!r}")
        return tenant

    TenantDep = Annotated[str, Depends(tenant_token)]

    @app.exception_handler(SegmentError)
    async def _bad_expr(request: Request, exc: SegmentError) -> JSONResponse:
        if isinstance(exc, CursorError) and "expired" in str(exc):
            return JSONResponse({"detail": str(exc)}, status_code=410)
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(StoredDataError)
    async def _stored_data(request: Request, exc: StoredDataError) -> JSONResponse:
        log.error("%s: %s", request.url.path, exc)
        return JSONResponse({"detail": str(exc)}, status_code=500)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        # Starlette's ServerErrorMiddleware sends this body, then re-raises: the server's
        # log keeps the traceback, the client gets the declared ErrorBody, not plain text
        return JSONResponse({"detail": f"internal error ({exc.__class__.__name__}); the "
                             "API's log has the details"}, status_code=500)

    @app.exception_handler(RedisError)
    async def _redis_error(request: Request, exc: RedisError) -> JSONResponse:
        log.warning("Redis error on %s: %s", request.url.path, exc)
        if isinstance(exc, RedisConnectionError | RedisTimeoutError):
            return JSONResponse({"detail": f"Redis unavailable: {exc.__class__.__name__}"},
                                status_code=503)
        return JSONResponse({"detail": f"Redis error ({exc.__class__.__name__}); the API's "
                             "log has the details"}, status_code=500)

    # -- health ----------------------------------------------------------------------------
    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    not_ready_log = {"reason": "", "at": -1e9}

    @app.get("/ready", tags=["health"],
             responses={503: {"model": NotReady, "description": "Redis does not answer"}})
    async def ready(request: Request) -> JSONResponse:
        """Ready when Redis answers PING; else 503 with a generic reason (the admin token
        gets the Redis error itself; the API's log has it, once a minute while it lasts)."""
        try:
            ok = bool(await redis.ping())
        except (RedisError, OSError) as exc:
            metrics.set_ready(False)
            detail = f"{exc.__class__.__name__}: {exc}"
            now = time.monotonic()
            if detail != not_ready_log["reason"] or now - not_ready_log["at"] >= 60:
                log.warning("not ready: Redis PING failed: %s", detail)
                not_ready_log.update(reason=detail, at=now)
            return JSONResponse({"status": "not ready",
                                 "redis": detail if _is_admin(request) else NOT_READY_REASON},
                                status_code=503)
        metrics.set_ready(ok)
        return JSONResponse({"status": "ready" if ok else "not ready"},
                            status_code=200 if ok else 503)

    # load balancers probe with HEAD (kept out of the spec: one operation id per route)
    app.add_api_route("/healthz", healthz, methods=["HEAD"], include_in_schema=False)
    app.add_api_route("/ready", ready, methods=["HEAD"], include_in_schema=False)

    def _is_admin(request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and ADMIN in auth.scopes(token.strip())

    # -- tag definitions -------------------------------------------------------------------
    @app.get("/v1/tags", response_model=TagDefs, tags=["tags"],
             dependencies=[Depends(any_token)], responses=errors(401))
    async def tag_definitions() -> TagDefs:
        """Every published tag of the rule set, with zh/en labels and enumerated values."""
        ruleset = current["ruleset"]
        return TagDefs(ruleset_version=ruleset.version, tags=[TagDefOut(
            id=t.id, family=t.family, zh=t.zh, en=t.en, kind=t.kind, version=t.version,
            description=t.description,
            values=[ValueDefOut(value=v.value, zh=v.zh, en=v.en) for v in t.values])
            for t in ruleset.tags])

    # -- users -----------------------------------------------------------------------------
    @app.get("/v1/tenants/{tenant}/users/{user_id}", response_model=Profile, tags=["users"],
             responses=errors(*TENANT_ERRORS, 404))
    async def profile(tenant: TenantDep, user_id: UserId) -> Profile:
        """Current tags (with labels), scores, layers (and what set each: model or rules)
        and counts of a user."""
        p = await reader.read_profile(redis, tenant, user_id)
        if p is None:
            raise HTTPException(404, f"no profile for user {user_id!r}")
        return Profile(tenant=tenant, user_id=user_id,
                       labels=_labels(current["ruleset"], p["tags"]), **p)

    @app.get("/v1/tenants/{tenant}/users/{user_id}/timeline", response_model=Timeline,
             tags=["users"], responses=errors(*TENANT_ERRORS, 404))
    async def timeline(tenant: TenantDep, user_id: UserId,
                       limit: Annotated[int, Query(ge=1, le=100)] = 20,
                       tag: Annotated[str | None, Query(description="only this tag")] = None,
                       ) -> Timeline:
        """Newest-first tag changes of a user when Redis keeps them
        (``STREAM_APP_REDIS_TIMELINE`` > 0; default 0: empty, with a ``note`` saying how to
        enable it); the full history with evidence is the ``tags.changes`` topic."""
        changes = await reader.read_timeline(redis, tenant, user_id, limit, tag)
        if not changes and not await redis.exists(keys.user_key(tenant, user_id)):
            raise HTTPException(404, f"no profile for user {user_id!r}")
        note = (TIMELINE_OFF if not changes
                and not await redis.exists(keys.timeline_key(tenant, user_id)) else None)
        return Timeline(tenant=tenant, user_id=user_id, changes=changes, note=note)

    @app.get("/v1/tenants/{tenant}/users/{user_id}/why", tags=["users"],
             responses=errors(*TENANT_ERRORS, 404))
    async def why_all(tenant: TenantDep, user_id: UserId) -> dict[str, Any]:
        """The why record of every tag the user holds (tag_id -> record, each as of that
        tag's last change; null when Redis keeps no why records,
        ``STREAM_APP_REDIS_WHY=off``)."""
        found = await reader.read_why(redis, tenant, user_id)
        if not found:
            p = await reader.read_profile(redis, tenant, user_id)
            if p is None:
                raise HTTPException(404, f"no profile for user {user_id!r}")
            found = {t: None for t, v in p["tags"].items() if v is not None}
        return {"tenant": tenant, "user_id": user_id, "why": found}

    @app.get("/v1/tenants/{tenant}/users/{user_id}/why/{tag_id}", response_model=Why,
             tags=["users"], responses=errors(*TENANT_ERRORS, 404))
    async def why_one(tenant: TenantDep, user_id: UserId, tag_id: str,
                      limit: Annotated[int, Query(ge=1, le=100)] = 20) -> Why:
        """Why the user holds ``tag_id`` (rule, version, the case that matched, the values
        that decided it, as of the tag's last change, not now) and the tag's recent changes
        (when Redis keeps a timeline)."""
        raw = await redis.hgetall(keys.user_key(tenant, user_id))
        w = (await reader.why_from_hash(redis, tenant, raw)).get(tag_id)
        if w is None and raw:  # the old layout (before redis-rebuild)
            w = await reader.read_why_one(redis, tenant, user_id, tag_id)
        changes = await reader.read_timeline(redis, tenant, user_id, limit, tag_id)
        value = reader.split_profile(raw)["tags"].get(tag_id) if raw else None
        if w is None and not changes and value is None:
            if not raw:   # no hash: the user is unknown in this tenant
                raise HTTPException(404, f"no profile for user {user_id!r}")
            raise HTTPException(404, f"user {user_id!r} has no why record or history of "
                                     f"{tag_id!r}")
        return Why(tenant=tenant, user_id=user_id, tag_id=tag_id, value=value, why=w,
                   timeline=changes)

    # -- segments --------------------------------------------------------------------------
    @app.get("/v1/tenants/{tenant}/segments/size", response_model=SegmentSize,
             tags=["segments"], responses=errors(*TENANT_ERRORS, 400))
    async def segment_size(tenant: TenantDep, expr: Expr) -> SegmentSize:
        """Number of users matching ``expr`` (cached a few seconds per expression)."""
        return SegmentSize(tenant=tenant, expr=expr, size=await runner.size(tenant, expr))

    @app.get("/v1/tenants/{tenant}/segments/members", response_model=SegmentPage,
             tags=["segments"], responses=errors(*TENANT_ERRORS, 400, 410))
    async def segment_members(tenant: TenantDep, expr: Expr,
                              limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
                              cursor: str | None = None) -> SegmentPage:
        """A page of user ids matching ``expr`` (a snapshot taken at the first page, unless
        the whole segment fits in it)."""
        page = await runner.page(tenant, expr, cursor, limit)
        return SegmentPage(tenant=tenant, expr=expr, total=page.total, members=page.members,
                           next_cursor=page.next_cursor, skipped=page.skipped)

    @app.get("/v1/tenants/{tenant}/segments/explain", response_model=Explain,
             tags=["segments"], responses=errors(*TENANT_ERRORS, 400))
    async def segment_explain(tenant: TenantDep, expr: Expr) -> Explain:
        """The Redis commands that compute ``expr`` (not run)."""
        p = await runner.compile(tenant, expr)
        return Explain(tenant=tenant, expr=expr, plan=p.explain(),
                       commands=[list(s) for s in p.steps])

    @app.get("/v1/tenants/{tenant}/segments/export", tags=["segments"],
             response_class=Response,
             responses={200: {"description": "the rows (headers X-Total-Count, X-Next-Cursor, "
                                             "X-Skipped-Count)",
                              "content": {"text/csv": {"schema": {"type": "string"}},
                                          "application/x-ndjson": {"schema": {"type": "string"}}}},
                        **errors(*TENANT_ERRORS, 400, 410)})
    async def segment_export(
            tenant: TenantDep, expr: Expr,
            format: Annotated[str, Query(pattern="^(csv|jsonl)$")] = "csv",  # noqa: A002
            fields: Annotated[str, Query(description="comma-separated tag ids")] = "",
            limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
            cursor: str | None = None,
            all: Annotated[bool, Query(description="stream every page in one body")] = False,  # noqa: A002
            ) -> Response:
        """Members with the chosen tag values as CSV or JSON Lines, one page per request
        (next cursor in the ``X-Next-Cursor`` header; ``X-Skipped-Count``: members left out
        because the user was deleted since the first page), or all pages streamed
        (``all=true``: a page failing mid-stream aborts the transfer, so the body is
        incomplete to the client, not short)."""
        wanted = [runner.catalog.resolve(f.strip()).id for f in fields.split(",") if f.strip()]
        page = await runner.page(tenant, expr, cursor, limit)
        media = export.FORMATS[format]
        if all:
            async def body() -> AsyncIterator[bytes]:
                p, first = page, True
                while True:
                    rows = await export.fetch_rows(redis, tenant, p.members, wanted)
                    chunk = export.render(rows, wanted, format)
                    if format == "csv" and not first:
                        chunk = chunk.split(b"\n", 1)[1]
                    if p.members or first:
                        yield chunk
                    first = False
                    if p.next_cursor is None:
                        return
                    p = await runner.page(tenant, expr, p.next_cursor, limit)

            return StreamingResponse(body(), media_type=media,
                                     headers={"X-Total-Count": str(page.total)})
        rows = await export.fetch_rows(redis, tenant, page.members, wanted)
        headers = {"X-Total-Count": str(page.total), "X-Skipped-Count": str(page.skipped)}
        if page.next_cursor:
            headers["X-Next-Cursor"] = page.next_cursor
        return Response(export.render(rows, wanted, format), media_type=media,
                        headers=headers)

    return app


TOKENS_ENV = "STREAM_APP_API_TOKENS_FILE"
FOLLOW_ENV = "STREAM_APP_API_FOLLOW_RULES"


def app_from_env() -> FastAPI:
    """The app as ``stream-app api`` runs it (uvicorn factory): settings from the environment,
    the tenant token map from the file named by ``STREAM_APP_API_TOKENS_FILE`` (if set), rule
    sets followed when ``STREAM_APP_API_FOLLOW_RULES=1``."""
    import os  # noqa: PLC0415

    from stream_app.serving.auth import load_tenant_tokens  # noqa: PLC0415

    path = os.environ.get(TOKENS_ENV)
    follow = os.environ.get(FOLLOW_ENV, "") in ("1", "true", "yes")
    return create_app(get_settings(), tenant_tokens=load_tenant_tokens(path) if path else None,
                      follow_rules=follow)
