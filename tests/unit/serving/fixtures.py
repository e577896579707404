"""Shared data of the serving unit tests: a small rule set, random users, a Redis filled
through the projection's own operations, and a reference evaluator of segment expressions.

Async clients are bound to one event loop: every test runs its coroutines with :func:`run`
(on :data:`LOOP`)."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from stream_app.rules.loader import ruleset_from_text
from stream_app.serving.projection import _apply, change_ops
from stream_app.serving.segments import And, Cmp, Eq, Has, In, Lit, Ne, Not, Or

RULES = """
version: "test.1"
tags:
  - {id: activity, family: activity, zh: 活跃度, en: Activity, kind: enum,
     cases: [{value: high, zh: 高, en: High, when: "count(course_view) > 3"},
             {value: low, zh: 低, en: Low, when: "count(course_view) > 0"}],
     default: {value: churned, zh: 流失, en: Churned}}
  - {id: lifecycle, family: lifecycle, zh: 生命周期, en: Lifecycle, kind: enum,
     cases: [{value: growth, zh: 成长期, en: Growth, when: "count(order_paid) > 0"},
             {value: mature, zh: 成熟期, en: Mature, when: "count(order_paid) > 2"}],
     default: {value: novice, zh: 新手期, en: Novice}}
  - {id: refunded, family: consumption, zh: 退款, en: Refunded, kind: bool,
     value: "count(refund) > 0"}
  - {id: at_risk, family: learning, zh: 风险, en: At risk, kind: bool,
     value: "count(lesson_missed) > 2"}
  - {id: lead_points, family: lead, zh: 积分, en: Lead points, kind: number,
     value: "count(course_view)"}
  - {id: first_channel, family: channel, zh: 渠道, en: Channel, kind: text,
     value: "first(click.channel)"}
  - {id: categories_bought, family: consumption, zh: 类目, en: Categories, kind: set,
     value: "distinct(order_paid.category)"}
