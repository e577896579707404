"""Merging the partial points of several partitions (workers) into whole series points.

Each partition's :class:`~stream_app.business.BusinessAggregator` (``zeros=False``) sends the
points of the windows it closed and its watermark (the largest event time it has seen). A
window is complete once every active partition's watermark has passed its end plus lateness
(a partition silent for ``idle_after_s`` of wall time is not waited for); then its partials
are one point per series (counts add, rates are sums of numerators over sums of
denominators), with an explicit zero for every count or revenue series seen before but not in
this window, so a channel that goes silent shows as a drop. A window no partition sent
anything for (a total outage: the watermarks move on the clock, no event arrives) is released
too, as zeros of every series seen before, so the drop shows while it lasts, not only when
traffic resumes.

Incomplete windows. A partition's open windows live in its worker's memory: after a crash
(or a clean stop, or a rebalance that moves the partition) the new counter starts at the last
committed offset, and the counts of the windows open at that moment are lost. Each partition
therefore reports the event time from which its current counter counts (``counted_from``, its
first event); a released window is *incomplete* (``SeriesPoint.complete`` False) when

- some partition's counter started after the window began (less the window's lateness: the
  events the previous counter had read are at most that far past the first one re-read),
- this merger started after some partition had already sent it (the anomaly agent itself
  restarted: partials read before are gone; each message tells the watermark of the
  partition's previous message, so the first message this merger reads tells what it
  missed), or
- a partition was not waited for (silent for ``idle_after_s`` of wall time, e.g. its worker
  is down) and had not passed it; a partition silent for ``gone_after_s`` is taken as gone.

Incomplete points are released like the others (dashboards, rate gauges), and the anomaly
monitor neither scores nor learns them: a restart shows as a gap in the detector's input, not
as a collapse. A restarted merger knows no series until it is told them: the anomaly agent
seeds it (:meth:`Merger.seed`) with the series of its restored monitor, so a series silent
since before the restart still gets its zeros after the gap. Rows for a window already
released (a partition that comes back after it was not waited for) are dropped and counted
in :attr:`Merger.stale_rows`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from stream_app.business.series import SeriesKey, SeriesPoint
from stream_app.business.spec import BusinessSpec

__all__ = ["GONE_AFTER_S", "IDLE_AFTER_S", "Merger"]

IDLE_AFTER_S = 60.0   # a partition silent this long (wall time) is not waited for
#: ... and one silent this long no longer makes the windows it missed incomplete (a
#: partition nobody reads any more; a worker down this long has paged by other means)
GONE_AFTER_S = 900.0
#: at most this many empty windows of one kind are filled with zeros at once (a watermark
#: that jumps days ahead, e.g. a replay after a pause, fills only the latest ones)
MAX_FILL = 1_440


class Merger:
    """Partial points of every (series, window) until every active partition has passed it.

    Partials are summed as they arrive: one accumulator per series and window, whatever the
    number of partitions and messages.

    Example:
        >>> from stream_app.business import load_business_spec
        >>> m = Merger(load_business_spec(), wall=lambda: 0.0)
        >>> a = SeriesPoint("leads", "default", "all", "1m", 0, 60_000, 2, 2, "count")
        >>> m.add("click:0", 180_000, [a]); m.add("click:1", 30_000, [])   # click:1 is behind
        >>> m.ready()
        []
        >>> m.add("click:1", 200_000, [SeriesPoint("leads", "default", "all", "1m", 0, 60_000, 3, 3,
        ...                                "count")])
        >>> [(p.metric, p.value) for p in m.ready()]
        [('leads', 5)]
    """

    def __init__(self, spec: BusinessSpec, wall: Callable[[], float] = time.monotonic,
                 idle_after_s: float = IDLE_AFTER_S, gone_after_s: float = GONE_AFTER_S) -> None:
        self.spec = spec
        self.idle_after_s = idle_after_s
        self.gone_after_s = gone_after_s
        #: source -> event time its current counter counts from (the last one reported: an
        #: earlier one too, e.g. a replay of older event times after a restart)
        self.counted_from: dict[str, int] = {}
        #: source -> the watermark of its message before the first one this merger read
        #: (the windows it had closed by then went to an earlier merger: incomplete)
        self.sent_before: dict[str, int] = {}
        #: window -> windows starting before this are incomplete (from the two dicts above;
        #: cleared when they change)
        self._complete_from: dict[str, int] = {}
        self._heard: set[str] = set()
        #: rows for a window already released, dropped
        self.stale_rows = 0
        #: (window, start_ms) -> (end_ms, series key -> [num, den, kind])
        self.pending: dict[tuple[str, int], tuple[int, dict[SeriesKey, list[Any]]]] = {}
        self.known: dict[str, dict[SeriesKey, str]] = {}   # window -> series key -> kind
        #: window -> the keys of ``known`` that are no rate, in the same order (the series a
        #: released window gives an explicit zero when it has no point of them)
        self._zeroed: dict[str, list[tuple[SeriesKey, str]]] = {}
        self.watermarks: dict[str, tuple[int, float]] = {}   # source -> (wm, wall seen)
        #: window -> end of the latest window released (empty windows after it are filled)
        self.released: dict[str, int] = {}
        self._wall = wall

    def seed(self, series: Mapping[SeriesKey, str]) -> int:
        """Take ``series`` (key -> kind) as seen before: a released window gives each of them
        that is no rate an explicit zero when it has no point of it. A restarted anomaly
        agent seeds its new merger with the series its restored monitor knows, so a channel
        silent since before the restart is still a drop; return how many were new. Keys of
        a window this spec lacks are ignored.

        >>> from stream_app.business import load_business_spec
        >>> m = Merger(load_business_spec(), wall=lambda: 0.0)
        >>> m.seed({("leads", "default", "douyin", "1m"): "count"})
        1
        >>> m.add("click:0", 200_000, [SeriesPoint("leads", "default", "all", "1m", 0, 60_000,
        ...                                        2, 2, "count")])
        >>> [(p.channel, p.value) for p in m.ready()]    # no douyin event: a zero
        [('all', 2), ('douyin', 0.0)]
        """
        new = 0
        for key, kind in series.items():
            window = key[3]
            if window not in self.spec.windows:
                continue
            known = self.known.get(window)
            if known is None:
                known = self.known[window] = {}
                self._zeroed[window] = []
            was = known.get(key)
            if was != kind:
                known[key] = kind
                self._known_changed(window, key, kind, was)
                new += was is None
        return new

    def add(self, partition: str, watermark: int | None, points: list[SeriesPoint],
            counted_from: int | None = None, prev_watermark: int | None = None) -> None:
        """Take ``partition``'s watermark, partial ``points``, the event time its counter
        counts from (``BusinessAggregator.counted_from``) and the watermark of its previous
        message (None: not told, or this is the counter's first message)."""
        self.add_rows(partition, watermark,
                      [(p.metric, p.tenant, p.channel, p.window, p.start_ms, p.end_ms, p.num,
                        p.den, p.kind) for p in points], counted_from, prev_watermark)

    def add_rows(self, partition: str, watermark: int | None,
                 rows: list[tuple[Any, ...]] | list[list[Any]],
                 counted_from: int | None = None, prev_watermark: int | None = None) -> None:
        """:meth:`add` of points as rows in :class:`SeriesPoint` field order (as the
        ``metrics.partials`` messages carry them), without making a point of each. A row
        of another length raises ValueError before anything is taken.

        >>> from stream_app.business import load_business_spec
        >>> m = Merger(load_business_spec(), wall=lambda: 0.0)
        >>> m.add_rows("click:0", 200_000, [["leads", "default", "all", "1m", 0, 60_000, 2, 2,
        ...                                  "count"]])
        >>> [(p.metric, p.value) for p in m.ready()]
        [('leads', 2)]
        """
        parsed = [(metric, tenant, channel, window, start, end, num, den, kind)
                  for metric, tenant, channel, window, start, end, num, den, kind in rows]
        if counted_from is not None and counted_from != self.counted_from.get(partition):
            # the latest counter's (a worker forgets the counter of a partition that moved
            # away: its last messages carry none)
            self.counted_from[partition] = counted_from
            self._complete_from.clear()
        if partition not in self._heard:
            self._heard.add(partition)
            if prev_watermark is not None:
                self.sent_before[partition] = prev_watermark
                self._complete_from.clear()
        if watermark is not None:
            old = self.watermarks.get(partition)
            if old is None or watermark >= old[0]:
                self.watermarks[partition] = (watermark, self._wall())
        pending, known_of, released = self.pending, self.known, self.released
        for metric, tenant, channel, window, start, end, num, den, kind in parsed:
            slot = pending.get((window, start))
            if slot is None:
                last = released.get(window)
                if last is not None and end <= last:   # released without it: too late
                    self.stale_rows += 1
                    continue
                slot = pending[window, start] = (end, {})
            key = (metric, tenant, channel, window)
            acc = slot[1].get(key)
            if acc is None:
                slot[1][key] = [num, den, kind]
                known = known_of.get(window)
                if known is None:
                    known = known_of[window] = {}
                    self._zeroed[window] = []
                was = known.get(key)
                if was != kind:
                    known[key] = kind
                    self._known_changed(window, key, kind, was)
            else:
                acc[0] += num
                acc[1] += den

    def _known_changed(self, window: str, key: SeriesKey, kind: str, was: str | None) -> None:
        """Keep ``_zeroed`` in step with ``known`` after ``key`` became ``kind``."""
        if was is None:
            if kind != "rate":
                self._zeroed[window].append((key, kind))
        else:   # a series changed kind (a bad message): its place in the order stays
            self._zeroed[window] = [(k, kd) for k, kd in self.known[window].items()
                                    if kd != "rate"]

    def ready_windows(self) -> Iterator[list[SeriesPoint]]:
        """Merged points of each window every active partition has closed, oldest first, one
        window at a time. Series seen before but not in the window get an explicit zero
        (rates excepted), so a channel that goes silent shows as a drop."""
        wall = self._wall()
        active = [wm for wm, seen in self.watermarks.values() if wall - seen < self.idle_after_s]
        if not active:
            return
        low = min(active)
        #: the least watermark of the partitions not waited for but not gone either
        missing = min((wm for wm, seen in self.watermarks.values()
                       if self.idle_after_s <= wall - seen < self.gone_after_s), default=None)
        done = [k for k, (end, _) in self.pending.items()
                if end + self.spec.windows[k[0]].lateness_ms <= low]
        done.extend(self._empty_windows(low))
        done.sort(key=lambda k: k[1])
        for window, start in done:
            end, acc = self.pending.pop((window, start), None) or (
                start + self.spec.windows[window].size_ms, {})
            self.released[window] = max(end, self.released.get(window, end))
            complete = start >= self.complete_from(window) and (
                missing is None or missing >= end + self.spec.windows[window].lateness_ms)
            out = [SeriesPoint(key[0], key[1], key[2], window, start, end, a[0], a[1], a[2],
                               complete)
                   for key, a in acc.items() if a[1] > 0 or a[2] != "rate"]
            out.extend([SeriesPoint(key[0], key[1], key[2], window, start, end, 0.0, 0.0, kind,
                                    complete)
                        for key, kind in self._zeroed.get(window, ()) if key not in acc])
            yield out

    def complete_from(self, window: str) -> int:
        """The earliest start of a complete ``window``-kind window, as far as restarts go:
        every partition's counter counted from before it began (its ``counted_from`` plus
        the window's lateness is at most the start) and this merger read every partition's
        messages from before the partition closed it (``sent_before`` is before the window's
        end plus lateness).

        >>> from stream_app.business import load_business_spec
        >>> m = Merger(load_business_spec(), wall=lambda: 0.0)   # 1h: lateness 5 min
        >>> m.add("click:0", 3_600_000, [], counted_from=3_000_000)
        >>> m.complete_from("1h")            # 50 min + 5 min: the 1-2 h window is complete
        3300000
        """
        bound = self._complete_from.get(window)
        if bound is None:
            ws = self.spec.windows[window]
            bound = max([f + ws.lateness_ms for f in self.counted_from.values()]
                        + [wm - ws.size_ms - ws.lateness_ms + 1
                           for wm in self.sent_before.values()], default=-(2 ** 62))
            self._complete_from[window] = bound
        return bound

    def _empty_windows(self, low: int) -> list[tuple[str, int]]:
        """(window, start) of the windows after the latest released one that every active
        partition has passed and none sent a point for (only kinds with series seen)."""
        out: list[tuple[str, int]] = []
        for window, last_end in self.released.items():
            if not self._zeroed.get(window):   # no series of this window but rates
                continue
            ws = self.spec.windows[window]
            stop = low - ws.lateness_ms - ws.size_ms      # the last start that is complete
            start = max(last_end, stop - (MAX_FILL - 1) * ws.size_ms)
            while start <= stop:
                if (window, start) not in self.pending:
                    out.append((window, start))
                start += ws.size_ms
        return out

    def ready(self) -> list[SeriesPoint]:
        """All of :meth:`ready_windows` at once, oldest first."""
        out = [p for points in self.ready_windows() for p in points]
        out.sort(key=lambda p: p.start_ms)
        return out
