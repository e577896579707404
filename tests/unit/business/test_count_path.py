"""The worker's per-event business path against the code it replaced (revision 42c7498,
kept here as the reference): ``BusinessAggregator.add`` / ``add_step``, ``count_event`` with
``channel_from_tags`` (closed points, funnel counters) and the merger's explicit zeros, on
generated events and partials (late events, amounts, unknown channels and tenants, jumps in
time, series that change kind)."""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any

import pytest

from stream_app.app import business
from stream_app.business import BusinessAggregator, SeriesPoint
from stream_app.business.aggregator import OTHER
from stream_app.business.merge import MAX_FILL, Merger
from stream_app.business.series import ALL
from stream_app.events import Event

TYPES = ["registered", "ad_landing", "trial_booked", "trial_purchased", "order_paid",
         "renewal", "refund",
         "lesson_attended", "lesson_missed", "homework_submitted", "page_view", "course_view"]
CHANNELS = ["douyin", "bilibili", "baidu_sem", "spam", "", None]


def events(n: int, seed: int) -> list[Event]:
    rng = random.Random(seed)
    out, ts = [], 1_000_000
    for i in range(n):
        ts += rng.randint(0, 20_000)
        if rng.random() < 0.004:
            ts += rng.randint(1, 30) * 3_600_000   # a jump: runs of empty windows
        at = ts - rng.randint(0, 900_000) if rng.random() < 0.05 else ts   # some late
        props: dict[str, Any] = {}
        ch = rng.choice(CHANNELS)
        if ch is not None:
            props[rng.choice(["channel", "utm_source", "first_channel"])] = ch
        if rng.random() < 0.5:
            props[rng.choice(["amount", "price"])] = rng.choice(
                [rng.randint(1, 5000), rng.random() * 100, "12.5", "x", -3])
        out.append(Event(event_id=f"e{i}", user_id=f"u{rng.randint(0, 40)}", ts=at,
                         type=rng.choice(TYPES), stream="click",
                         tenant=rng.choice(["default", "default", "acme"]), props=props))
    return out


class ReferenceAggregator(BusinessAggregator):
    """BusinessAggregator's counting and closing as they were."""

    def add(self, event: Any, channel: str | None = None) -> list[SeriesPoint]:
        step = self.spec.step_of(event.type)
        closed = self.advance(event.ts)
        if step is None:
            return closed
        tenant = event.tenant if event.tenant in self.spec.tenants else OTHER
        ch = self.attribute(event.props or {}, channel)
        # the money series of the step (QA37 F6: revenue = trials + orders + renewals,
        # refunds apart), the amount as amount_props reads it
        money = self.spec.amount_series.get(step)
        amount = self.amount_of(event.props or {}) if money else 0.0
        for w, ws in self.spec.windows.items():
            start = event.ts - event.ts % ws.size_ms
            nxt = self._next_close[w]
            if nxt is not None and start < nxt:
                self.late += 1
                continue
            if nxt is None:
                self._next_close[w] = start
                self._set_due()
            bucket = self._open[w].setdefault(start, {})
            for key in ((tenant, ch), (tenant, ALL)):
                counts = bucket.setdefault(key, defaultdict(float))
                counts[step] += 1
                if amount:
                    counts[f"__{money}__"] += amount
        self._known.add((tenant, ch))
        self._known.add((tenant, ALL))
        return closed

    def advance(self, now_ms: int) -> list[SeriesPoint]:
        if self._watermark is not None and now_ms <= self._watermark:
            return []
        self._watermark = now_ms
        if self._due is None or now_ms < self._due:
            return []
        out: list[SeriesPoint] = []
        for w, ws in self.spec.windows.items():
            out.extend(self._close(w, ws, now_ms) if self.zeros
                       else self._reference_close_sparse(w, ws, now_ms))
        self._set_due()
        return out

    def _set_due(self) -> None:
        due = [nxt + ws.size_ms + ws.lateness_ms for w, ws in self.spec.windows.items()
               if (nxt := self._next_close[w]) is not None]
        self._due = min(due) if due else None

    def _reference_close_sparse(self, w: str, ws: Any, now_ms: int) -> list[SeriesPoint]:
        start = self._next_close[w]
        if start is None or start + ws.size_ms + ws.lateness_ms > now_ms:
            return []
        nxt = now_ms - ws.lateness_ms - (now_ms - ws.lateness_ms) % ws.size_ms
        open_ = self._open[w]
        out: list[SeriesPoint] = []
        for s in sorted(s for s in open_ if s < nxt):
            out.extend(self._points(w, s, s + ws.size_ms, open_.pop(s)))
        self._next_close[w] = nxt
        return out

    def _points(self, w: str, start: int, end: int, bucket: Any) -> Any:
        zeros = self.zeros
        empty: dict[str, float] = {}
        for tenant, ch in sorted(self._known if zeros else bucket):
            counts = bucket.get((tenant, ch), empty)
            for name, c in self.spec.counts.items():
                n = counts.get(c.step, 0.0)
                if n or zeros:
                    yield SeriesPoint(name, tenant, ch, w, start, end, n, n, "count")
            for money in self.spec.amounts:
                rev = counts.get(f"__{money}__", 0.0)
                if rev or zeros:
                    yield SeriesPoint(money, tenant, ch, w, start, end, rev, rev, "revenue")
            for name, r in self.spec.rates.items():
                den = sum(counts.get(s, 0.0) for s in r.den)
                if den > 0 or (not zeros and counts.get(r.num)):
                    yield SeriesPoint(name, tenant, ch, w, start, end,
                                      counts.get(r.num, 0.0), den, "rate")