"""

ENUMS = {"activity": ["high", "low", "churned"], "lifecycle": ["growth", "mature", "novice"]}
CHANNELS = ["douyin", "bilibili", "baidu sem", "北京地推"]
CATEGORIES = ["java", "python", "pmp"]


LOOP = asyncio.new_event_loop()


def run(coro: Any) -> Any:
    """Run a coroutine on the shared loop of the serving tests."""
    return LOOP.run_until_complete(coro)


def ruleset():
    return ruleset_from_text(RULES, name="serving-test.yaml")


def random_users(seed: int, n: int, prefix: str = "u") -> dict[str, dict[str, Any]]:
    """``n`` users with random tag values (some tags missing)."""
    rnd = random.Random(seed)
    users: dict[str, dict[str, Any]] = {}
    for i in range(n):
        tags: dict[str, Any] = {}
        for tag, values in ENUMS.items():
            if rnd.random() < 0.8:
                tags[tag] = rnd.choice(values)
        if rnd.random() < 0.3:
            tags["refunded"] = True
        if rnd.random() < 0.6:
            tags["at_risk"] = rnd.random() < 0.5
        if rnd.random() < 0.7:
            tags["lead_points"] = rnd.choice([0, 1, 2.5, 3, 5, 8, 13, 21])
        if rnd.random() < 0.7:
            tags["first_channel"] = rnd.choice(CHANNELS)
        if rnd.random() < 0.5:
            tags["categories_bought"] = sorted(rnd.sample(CATEGORIES, rnd.randint(1, 2)))
        if not tags:
            tags["activity"] = "low"
        users[f"{prefix}{i:04d}"] = tags
    return users


def projection_ops(tenant: str, users: dict[str, dict[str, Any]]) -> list[tuple]:
    """The operations the projection writes for these users (one change per tag, with a
    previous value first for some, so stale set memberships must have been removed)."""
    ops: list[tuple] = []
    for uid, tags in users.items():
        for tag, value in tags.items():
            old = None
            if tag in ENUMS:  # go through another value first: exercises SREM of the old one
                old = next(v for v in ENUMS[tag] if v != value)
                ops += change_ops({"user_id": uid, "tenant": tenant, "tag_id": tag,
                                   "old": None, "new": old, "seq": 1}, None)
            why = {"rule": tag, "rule_version": 1, "values": {"x": 1}, "trigger": f"{uid}-e"}
            ops += change_ops({"user_id": uid, "tenant": tenant, "tag_id": tag, "old": old,
                               "new": value, "seq": 2, "ts": 1_700_000_000_000}, why)
    return ops


def fill(redis: Any, tenant: str, users: dict[str, dict[str, Any]]) -> None:
    fill_ops(redis, projection_ops(tenant, users))


def fill_ops(redis: Any, ops: list[tuple]) -> None:
    """Write projection operations through an async client (one pipeline)."""
    async def go() -> None:
        pipe = redis.pipeline(transaction=False)
        for op in ops:
            _apply(pipe, op)
        await pipe.execute()

    run(go())


# -- reference evaluator: the meaning of an expression, user by user -----------------------

KINDS = {"activity": "enum", "lifecycle": "enum", "refunded": "bool", "at_risk": "bool",
         "lead_points": "number", "first_channel": "text", "categories_bought": "set"}


def _lit(tag: str, lit: Lit) -> Any:
    k = KINDS[tag]
    if k == "number":
        return float(lit.text)
    if k == "bool":
        return lit.text.lower() == "true"
    return lit.text


def _eq(tags: dict[str, Any], tag: str, lit: Lit) -> bool:
    if tag not in tags:
        return False
    v, want = tags[tag], _lit(tag, lit)
    if KINDS[tag] == "set":
        return want in v
    return v == want


def holds(tags: dict[str, Any], node: Any) -> bool:
    if isinstance(node, And):
        return all(holds(tags, i) for i in node.items)
    if isinstance(node, Or):
        return any(holds(tags, i) for i in node.items)
    if isinstance(node, Not):
        return not holds(tags, node.item)
    tag = node.tag.split(".")[-1]
    if isinstance(node, Eq):
        return _eq(tags, tag, node.value)
    if isinstance(node, Ne):
        return tag in tags and not _eq(tags, tag, node.value)
    if isinstance(node, In):
        return any(_eq(tags, tag, v) for v in node.values)
    if isinstance(node, Has):
        return tags.get(tag) is True if KINDS[tag] == "bool" else tag in tags
    if isinstance(node, Cmp):
        if tag not in tags:
            return False
        v, x = tags[tag], float(node.value.text)
        return {"<": v < x, "<=": v <= x, ">": v > x, ">=": v >= x}[node.op]
    raise AssertionError(node)


def reference(users: dict[str, dict[str, Any]], ast: Any) -> set[str]:
    return {uid for uid, tags in users.items() if holds(tags, ast)}


def _quote(v: str) -> str:
    return f'"{v}"' if not v.isidentifier() else v


def random_expr(rnd: random.Random, depth: int = 0) -> str:
    """A random expression over the test tags (text form)."""
    r = rnd.random()
    if depth < 3 and r < 0.35:
        op = rnd.choice([" AND ", " OR ", " and ", " or "])
        parts = [random_expr(rnd, depth + 1) for _ in range(rnd.randint(2, 3))]
        return "(" + op.join(parts) + ")"
    if depth < 3 and r < 0.45:
        return "NOT " + random_expr(rnd, depth + 1)
    kind = rnd.choice(["enum", "enum_in", "bool", "num", "num_eq", "has", "text", "text_ne",
                       "set", "enum_ne", "not_in", "family"])
    if kind == "enum":
        tag = rnd.choice(list(ENUMS))
        return f"{tag} = {rnd.choice(ENUMS[tag])}"
    if kind == "family":
        return f"family.activity = {rnd.choice(ENUMS['activity'])}"
    if kind == "enum_ne":
        return f"lifecycle != {rnd.choice(ENUMS['lifecycle'])}"
    if kind in ("enum_in", "not_in"):
        tag = rnd.choice(list(ENUMS))
        vals = ", ".join(rnd.sample(ENUMS[tag], rnd.randint(1, 2)))
        return f"{tag} {'NOT IN' if kind == 'not_in' else 'IN'} ({vals})"
    if kind == "bool":
        return f"{rnd.choice(['refunded', 'at_risk'])} = {rnd.choice(['true', 'false'])}"
    if kind == "num":
        return f"lead_points {rnd.choice(['<', '<=', '>', '>='])} {rnd.choice([0, 2.5, 3, 10])}"
    if kind == "num_eq":
        return f"lead_points {rnd.choice(['=', '!='])} {rnd.choice([0, 3, 2.5, 4])}"
    if kind == "has":
        return "tag:" + rnd.choice(list(KINDS))
    if kind == "text":
        return f"first_channel = {_quote(rnd.choice(CHANNELS))}"
    if kind == "text_ne":
        return f"first_channel != {_quote(rnd.choice(CHANNELS))}"
    return f"categories_bought = {rnd.choice(CATEGORIES)}"
