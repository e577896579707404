"""The behaviour of one simulated person, from ad landing to renewal, as a lazy event stream.

Each :class:`Learner` carries a hidden purchase ``intent`` and ``dropout`` propensity (both in
0..1). :meth:`Behaviour.life` turns them into a time-ordered stream of items
``(ts, seq, stream, type, props, mark)``: the visit, registration, days of lead nurturing
(course views, search, live rooms, trial booking and purchase, the trial lesson, consult
request, the order), then for buyers the course (live lessons attended or missed, replays,
homework, quizzes, check-ins, drop-out and withdrawal or completion, refund, renewal; a
renewing graduate may start the renewed course, and so on), and for others a silent tail
with rare visits. ``label`` items tell the truth when it becomes known.
``mark`` is a hidden note for the ground truth (``reg``, ``conv``, ``drop``...), never sent.

The life is computed a local day at a time, so a whole population can be interleaved by time
without holding it in memory.

Example:
    >>> import random
    >>> from stream_app.sim.config import load_sim_config
    >>> from stream_app.sim.inject import Windows
    >>> b = Behaviour(load_sim_config(), random.Random(3), Windows([]), spawn=lambda ts, u: None)
    >>> u = b.new_learner(0, "u0", "e0-", 1_772_400_000_000, channel="wechat_oa")
    >>> items = list(b.life(u))
    >>> items[0][3], items[0][4]["channel"]
    ('ad_landing', 'wechat_oa')
    >>> all(a[0] <= b[0] for a, b in zip(items, items[1:]))
    True
"""

from __future__ import annotations

import copy
import itertools
import random
from bisect import bisect
from collections.abc import Callable, Iterator
from heapq import heappop, heappush
from typing import Any

from stream_app.sim.config import SimConfig
from stream_app.sim.inject import Windows
from stream_app.sim.rhythm import DAY_MS, HOUR_MS, MINUTE_MS, Rhythm

Item = tuple[int, int, str, str, dict[str, Any], str | None]
_NEVER = 1 << 62
_MEDIUM = {"referral": "referral", "offline": "offline", "wechat_oa": "social"}


class _Picker:
    """Weighted choice over ids with one uniform draw."""

    __slots__ = ("ids", "cum", "total")

    def __init__(self, weights: dict[str, float]) -> None:
        self.ids = [k for k, w in weights.items() if w > 0]
        self.cum = list(itertools.accumulate(weights[k] for k in self.ids))
        self.total = self.cum[-1] if self.cum else 0.0

    def pick(self, rand: Callable[[], float]) -> str:
        return self.ids[min(bisect(self.cum, rand() * self.total), len(self.ids) - 1)]


class Learner:
    """One simulated person: identity, hidden traits, funnel state and ground truth."""

    __slots__ = ("idx", "uid", "eid", "n", "tenant", "channel", "campaign", "intent", "dropout",
                 "mult", "category", "arrival_ts", "inviter", "profile", "del_ts", "stage",
                 "trial_ts", "trial_ok", "coupon", "class_type", "amount", "attr", "gen",
                 "truth")

    def __init__(self, idx: int, uid: str, eid: str, tenant: str, channel: str, campaign: str,
                 intent: float, dropout: float, category: str, arrival_ts: int,
                 inviter: str | None, profile: dict[str, Any]) -> None:
        self.idx, self.uid, self.eid, self.n = idx, uid, eid, 0
        self.tenant, self.channel, self.campaign = tenant, channel, campaign
        self.attr = {"channel": channel, "campaign": campaign}  # attribution on click events
        self.intent, self.dropout, self.category = intent, dropout, category
        self.mult = 1.0
        self.arrival_ts, self.inviter, self.profile = arrival_ts, inviter, profile
        self.del_ts = _NEVER
        self.stage = 0
        self.trial_ts = _NEVER
        self.trial_ok = False
        self.coupon = False
        self.class_type = "big_class"
        self.amount = 0.0
        self.gen: Iterator[Item] | None = None
        self.truth: dict[str, Any] = {
            "tenant": tenant, "channel": channel, "campaign": campaign,
            "intent": round(intent, 4), "dropout": round(dropout, 4), "category": category,
            "arrival_ts": arrival_ts, "inviter_id": inviter, "spike": None,
            "registered": False, "registered_ts": None, "trial_purchased": False,
            "converted": False, "converted_ts": None, "convert_label": None,
            "dropped": False, "dropped_ts": None, "at_risk_label": None, "completed": False,
            "refunded": False, "renewed": False, "courses": 0, "deleted": False,
            "invited": 0,
        }