def rows(points: list[SeriesPoint]) -> list[tuple[Any, ...]]:
    return [(p.metric, p.tenant, p.channel, p.window, p.start_ms, p.end_ms, p.num, p.den,
             p.kind) for p in points]


@pytest.mark.parametrize("zeros", [True, False])
@pytest.mark.parametrize("seed", [1, 2])
def test_add_and_add_step_equal_the_reference(zeros: bool, seed: int) -> None:
    spec = business.spec
    ref = ReferenceAggregator(spec, zeros=zeros)
    a, b = BusinessAggregator(spec, zeros=zeros), BusinessAggregator(spec, zeros=zeros)
    rng = random.Random(seed)
    for ev in events(800 if zeros else 3000, seed):   # zeros: every empty window too
        channel = rng.choice([None, None, "douyin", "spam"])
        want = rows(ref.add(ev, channel))
        assert rows(a.add(ev, channel)) == want
        step = spec.step_of(ev.type)
        got = (b.advance(ev.ts) if step is None
               else b.add_step(ev, step, b.attribute(ev.props, channel)))
        assert rows(got) == want
    first = events(1, seed)[0].ts
    assert a.counted_from == b.counted_from == first   # the reference predates counted_from
    assert without_counted_from(ref) == without_counted_from(a) == without_counted_from(b)
    assert ref.late > 0


def without_counted_from(agg: BusinessAggregator) -> dict[str, Any]:
    snap = agg.snapshot()
    del snap["counted_from"]
    return snap


def reference_channel_from_tags(ev: Event, tags: dict[str, Any] | None) -> str | None:
    spec = business.spec
    if not spec.channel_tag or not tags or any(ev.props.get(p) for p in spec.channel_props):
        return None
    value = tags.get(spec.channel_tag)
    return str(value) if value else None


def test_count_event_equals_the_reference(monkeypatch) -> None:
    """count_event (and channel_from_tags) against the old pair, each with its own
    aggregators: the same points returned on the same events, the same funnel counter
    calls; channel_from_tags differs only for events that count for no channel."""
    wall = [0.0]
    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(business.metrics, "biz_event",
                        lambda *a, **kw: calls.append((a, tuple(kw.items()))))
    monkeypatch.setattr(business, "_wall", lambda: wall[0])
    ref_aggs: dict[Any, ReferenceAggregator] = {}
    ref_pending: dict[Any, list[SeriesPoint]] = {}
    ref_last: dict[Any, float] = {}

    def reference_count_event(ev: Event, partition: Any,
                              channel: str | None) -> list[SeriesPoint]:
        agg = ref_aggs.get(partition)
        if agg is None:
            agg = ref_aggs[partition] = ReferenceAggregator(business.spec, zeros=False)
        step = business.spec.step_of(ev.type)
        if step is not None:
            # the counters count the amounts the series count (QA37 F3, F6)
            money = business.spec.amount_series.get(step)
            kw = {money: agg.amount_of(ev.props)} if money else {}
            business.metrics.biz_event(ev.tenant, agg.attribute(ev.props, channel), step,
                                       **kw)
        closed = agg.add(ev, channel)
        if closed:
            ref_pending.setdefault(partition, []).extend(closed)
        elif partition not in ref_pending:
            return closed
        if wall[0] - ref_last.get(partition, float("-inf")) < business.PARTIALS_EVERY_S:
            return []
        ref_last[partition] = wall[0]     # what send_partials notes
        return ref_pending.pop(partition)

    monkeypatch.setattr(business, "aggregators", {})
    monkeypatch.setattr(business, "_pending", {})
    monkeypatch.setattr(business, "_last_sent", {})
    rng = random.Random(7)
    sent = 0
    for i, ev in enumerate(events(6000, 3)):
        wall[0] = i * 0.002
        part = ("events.click", rng.randint(0, 2))
        tags = rng.choice([None, {}, {"first_channel": "douyin"}, {"first_channel": "zzz"},
                           {"first_channel": 0}])
        ch_ref, ch = reference_channel_from_tags(ev, tags), business.channel_from_tags(ev, tags)
        if business.spec.step_of(ev.type) is not None:
            assert ch == ch_ref
        else:
            assert ch is None
        n = len(calls)
        want = rows(reference_count_event(ev, part, ch_ref))
        ref_calls = calls[n:]
        del calls[n:]
        got = rows(business.count_event(ev, part, ch))
        assert got == want and calls[n:] == ref_calls
        if got or ref_last.get(part) == wall[0]:
            business._last_sent[part] = wall[0]
            sent += 1
    assert sent > 50 and len(calls) > 500


