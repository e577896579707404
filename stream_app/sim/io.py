"""Event files (JSON lines, ``.jsonl`` or ``.jsonl.gz``) and the ground-truth file.

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> evs = [{"event_id": "e1", "user_id": "u1", "ts": 1, "type": "x", "props": {}}]
    >>> write_jsonl(evs, d / "a.jsonl.gz")
    1
    >>> list(read_jsonl(d / "a.jsonl.gz")) == evs
    True
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import orjson

_BATCH = 4096


def _open(path: Path, mode: str) -> IO[bytes]:
    if str(path).endswith(".gz"):
        # level 3: ~3x faster than the default 9 for ~10% more bytes
        return gzip.open(path, mode, compresslevel=3) if "w" in mode else gzip.open(path, mode)
    return open(path, mode)  # noqa: SIM115


def write_jsonl(events: Iterable[dict[str, Any]], path: Path | str,
                progress: Callable[[int, dict[str, Any]], None] | None = None) -> int:
    """Write one JSON object per line (gzip if the name ends in ``.gz``); return the count.

    ``progress(n, last_event)`` is called every few thousand events and at the end.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    dumps = orjson.dumps
    n = 0
    last: dict[str, Any] | None = None
    with _open(p, "wb") as fh:
        buf: list[bytes] = []
        for ev in events:
            buf.append(dumps(ev))
            n += 1
            if len(buf) >= _BATCH:
                fh.write(b"\n".join(buf) + b"\n")
                buf.clear()
                if progress is not None:
                    progress(n, ev)
            last = ev
        if buf:
            fh.write(b"\n".join(buf) + b"\n")
    if progress is not None and last is not None:
        progress(n, last)
    return n


def read_jsonl(path: Path | str) -> Iterator[dict[str, Any]]:
    """The events of a ``.jsonl`` / ``.jsonl.gz`` file, in file order (blank lines skipped)."""
    with _open(Path(path), "rb") as fh:
        for line in fh:
            if line.strip():
                yield orjson.loads(line)


def write_json(doc: Any, path: Path | str) -> None:
    """Write ``doc`` as JSON (gzip if the name ends in ``.gz``), e.g. the ground truth."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with _open(p, "wb") as fh:
        fh.write(orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS))


def read_json(path: Path | str) -> Any:
    """Read a file written by :func:`write_json`."""
    with _open(Path(path), "rb") as fh:
        return orjson.loads(fh.read())
