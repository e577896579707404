"""Load tag rules from YAML: validate against ``config/rules.schema.json``, compile, order.

Errors raise :class:`~stream_app.errors.RuleError` naming the file, the line, the rule id and
the problem, e.g.::

    rules/activity.yaml:23: rule 'activity': cases.1.when: unknown function 'cuont' (column 1)

Example:
    >>> rs = ruleset_from_text('''
    ... version: "2024-05-01.1"
    ... params: {period: 30d}
    ... tags:
    ...   - id: active
    ...     family: activity
    ...     zh: 活跃
    ...     en: Active
    ...     kind: bool
    ...     value: "active_days($period) > 0"
    ... ''', name="mem.yaml")
    >>> rs.version.startswith("2024-05-01.1+"), [t.id for t in rs.tags]
    (True, ['active'])
    >>> ruleset_from_text("tags:\\n  - id: x\\n    family: f\\n    zh: a\\n    en: b\\n"
    ...                   "    kind: bool\\n    value: 'cuont(x)'\\n", name="bad.yaml")
    Traceback (most recent call last):
    ...
    stream_app.errors.RuleError: bad.yaml:7: rule 'x': value: unknown function 'cuont' (column 1)
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import yaml

from stream_app.config import REPO_ROOT
from stream_app.errors import RuleError
from stream_app.rules.compiler import DAY_MS, CompileError, compile_expr
from stream_app.rules.model import CaseDef, Referral, RuleSet, TagDef, ValueDef
from stream_app.rules.typecheck import kind_mismatch
from stream_app.state.requirements import Requirements

SCHEMA_PATH = REPO_ROOT / "config" / "rules.schema.json"

Path_ = tuple[Any, ...]


@lru_cache(maxsize=1)
def _validator() -> jsonschema.Draft202012Validator:
    schema = orjson.loads(SCHEMA_PATH.read_bytes())
    return jsonschema.Draft202012Validator(schema)


class _Doc:
    """A parsed YAML file: plain data plus the line of every node path."""

    def __init__(self, text: str, name: str) -> None:
        self.name = name
        self.lines: dict[Path_, int] = {}
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark else 0
            problem = getattr(exc, "problem", None) or str(exc)
            raise RuleError(f"{name}:{line}: YAML error: {problem}") from None
        self.data = self._convert(node, ()) if node is not None else {}

    def _convert(self, node: yaml.Node, path: Path_) -> Any:
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for k, v in node.value:
                key = str(k.value)
                if key in out:
                    raise RuleError(f"{self.name}:{k.start_mark.line + 1}: duplicate key {key!r}")
                out[key] = self._convert(v, path + (key,))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self._convert(v, path + (i,)) for i, v in enumerate(node.value)]
        loader = yaml.SafeLoader("")
        try:
            return loader.construct_object(node, deep=True)
        finally:
            loader.dispose()

    def line(self, path: Path_) -> int:
        """Line of ``path`` (or of its nearest ancestor)."""
        while path not in self.lines and path:
            path = path[:-1]
        return self.lines.get(path, 0)

    def rule_id(self, path: Path_) -> str | None:
        if len(path) >= 2 and path[0] == "tags" and isinstance(path[1], int):
            tags = self.data.get("tags") if isinstance(self.data, dict) else None
            if isinstance(tags, list) and path[1] < len(tags) and isinstance(tags[path[1]], dict):
                rid = tags[path[1]].get("id")
                return str(rid) if rid is not None else None
        return None

    def error(self, path: Path_, problem: str) -> RuleError:
        rid = self.rule_id(path)
        where = f"{self.name}:{self.line(path)}"
        return RuleError(f"{where}: rule {rid!r}: {problem}" if rid else f"{where}: {problem}")


def _validate(doc: _Doc) -> None:
    errors = sorted(_validator().iter_errors(doc.data), key=lambda e: list(e.absolute_path))
    if not errors:
        return
    err = jsonschema.exceptions.best_match(errors)
    path = tuple(err.absolute_path)
    problem = err.message
    if err.validator == "oneOf" and path[:1] == ("tags",):
        problem = "a tag needs either 'cases' (with an optional 'default') or 'value'"
    field = ".".join(str(p) for p in path[2:]) if path[:1] == ("tags",) else ".".join(
        str(p) for p in path)
    raise doc.error(path, f"{field}: {problem}" if field else problem)


def _compile(doc: _Doc, path: Path_, text: str, req: Requirements, params: dict[str, Any],
             tag_id: str, kinds: dict[str, str] | None = None):
    """Compile the rule expression of ``tag_id`` at ``path`` (errors name the file, line,
    rule, field and column); ``kinds``: tag id -> kind of the rule set (types ``tag(id)``)."""
    try:
        return compile_expr(text, req, params, tag_id=tag_id, tag_kinds=kinds)
    except CompileError as exc:
        field = ".".join(str(p) for p in path[2:])
        raise doc.error(path, f"{field}: {exc}") from None


def _build_tag(doc: _Doc, i: int, raw: dict[str, Any], req: Requirements,
               params: dict[str, Any], kinds: dict[str, str] | None = None) -> TagDef:
    """The tag of ``raw`` (``tags.<i>`` of ``doc``), its expressions compiled and
    type-checked: a ``value`` expression whose type does not fit the tag's kind is refused
    (:func:`~stream_app.rules.typecheck.kind_mismatch`), as a case's value that does not
    (:func:`_check_value`).

    >>> ruleset_from_text("tags:\\n  - {id: n, family: f, zh: a, en: b, kind: number, "
    ...                   "value: 'count(x) > 0'}\\n", name="k.yaml")
    Traceback (most recent call last):
    ...
    stream_app.errors.RuleError: k.yaml:2: rule 'n': value: a number tag's value must be ...
    """
    base: Path_ = ("tags", i)
    tag = TagDef(id=raw["id"], family=raw["family"], zh=raw["zh"], en=raw["en"],
                 version=raw.get("version", 1), kind=raw["kind"],
                 hidden=raw.get("hidden", False), round=raw.get("round"),
                 description=raw.get("description", ""),
                 source=f"{doc.name}:{doc.line(base)}")
    if "value" in raw:
        if tag.kind == "enum":
            raise doc.error(base + ("value",), "an enum tag needs 'cases', not 'value'")
        tag.expr = _compile(doc, base + ("value",), raw["value"], req, params, tag.id, kinds)
        problem = kind_mismatch(tag.kind, tag.expr.vtype)
        if problem:
            raise doc.error(base + ("value",), f"value: {problem}")
        return tag
    seen: set[Any] = set()
    for j, case in enumerate(raw["cases"]):
        p = base + ("cases", j)
        value = case["value"]
        _check_value(doc, p, tag, value)
        tag.cases.append(CaseDef(value, _compile(doc, p + ("when",), case["when"], req, params,
                                                  tag.id, kinds)))
        if value is not None and value not in seen:
            seen.add(value)
            tag.values.append(ValueDef(value, case.get("zh", ""), case.get("en", "")))
    default = raw.get("default")
    if default is not None:
        _check_value(doc, base + ("default",), tag, default["value"])
        tag.cases.append(CaseDef(default["value"], None))
        if default["value"] is not None and default["value"] not in seen:
            tag.values.append(ValueDef(default["value"], default.get("zh", ""),
                                       default.get("en", "")))
    if tag.kind == "enum":
        for v in tag.values:
            if not (v.zh and v.en):
                raise doc.error(base, f"enum value {v.value!r} needs zh and en labels")
    return tag


def _check_value(doc: _Doc, path: Path_, tag: TagDef, value: Any) -> None:
    if value is None:
        return
    ok = {"enum": isinstance(value, str), "bool": isinstance(value, bool),
          "number": isinstance(value, int | float) and not isinstance(value, bool),
          "text": isinstance(value, str), "set": isinstance(value, str)}[tag.kind]
    if not ok:
        raise doc.error(path, f"value {value!r} does not fit kind {tag.kind!r}")


def _order(tags: list[TagDef], deps: dict[str, set[str]], where: dict[str, str]) -> list:
    by_id = {t.id: t for t in tags}
    for t in tags:
        for d in sorted(deps[t.id]):
            if d not in by_id:
                raise RuleError(f"{where[t.id]}: tag({d}) refers to an unknown tag")
    out: list[TagDef] = []
    state: dict[str, int] = {}  # 1 = visiting, 2 = done

    def visit(tid: str, chain: list[str]) -> None:
        if state.get(tid) == 2:
            return
        if state.get(tid) == 1:
            cycle = " -> ".join(chain[chain.index(tid):] + [tid])
            raise RuleError(f"{where[tid]}: dependency cycle {cycle}")
        state[tid] = 1
        for d in sorted(deps[tid]):
            visit(d, chain + [tid])
        state[tid] = 2
        out.append(by_id[tid])

    for t in tags:
        visit(t.id, [])
    return out


def _build(docs: list[_Doc], texts: list[str]) -> RuleSet:
    params: dict[str, Any] = {}
    declared: list[str] = []
    referral = Referral()
    for doc in docs:
        _validate(doc)
        for k, v in (doc.data.get("params") or {}).items():
            if k in params and params[k] != v:
                raise doc.error(("params", k), f"parameter ${k} is set differently elsewhere")
            params[k] = v
        if doc.data.get("version"):
            declared.append(str(doc.data["version"]))
        if "referral" in doc.data:
            r = doc.data["referral"]
            referral = Referral(tuple(r.get("props", referral.props)),
                                dict(r.get("stages", {})))
    req = Requirements()
    tags: list[TagDef] = []
    deps: dict[str, set[str]] = {}
    where: dict[str, str] = {}
    granularity = DAY_MS
    # every tag's kind before any rule is compiled: tag(id) of a tag defined later is typed too
    kinds = {str(raw["id"]): str(raw["kind"]) for doc in docs
             for raw in doc.data.get("tags") or []}
    for doc in docs:
        for i, raw in enumerate(doc.data.get("tags") or []):
            if raw["id"] in where:
                raise doc.error(("tags", i, "id"),
                                f"duplicate tag id (first defined at {where[raw['id']]})")
            tag = _build_tag(doc, i, raw, req, params, kinds)
            tag.finish()
            exprs = [tag.expr] if tag.expr else [c.when for c in tag.cases if c.when]
            deps[tag.id] = set(tag.deps)
            granularity = min([granularity] + [e.granularity_ms for e in exprs])
            where[tag.id] = f"{tag.source}: rule {tag.id!r}"
            tags.append(tag)
    order = _order(tags, deps, where)
    digest = hashlib.sha256("\0".join(texts).encode()).hexdigest()[:8]
    version = f"{'+'.join(sorted(set(declared))) or '0'}+{digest}"
    return RuleSet(version=version, order=order, params=params, requirements=req,
                   granularity_ms=granularity, referral=referral,
                   sources=[d.name for d in docs])


def ruleset_from_text(text: str, name: str = "<string>") -> RuleSet:
    """Compile one YAML document of rules."""
    return _build([_Doc(text, name)], [text])


def ruleset_from_files(files: dict[str, str], root: Path | str | None = None) -> RuleSet:
    """Compile several YAML documents (``name -> text``, taken in name order) as one set.

    ``root``: the directory the files come from; errors (and each tag's ``source``) name a
    file as ``root/name``, so with several rule directories in play (a draft and the live
    one) the message says which. The version does not depend on it.

    >>> ruleset_from_files({"bad.yaml": "tags: 3\\n"}, root="drafts/rules")
    Traceback (most recent call last):
    ...
    stream_app.errors.RuleError: drafts/rules/bad.yaml:1: 3 is not of type 'array'
    """
    names = sorted(files)
    texts = [files[n] for n in names]
    shown = [str(Path(root) / n) if root is not None else n for n in names]
    return _build([_Doc(t, n) for t, n in zip(texts, shown, strict=True)], texts)


def load_ruleset(path: Path | str) -> RuleSet:
    """Compile a YAML file, or every ``*.yaml``/``*.yml`` file of a directory (sorted)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
        if not files:
            raise RuleError(f"{path}: no *.yaml rule files")
    elif path.exists():
        files = [path]
    else:
        raise RuleError(f"{path}: no such rule file or directory")
    texts = [f.read_text(encoding="utf-8") for f in files]
    docs = [_Doc(t, str(f)) for t, f in zip(texts, files, strict=True)]
    return _build(docs, texts)