# ---- the merger's explicit zeros ---------------------------------------------------------
class ReferenceMerger(Merger):
    """Merger as it was: zeros from ``known``, walked and filtered per released window."""

    def add_rows(self, partition: str, watermark: int | None, rows: Any) -> None:
        parsed = [tuple(r) for r in rows]
        if watermark is not None:
            old = self.watermarks.get(partition)
            if old is None or watermark >= old[0]:
                self.watermarks[partition] = (watermark, self._wall())
        for metric, tenant, channel, window, start, end, num, den, kind in parsed:
            slot = self.pending.get((window, start))
            if slot is None:
                slot = self.pending[window, start] = (end, {})
            key = (metric, tenant, channel, window)
            acc = slot[1].get(key)
            if acc is None:
                slot[1][key] = [num, den, kind]
                self.known.setdefault(window, {})[key] = kind
            else:
                acc[0] += num
                acc[1] += den

    def ready_windows(self) -> Any:
        wall = self._wall()
        active = [wm for wm, seen in self.watermarks.values()
                  if wall - seen < self.idle_after_s]
        if not active:
            return
        low = min(active)
        done = [k for k, (end, _) in self.pending.items()
                if end + self.spec.windows[k[0]].lateness_ms <= low]
        done.extend(self._empty_windows(low))
        done.sort(key=lambda k: k[1])
        for window, start in done:
            end, acc = self.pending.pop((window, start), None) or (
                start + self.spec.windows[window].size_ms, {})
            self.released[window] = max(end, self.released.get(window, end))
            out = [SeriesPoint(key[0], key[1], key[2], window, start, end, a[0], a[1], a[2])
                   for key, a in acc.items() if a[1] > 0 or a[2] != "rate"]
            out.extend(SeriesPoint(key[0], key[1], key[2], window, start, end, 0.0, 0.0, kind)
                       for key, kind in self.known.get(window, {}).items()
                       if kind != "rate" and key not in acc)
            yield out

    def _empty_windows(self, low: int) -> list[tuple[str, int]]:
        out: list[tuple[str, int]] = []
        for window, last_end in self.released.items():
            if not any(kind != "rate" for kind in self.known.get(window, {}).values()):
                continue
            ws = self.spec.windows[window]
            stop = low - ws.lateness_ms - ws.size_ms
            start = max(last_end, stop - (MAX_FILL - 1) * ws.size_ms)
            while start <= stop:
                if (window, start) not in self.pending:
                    out.append((window, start))
                start += ws.size_ms
        return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_merger_zeros_equal_the_reference(seed: int) -> None:
    rng = random.Random(seed)
    wall = [0.0]
    ref = ReferenceMerger(business.spec, wall=lambda: wall[0])
    new = Merger(business.spec, wall=lambda: wall[0])
    metrics = [("leads", "count"), ("visits", "count"), ("revenue", "revenue"),
               ("lead_to_trial", "rate"), ("attendance", "rate")]
    wms = {"click:0": 0, "click:1": 0}
    out_ref, out_new = [], []
    for _ in range(400):
        wall[0] += rng.random() * 20
        src = rng.choice(list(wms))
        wms[src] += rng.randint(0, 400_000)
        msg = []
        for _ in range(rng.randint(0, 6)):
            metric, kind = rng.choice(metrics)
            if rng.random() < 0.03:   # a bad message: a series of another kind
                kind = rng.choice(["count", "rate", "revenue"])
            window = rng.choice(["1m", "10m", "1h"])
            size = business.spec.windows[window].size_ms
            start = (wms[src] - rng.randint(0, 3 * size)) // size * size
            if start + size <= new.released.get(window, -1):
                continue   # released already: the merger drops it (stale_rows), the old one
                # released it again (test_restart_windows.py)
            msg.append([metric, "default", rng.choice(["all", "douyin", "bilibili"]), window,
                        start, start + size, rng.randint(0, 5), rng.randint(0, 9), kind])
        ref.add_rows(src, wms[src], msg)
        new.add_rows(src, wms[src], msg)
        out_ref.extend(rows(p) for p in ref.ready_windows())
        out_new.extend(rows(p) for p in new.ready_windows())
    assert out_new == out_ref
    assert sum(len(r) for r in out_ref) > 1000
    assert any(r[6] == 0 and r[8] != "rate" for w in out_ref for r in w)   # zeros were made