class Behaviour:
    """The behaviour model of the simulated company (one per run; shares the run's RNG).

    ``spawn(ts, inviter)`` is called when a share brings a new visitor who arrives at ``ts``.
    """

    def __init__(self, cfg: SimConfig, rng: random.Random, windows: Windows,
                 spawn: Callable[[int, Learner], None]) -> None:
        self.cfg = cfg
        self.rng = rng
        self.r = rng.random
        self.win = windows
        self.spawn = spawn
        self.rhythm = Rhythm(cfg.rhythm.hourly, cfg.rhythm.weekly, cfg.utc_offset_minutes)
        self._k = itertools.count().__next__
        self.channels = _Picker({k: c.share for k, c in cfg.channels.items()})
        self.tenants = _Picker({t.id: t.weight for t in cfg.tenants})
        self.courses = _Picker({k: c.weight for k, c in cfg.courses.items()})
        self.class_types = _Picker({k: c.weight for k, c in cfg.class_types.items()})
        pr = cfg.profile
        self.regions = _Picker({k: v.weight for k, v in pr.regions.items()})
        self.ages = _Picker({k: v.weight for k, v in pr.age_bands.items()})
        self.jobs = _Picker({k: v.weight for k, v in pr.occupations.items()})
        self.edus = _Picker({k: v.weight for k, v in pr.educations.items()})
        self.goals = _Picker({k: v.weight for k, v in pr.goals.items()})
        self.p = {k: s.p for k, s in cfg.funnel.items()}
        self.cap = cfg.max_step_prob
        self.collapsed = windows.collapsed_steps
        horizon = cfg.lead.window_days + 2
        self.decay = [cfg.lead.activity_decay ** d for d in range(horizon)]
        self.lesson_days = frozenset(cfg.study.lesson_weekdays)
        self.day_factors = [self.rhythm.day_factor(wd) for wd in range(7)]
        self.cp_days = sorted(cfg.checkpoints.convert_days)
        self.cp_pct = cfg.checkpoints.at_risk_pct
        self.pages = ["/courses", "/teachers", "/reviews", "/faq", "/jobs", "/live"]

    # ---------------------------------------------------------------- people
    def new_learner(self, idx: int, uid: str, eid: str, ts: int, channel: str | None = None,
                    inviter: Learner | None = None) -> Learner:
        """A new visitor arriving at ``ts`` (``channel`` None: drawn from the channel mix)."""
        r, cfg = self.r, self.cfg
        ch = channel or self.channels.pick(r)
        spec = cfg.channels[ch]
        goal = self.goals.pick(r)
        intent = self.rng.betavariate(*spec.intent) + cfg.profile.goals[goal].intent_shift
        intent = min(0.99, max(0.01, intent))
        dropout = self.rng.betavariate(*spec.dropout) * (1.2 - 0.4 * intent)
        dropout = min(0.99, max(0.01, dropout))
        profile = {"region": self.regions.pick(r), "age_band": self.ages.pick(r),
                   "occupation": self.jobs.pick(r), "education": self.edus.pick(r), "goal": goal}
        tenant = inviter.tenant if inviter is not None else self.tenants.pick(r)
        category = self.courses.pick(r)
        campaign = spec.campaigns[int(r() * len(spec.campaigns))]
        u = Learner(idx, uid, eid, tenant, ch, campaign, intent, dropout, category, ts,
                    inviter.uid if inviter is not None else None, profile)
        u.mult = min(3.0, intent / cfg.intent_ref)
        return u

    # ---------------------------------------------------------------- helpers
    def _push(self, pend: list[Item], ts: int, stream: str, typ: str, props: dict[str, Any],
              mark: str | None = None) -> None:
        heappush(pend, (ts, self._k(), stream, typ, props, mark))

    def _prob(self, step: str, u: Learner, ts: int, scale: float = 1.0) -> float:
        p = self.p[step] * u.mult * scale
        if step in self.collapsed:
            p *= self.win.step_factor(step, ts)
        return p if p < self.cap else self.cap

    def _label(self, pend: list[Item], ts: int, target: str, value: int, mark: str,
               event_ts: int | None = None) -> None:
        """The truth of ``target`` at ``ts``; ``event_ts``: the moment it was decided."""
        self._push(pend, ts, "label", "outcome",
                   {"target": target, "value": value, "source": "simulator",
                    "event_ts": ts if event_ts is None else event_ts}, mark)

    def _checkpoint(self, pend: list[Item], ts: int, target: str, group: str) -> None:
        """An evaluation checkpoint: score ``target`` now, resolve it when the truth comes."""
        self._push(pend, ts, "label", "checkpoint", {"target": target, "group": group})

    def _share(self, pend: list[Item], u: Learner, ts: int, where: str) -> None:
        self._push(pend, ts, "click", "share",
                   {**u.attr, "target": "wechat", "content": where,
                    "share_id": f"sh{u.idx}-{self._k()}"})
        ref = self.cfg.referral
        if self.r() < ref.invite_success:
            lo, hi = ref.invitee_delay_hours
            self.spawn(ts + int((lo + self.r() * (hi - lo)) * HOUR_MS) + 1, u)

    def _end(self, u: Learner, pend: list[Item]) -> Iterator[Item]:
        """Everything left, cut at the deletion request if there is one."""
        if u.del_ts < _NEVER:
            while pend and pend[0][0] < u.del_ts:
                yield heappop(pend)
            pend.clear()
            yield (u.del_ts, self._k(), "profile", "deletion_requested",
                   {"reason": "user_request"}, "del")
        else:
            while pend and pend[0][0] < _NEVER:
                yield heappop(pend)

    # ---------------------------------------------------------------- the life
    def life(self, u: Learner) -> Iterator[Item]:
        """The whole, time-ordered event stream of ``u`` (lazy: one local day at a time)."""
        r, cfg, push = self.r, self.cfg, self._push
        pend: list[Item] = []
        ch, cat = u.channel, u.category
        t = u.arrival_ts
        push(pend, t, "click", "ad_landing",
             {"channel": ch, "campaign": u.campaign, "utm_source": ch,
              "utm_campaign": u.campaign, "utm_medium": _MEDIUM.get(ch, "cpc"),
              "landing_page": f"/lp/{cat}"})
        t += 5_000 + int(r() * 40_000)
        push(pend, t, "click", "page_view", {**u.attr, "page": f"/course/{cat}"})
        p_reg = cfg.channels[ch].register_rate * self.win.lead_factor(ch, u.arrival_ts)
        p_reg *= 0.7 + 0.6 * u.intent
        if r() >= p_reg:
            yield from self._visitor(u, pend, t)
            return
        t_reg = t + 30_000 + int(r() * 240_000)
        props = {"channel": ch, "campaign": u.campaign, **u.profile,
                 "consent_marketing": r() < cfg.profile.consent.marketing,
                 "consent_profiling": r() < cfg.profile.consent.profiling}
        if u.inviter:
            props["referrer"] = u.inviter
            props["inviter_id"] = u.inviter
        push(pend, t_reg, "profile", "registered", props, "reg")
        lead = cfg.lead
        if r() < lead.deletion_requested:
            span = (lead.window_days + lead.tail_days) * DAY_MS
            u.del_ts = t_reg + HOUR_MS + int(r() * span)
        order_ts = yield from self._nurture(u, pend, t_reg)
        if order_ts is None:
            yield from self._tail(u, pend, t_reg + lead.window_days * DAY_MS)
        elif order_ts >= 0:
            yield from self._courses(u, pend, order_ts)
        yield from self._end(u, pend)

    def _visitor(self, u: Learner, pend: list[Item], t: int) -> Iterator[Item]:
        """A visitor who does not register: a look around, maybe one more visit later."""
        r = self.r
        if r() < 0.5:
            self._push(pend, t + 20_000 + int(r() * 60_000), "click", "course_view",
                       {**u.attr, "course_id": f"{u.category}-101",
                        "category": u.category})
        if r() < self.cfg.lead.unregistered_revisit:
            ds = self.rhythm.day_start(t) + DAY_MS * (1 + int(r() * 5))
            st = self.rhythm.time_in_day(r, ds)
            self._push(pend, st, "click", "page_view", {**u.attr, "page": "/home"})
            self._push(pend, st + 30_000 + int(r() * 60_000), "click", "course_view",
                       {**u.attr, "course_id": f"{u.category}-101",
                        "category": u.category})
        while pend and pend[0][0] < _NEVER:
            yield heappop(pend)

    def _nurture(self, u: Learner, pend: list[Item], t_reg: int) -> Iterator[Item]:
        """Lead days; returns the order time, None (no order in the window) or -1 (deleted)."""
        r, cfg, rh = self.r, self.cfg, self.rhythm
        lead = cfg.lead
        deadline = t_reg + lead.window_days * DAY_MS
        d0 = rh.day_start(t_reg)
        d0_wd, dayf = rh.weekday(d0), self.day_factors
        act = lead.active_base * (0.3 + 1.4 * u.intent)
        cps = [(t_reg + cd * DAY_MS, cd) for cd in self.cp_days if cd < lead.window_days]
        for d in range(lead.window_days + 1):
            ds = d0 + d * DAY_MS
            if ds + DAY_MS > u.del_ts:
                return -1
            if d == 0:
                sessions = [t_reg + 20_000 + int(r() * 120_000)]
            else:
                p = act * self.decay[d] * dayf[(d0_wd + d) % 7]
                if ds <= u.trial_ts < ds + DAY_MS:
                    p += 0.4
                sessions = []
                if r() < p:
                    sessions.append(rh.time_in_day(r, ds))
                    if r() < lead.second_session:
                        sessions.append(rh.time_in_day(r, ds))
                        sessions.sort()
            order_ts = None
            for st in sessions:
                if st >= deadline:
                    break
                order_ts = self._session(u, pend, st)
                if order_ts is not None:
                    break
            if sessions and r() < lead.profile_updated:
                job = self.jobs.pick(r)
                push_ts = sessions[0] + 10_000
                if push_ts < deadline:
                    self._push(pend, push_ts, "profile", "profile_updated", {"occupation": job})
            while cps and cps[0][0] < ds + DAY_MS:
                cp, cd = cps.pop(0)
                if order_ts is None or cp < order_ts:
                    self._checkpoint(pend, cp, "convert", f"convert@d{cd}")
            if order_ts is not None:
                self._order(u, pend, order_ts)
                while pend and pend[0][0] < ds + DAY_MS:
                    yield heappop(pend)
                return order_ts
            if d == lead.window_days:
                self._label(pend, deadline, "convert", 0, "lab_conv")
            while pend and pend[0][0] < ds + DAY_MS:
                yield heappop(pend)
        return None

    def _session(self, u: Learner, pend: list[Item], st: int) -> int | None:
        """One app/web session of a lead; returns the order time if the lead buys."""
        r, lead, push, k = self.r, self.cfg.lead, self._push, self._k
        cat, ch, camp = u.category, u.channel, u.campaign
        push(pend, st, "click", "page_view", {**u.attr, "page": "/home"})
        t = st + 10_000 + int(r() * 50_000)
        pages = self.pages
        n_pages = len(pages)
        for _ in range(int(r() * 2.0 * lead.pages_per_session * (0.5 + u.intent))):
            heappush(pend, (t, k(), "click", "page_view",
                            {"channel": ch, "campaign": camp, "page": pages[int(r() * n_pages)]},
                            None))
            t += 5_000 + int(r() * 60_000)
        views = 1 + int(r() * 2.0 * lead.course_views * u.intent + r() * 0.7)
        for _ in range(views):
            c = cat if r() < 0.8 else self.courses.pick(r)
            heappush(pend, (t, k(), "click", "course_view",
                            {"channel": ch, "campaign": camp, "course_id": f"{c}-101",
                             "category": c}, None))
            t += 15_000 + int(r() * 90_000)
        m = u.mult
        if r() < lead.search:
            kws = self.cfg.courses[cat].keywords or [cat]
            push(pend, t, "click", "search", {**u.attr, "keyword": kws[int(r() * len(kws))]})
            t += 10_000 + int(r() * 40_000)
        if r() < lead.live_enter * m:
            mins = 3 + int(r() * 50 * u.intent)
            push(pend, t, "click", "live_enter",
                 {**u.attr, "room_id": f"live-{cat}", "category": cat, "minutes": mins})
            t += mins * MINUTE_MS
        if r() < lead.coupon_claimed * m:
            u.coupon = True
            push(pend, t, "click", "coupon_claimed",
                 {**u.attr, "coupon_id": f"cp-{cat}", "amount": 200})
            t += 5_000 + int(r() * 20_000)
        if r() < lead.cart_add * m:
            push(pend, t, "click", "cart_add", {**u.attr, "course_id": f"{cat}-101"})
            t += 5_000 + int(r() * 20_000)
        if r() < self.cfg.referral.lead_share:
            self._share(pend, u, t, f"/course/{cat}")
            t += 5_000
        unk = self.cfg.unknown_events
        if r() < unk.per_session:
            push(pend, t, "click", unk.types[int(r() * len(unk.types))], dict(u.attr))
            t += 2_000
        return self._advance(u, pend, t)

    def _advance(self, u: Learner, pend: list[Item], t: int) -> int | None:
        """Funnel steps a session may take: booking, trial purchase, consult, order."""
        r, push, prob = self.r, self._push, self._prob
        cat = u.category
        course = self.cfg.courses[cat]
        if u.stage == 0:
            if r() < prob("trial_booked", u, t):
                push(pend, t, "click", "trial_booked",
                     {**u.attr, "course_id": f"{cat}-trial", "category": cat})
                u.stage = 1
                t += 20_000 + int(r() * 120_000)
            elif r() < prob("direct_consult", u, t):
                push(pend, t, "click", "consult_request",
                     {**u.attr, "course_id": f"{cat}-101", "via": "online"})
                u.stage = 4
                t += 60_000 + int(r() * 600_000)
            elif r() < prob("direct_order", u, t):
                return t
        if u.stage == 1 and r() < prob("trial_purchased", u, t):
            push(pend, t, "order", "trial_purchased",
                 {**u.attr, "order_id": f"t{u.idx}", "amount": course.trial_price,
                  "currency": "CNY", "category": cat, "course_id": f"{cat}-trial",
                  "class_type": "trial"}, "trial")
            u.stage = 2
            self._trial_lesson(u, pend, t)
            return None
        if u.stage == 2 and t > u.trial_ts:
            u.stage = 3
        if u.stage == 3 and r() < prob("consult_request", u, t, 1.0 if u.trial_ok else 0.3):
            push(pend, t, "click", "consult_request",
                 {**u.attr, "course_id": f"{cat}-101", "via": "wechat"})
            u.stage = 4
            t += 60_000 + int(r() * 900_000)
        if u.stage == 4 and r() < prob("order_paid", u, t):
            return t
        return None

    def _trial_lesson(self, u: Learner, pend: list[Item], t: int) -> None:
        r, st = self.r, self.cfg.study
        ts = self.rhythm.day_start(t) + DAY_MS * (1 + int(r() * 2)) + st.lesson_hour * HOUR_MS
        u.trial_ts = ts
        u.trial_ok = r() < self._prob("trial_attended", u, ts, 1.0)
        props = {"course_id": f"{u.category}-trial", "category": u.category, "lesson_no": 0,
                 "class_type": "trial"}
        if u.trial_ok:
            props["minutes"] = 20 + int(r() * 40)
            self._push(pend, ts, "study", "lesson_attended", props)
        else:
            self._push(pend, ts, "study", "lesson_missed", props)

    def _order(self, u: Learner, pend: list[Item], t: int) -> None:
        cfg, r = self.cfg, self.r
        ct = self.class_types.pick(r)
        course = cfg.courses[u.category]
        amount = course.price * cfg.class_types[ct].price_factor - (200 if u.coupon else 0)
        self._push(pend, t, "order", "order_paid",
                   {"channel": u.channel, "campaign": u.campaign, "order_id": f"o{u.idx}",
                    "amount": round(amount, 2), "currency": "CNY", "category": u.category,
                    "course_id": f"{u.category}-101", "class_type": ct}, "conv")
        self._label(pend, t + MINUTE_MS, "convert", 1, "lab_conv", t)
        u.class_type = ct
        u.amount = round(amount, 2)

    def _tail(self, u: Learner, pend: list[Item], t: int) -> Iterator[Item]:
        """After the lead window without an order: rare visits (silent, re-activation)."""
        r, rh, lead = self.r, self.rhythm, self.cfg.lead
        rate = lead.tail_visits_per_day * (0.5 + u.intent)
        end = t + lead.tail_days * DAY_MS
        last = rh.day_start(t)
        while rate > 0:
            t += int(self.rng.expovariate(rate) * DAY_MS)
            if t >= end:
                break
            ds = max(rh.day_start(t), last + DAY_MS)
            if ds + DAY_MS > u.del_ts:
                return
            st = rh.time_in_day(r, ds)
            self._push(pend, st, "click", "page_view", {**u.attr, "page": "/home"})
            if r() < 0.5:
                self._push(pend, st + 30_000 + int(r() * 90_000), "click", "course_view",
                           {**u.attr, "course_id": f"{u.category}-101",
                            "category": u.category})
            last = ds
            t = max(t, ds)
            while pend and pend[0][0] < ds + DAY_MS:
                yield heappop(pend)

    def _courses(self, u: Learner, pend: list[Item], order_ts: int) -> Iterator[Item]:
        """The course bought at ``order_ts``, then each renewed course the graduate starts
        (``study.renewal_start``), until one ends without a renewal that starts."""
        beh, n, t = self, 1, order_ts
        while True:
            renewal_ts = yield from beh._study(u, pend, t, n)
            if renewal_ts is None:
                return
            n += 1
            beh = self._further(u, n)
            if beh.r() >= self.cfg.study.renewal_start:
                return      # renewed, paid, never started (within the run)
            t = renewal_ts

    def _further(self, u: Learner, n: int) -> Behaviour:
        """This behaviour drawing from a random stream of its own for ``u``'s ``n``-th course.

        A further course draws nothing from the run's shared stream (invitees it brings
        aside), so adding it left every other person's story as it was. Seeded by the
        person's event-id prefix (the run's seed and id prefix in it): deterministic.

        >>> from stream_app.sim.config import load_sim_config
        >>> b = Behaviour(load_sim_config(), random.Random(3), Windows([]), spawn=lambda t, u: 0)
        >>> u = b.new_learner(0, "u0", "e0-", 1_772_400_000_000)
        >>> b._further(u, 2).r() == b._further(u, 2).r() != b._further(u, 3).r()
        True
        """
        beh = copy.copy(self)    # shares the config, pickers, id counter and spawn
        beh.rng = random.Random(f"{u.eid}course{n}")
        beh.r = beh.rng.random
        return beh

    def _schedule(self, order_ts: int, lessons: int) -> list[int]:
        """Lesson start times of a course bought at ``order_ts`` (never on the order's day)."""
        st, rh, r = self.cfg.study, self.rhythm, self.r
        lo, hi = st.start_delay_days
        delay = max(1, lo + int(r() * (hi - lo + 1)))
        ds = rh.day_start(order_ts) + DAY_MS * delay
        out: list[int] = []
        while len(out) < lessons:
            if rh.weekday(ds) in self.lesson_days:
                out.append(ds + st.lesson_hour * HOUR_MS)
            ds += DAY_MS
        return out

    def _study(self, u: Learner, pend: list[Item], order_ts: int,
               n: int = 1) -> Iterator[Item]:
        """The ``n``-th course of a buyer (bought at ``order_ts``): lessons, study between
        them, drop-out, the end of the course. Returns the time of a renewal, if any."""
        r, st, rh, push = self.r, self.cfg.study, self.rhythm, self._push
        cat = u.category
        lessons = self._schedule(order_ts, self.cfg.courses[cat].lessons)
        ct = u.class_type
        cid = _course_id(cat, n)
        order_id = _order_id(u, n)
        miss = st.miss_base + u.dropout * st.miss_per_dropout
        hazard = u.dropout * st.dropout_hazard
        dropped, streak, drop_lesson = False, 0, -1
        lesson_no = 0
        ds = rh.day_start(order_ts) + DAY_MS
        last_day = rh.day_start(lessons[-1])
        engage = 1.0 - 0.5 * u.dropout
        first = lessons[0]
        push(pend, max(first - 2 * HOUR_MS, rh.day_start(first)), "study", "course_started",
             {"course_id": cid, "category": cat, "class_type": ct, "lessons": len(lessons)},
             "start")
        cps = {max(1, round(p * len(lessons) / 100)): p for p in self.cp_pct}
        while ds <= last_day:
            if ds + DAY_MS > u.del_ts:
                return None
            lt = lessons[lesson_no] if lesson_no < len(lessons) else _NEVER
            if ds <= lt < ds + DAY_MS:
                lesson_no += 1
                base = {"course_id": cid, "category": cat, "lesson_no": lesson_no,
                        "class_type": ct}
                mark = None
                if not dropped and r() < hazard:
                    dropped, drop_lesson, mark = True, lesson_no, "drop"
                if r() < (st.dropped_attend if dropped else 1.0 - miss):
                    streak = 0
                    mins = int(st.lesson_minutes * (0.6 + 0.4 * r()) * (0.7 + 0.3 * engage))
                    push(pend, lt, "study", "lesson_attended", {**base, "minutes": mins}, mark)
                    self._after_lesson(u, pend, lt, base, engage)
                else:
                    streak += 1
                    push(pend, lt, "study", "lesson_missed", base, mark)
                    if not dropped and r() < st.missed_replay:
                        self._video(pend, ds + DAY_MS + int(r() * DAY_MS * 0.9), base, engage)
                if lesson_no in cps:
                    self._checkpoint(pend, ds + 23 * HOUR_MS, "at_risk",
                                     f"at_risk@{cps[lesson_no]}")
                if dropped and streak >= st.withdraw_after_misses:
                    wts = lt + DAY_MS
                    push(pend, wts, "profile", "unregistered",
                         {"course_id": cid, "category": cat, "reason": "withdrawal"})
                    self._label(pend, wts + HOUR_MS, "at_risk", 1, "lab_risk", wts)
                    if drop_lesson <= st.refund_before_lesson and r() < st.refund:
                        push(pend, wts + 2 * HOUR_MS, "order", "refund",
                             {"order_id": order_id, "amount": u.amount,
                              "currency": "CNY", "category": cat, "reason": "withdrawal"},
                             "refund")
                    return None
            elif lesson_no and not dropped and r() < st.extra_video * engage:
                self._video(pend, rh.time_in_day(r, ds),
                            {"course_id": cid, "category": cat, "lesson_no": max(1, lesson_no)},
                            engage)
            if lesson_no and (not dropped or r() < 0.1) and r() < st.check_in * engage:
                push(pend, rh.time_in_day(r, ds), "study", "check_in",
                     {"course_id": cid, "streak_day": lesson_no})
            if lesson_no == len(lessons):  # the end of the course, before the day is let out
                renewal_ts = self._course_end(u, pend, lessons[-1], n, dropped)
                while pend and pend[0][0] < ds + DAY_MS:
                    yield heappop(pend)
                return renewal_ts
            while pend and pend[0][0] < ds + DAY_MS:
                yield heappop(pend)
            ds += DAY_MS
        return None

    def _course_end(self, u: Learner, pend: list[Item], last: int, n: int,
                    dropped: bool) -> int | None:
        """Completion (or not) of the ``n``-th course after its last lesson, the at-risk
        truth, maybe a renewal (the next course, bought: its time is returned)."""
        r, st, push = self.r, self.cfg.study, self._push
        cat, ct, cid = u.category, u.class_type, _course_id(u.category, n)
        end = last + st.lesson_minutes * MINUTE_MS
        if dropped:
            self._label(pend, end + HOUR_MS, "at_risk", 1, "lab_risk", end)
            return None
        push(pend, end, "study", "course_completed",
             {"course_id": cid, "category": cat, "lessons": self.cfg.courses[cat].lessons},
             "done")
        self._label(pend, end + HOUR_MS, "at_risk", 0, "lab_risk", end)
        if r() < self.cfg.referral.completion_share:
            self._share(pend, u, end + 2 * HOUR_MS, f"/certificate/{cat}")
        if r() < st.renewal * (0.5 + u.intent) * (1.0 - u.dropout):
            lo, hi = st.renewal_days
            rts = end + int((lo + r() * (hi - lo)) * DAY_MS)
            nxt = _course_id(cat, n + 1)
            push(pend, rts - 3 * HOUR_MS, "click", "course_view",
                 {**u.attr, "course_id": nxt, "category": cat})
            u.amount = round(u.amount * st.renewal_factor, 2)
            push(pend, rts, "order", "renewal",
                 {"order_id": _order_id(u, n + 1), "amount": u.amount, "currency": "CNY",
                  "category": cat, "course_id": nxt, "class_type": ct}, "renew")
            return rts
        return None

    def _after_lesson(self, u: Learner, pend: list[Item], lt: int, base: dict[str, Any],
                      engage: float) -> None:
        r, st, push = self.r, self.cfg.study, self._push
        end = lt + st.lesson_minutes * MINUTE_MS
        if r() < st.homework * engage:
            push(pend, end + HOUR_MS + int(r() * 30 * HOUR_MS), "study", "homework_submitted",
                 {**base, "homework_id": f"hw-{base['lesson_no']}"})
        if base["lesson_no"] % st.quiz_every == 0:
            score = self.rng.gauss(st.quiz_mean - st.quiz_dropout_penalty * u.dropout, st.quiz_sd)
            push(pend, end + 10 * MINUTE_MS, "study", "quiz_scored",
                 {**base, "quiz_no": base["lesson_no"] // st.quiz_every,
                  "score": max(0, min(100, int(score)))})
        if r() < st.replay_video * engage:
            self._video(pend, end + 2 * HOUR_MS + int(r() * 20 * HOUR_MS), base, engage)
        if r() < self.cfg.referral.buyer_share:
            self._share(pend, u, end + 5 * MINUTE_MS, f"/course/{u.category}")

    def _video(self, pend: list[Item], ts: int, base: dict[str, Any], engage: float) -> None:
        r = self.r
        length = 1800 + int(r() * 1800)
        pct = min(1.0, 0.2 + 0.8 * r() * (0.5 + 0.5 * engage))
        self._push(pend, ts, "study", "video_watched",
                   {"course_id": base["course_id"], "lesson_no": base["lesson_no"],
                    "video_id": f"{base['course_id']}-v{base['lesson_no']}",
                    "seconds": int(length * pct), "percent": round(pct * 100, 1)})


def _course_id(category: str, n: int) -> str:
    """The ``n``-th course of a category: the first ``{cat}-101``, the renewed ones ``-201``...

    >>> _course_id("ui_design", 1), _course_id("ui_design", 2)
    ('ui_design-101', 'ui_design-201')
    """
    return f"{category}-{n}01"


def _order_id(u: Learner, n: int) -> str:
    """The order of ``u``'s ``n``-th course: ``o{idx}``, then renewals ``r{idx}``, ``r{idx}-3``."""
    return f"o{u.idx}" if n == 1 else f"r{u.idx}" if n == 2 else f"r{u.idx}-{n}"
