"""Another revision's ``stream_app`` imported next to this one, for lockstep comparisons.

``with other_tree(root): ...`` imports ``stream_app`` modules from the tree under ``root``;
on leaving, those modules drop out of ``sys.modules`` and this process's own come back, so
objects taken inside keep the other tree's code (and an import the other tree does later,
inside a function, gets this tree's module).

Example:
    >>> import stream_app.errors as mine
    >>> from stream_app.config import REPO_ROOT
    >>> with other_tree(REPO_ROOT):
    ...     import stream_app.errors as theirs
    >>> theirs is mine, sys.modules["stream_app.errors"] is mine
    (False, True)
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _ours() -> dict[str, object]:
    return {k: m for k, m in sys.modules.items()
            if k == "stream_app" or k.startswith("stream_app.")}


@contextmanager
def other_tree(root: Path) -> Iterator[None]:
    """Import ``stream_app`` from ``root`` inside the block (see the module docstring)."""
    mine = _ours()
    for k in mine:
        del sys.modules[k]
    sys.path.insert(0, str(root))
    try:
        yield
    finally:
        sys.path.remove(str(root))
        for k in _ours():
            del sys.modules[k]
        sys.modules.update(mine)


@contextmanager
def no_registry() -> Iterator[None]:
    """Collectors created inside are kept out of Prometheus' default registry (a second
    tree's ``stream_app.metrics`` would otherwise clash with this one's names)."""
    import prometheus_client  # noqa: PLC0415

    reg = prometheus_client.REGISTRY
    saved = reg.register
    reg.register = lambda collector: None   # type: ignore[method-assign]
    try:
        yield
    finally:
        reg.register = saved   # type: ignore[method-assign]
