"""Each simulated person's story is coherent, and hidden traits drive outcomes."""

from __future__ import annotations

from collections import Counter

from .fixtures import Run, make_run

BEFORE_REGISTRATION_OK = {"ad_landing", "page_view", "course_view"}
COURSE_STUDY = {"lesson_attended", "lesson_missed", "video_watched", "homework_submitted",
                "quiz_scored", "course_completed", "check_in"}


def _first(evs: list[dict], typ: str) -> int | None:
    return next((i for i, e in enumerate(evs) if e["type"] == typ), None)


def test_funnel_order_per_user(run: Run) -> None:
    checked = Counter()
    for uid, evs in run.by_user.items():
        assert evs[0]["type"] == "ad_landing"
        assert [e["ts"] for e in evs] == sorted(e["ts"] for e in evs)
        reg = _first(evs, "registered")
        if reg is None:
            assert {e["type"] for e in evs} <= BEFORE_REGISTRATION_OK, uid
            continue
        assert {e["type"] for e in evs[:reg]} <= BEFORE_REGISTRATION_OK, uid
        order = _first(evs, "order_paid")
        trial = _first(evs, "trial_purchased")
        if trial is not None:
            assert _first(evs, "trial_booked") < trial
            checked["trial"] += 1
        for i, e in enumerate(evs):
            if e["type"] in COURSE_STUDY and e["props"].get("class_type") != "trial":
                assert order is not None and order < i, (uid, e)
            if e["type"] in ("refund", "renewal", "course_completed"):
                assert order is not None and order < i, (uid, e)
            if e["type"] == "renewal":
                assert _first(evs, "course_completed") < i
                checked["renewal"] += 1
        if order is not None:
            checked["order"] += 1
            assert evs.count(evs[order]) == 1
            assert sum(e["type"] == "order_paid" for e in evs) == 1
        dele = _first(evs, "deletion_requested")
        if dele is not None:
            assert dele == len(evs) - 1, uid     # nothing after a deletion request
            checked["deleted"] += 1
    assert checked["order"] > 50 and checked["trial"] > checked["order"] / 2
    assert checked["renewal"] > 0


def test_labels_tell_the_truth_when_it_is_known(run: Run) -> None:
    n_conv = n_risk = 0
    for uid, evs in run.by_user.items():
        t = run.truth[uid]
        conv = [e for e in evs if e["type"] == "outcome" and e["props"]["target"] == "convert"]
        risk = [e for e in evs if e["type"] == "outcome" and e["props"]["target"] == "at_risk"]
        assert len(conv) <= 1 and len(risk) <= max(1, t["courses"])   # one per course
        order = _first(evs, "order_paid")
        if conv:
            n_conv += 1
            assert conv[0]["stream"] == "label"
            assert conv[0]["props"]["value"] == (1 if order is not None else 0)
            assert t["convert_label"] == conv[0]["props"]["value"]
            if order is not None:
                assert conv[0]["ts"] > evs[order]["ts"]
        else:
            assert t["convert_label"] is None
        if risk:
            n_risk += 1
            assert order is not None and risk[0]["ts"] > evs[order]["ts"]
            assert t["at_risk_label"] == risk[-1]["props"]["value"]
            # a graduate who renews may start another course: every course but the last
            # was completed (0); the last is 1 if the learner dropped out of it
            assert [e["props"]["value"] for e in risk[:-1]] == [0] * (len(risk) - 1)
            dropped = t["dropped"] and t["dropped_ts"] <= risk[-1]["ts"]
            assert risk[-1]["props"]["value"] == (1 if dropped else 0)
            if not dropped:
                assert sum(e["type"] == "course_completed" for e in evs) == len(risk)
        assert t["converted"] == (order is not None)
    assert n_conv > 500 and n_risk > 30


def test_checkpoints_come_before_the_truth_they_wait_for(run: Run) -> None:
    groups = Counter()
    for evs in run.by_user.values():
        for target in ("convert", "at_risk"):
            cps = [e for e in evs if e["type"] == "checkpoint" and e["props"]["target"] == target]
            outs = [e for e in evs if e["type"] == "outcome" and e["props"]["target"] == target]
            groups.update(e["props"]["group"] for e in cps)
            # each course's checkpoints come before its outcome (a renewing graduate's
            # further course has its own); none is left after the last outcome
            starts = [e["ts"] for e in evs if e["type"] == "course_started"]
            for i, out in enumerate(outs):
                since = outs[i - 1]["ts"] if i else -1
                mine = [e["ts"] for e in cps if since < e["ts"] <= out["ts"]]
                assert not mine or max(mine) < out["props"]["event_ts"] <= out["ts"]
                if i:
                    assert target == "at_risk" and any(since < s < out["ts"] for s in starts)
            if outs:
                assert all(e["ts"] < outs[-1]["ts"] or any(outs[-1]["ts"] < s < e["ts"]
                                                           for s in starts) for e in cps)
            if target == "convert" and cps:
                order = [e["ts"] for e in evs if e["type"] == "order_paid"]
                assert not order or max(e["ts"] for e in cps) < order[0]
    assert {"convert@d1", "convert@d7", "at_risk@25", "at_risk@75"} <= set(groups)
    assert groups["convert@d1"] > groups["convert@d7"] > 100


def test_withdrawals_and_course_starts_are_recorded(run: Run) -> None:
    for uid, t in run.truth.items():
        types = [e["type"] for e in run.by_user[uid]]
        if t["converted"] and "lesson_attended" in types[types.index("order_paid"):]:
            assert "course_started" in types
        if "unregistered" in types:
            assert t["dropped"] and t["at_risk_label"] == 1


def test_intent_drives_conversion(run: Run) -> None:
    leads = [t for t in run.truth.values() if t["convert_label"] is not None]
    leads.sort(key=lambda t: t["intent"])
    q = len(leads) // 4
    low = sum(t["converted"] for t in leads[:q]) / q
    high = sum(t["converted"] for t in leads[-q:]) / q
    assert high > 3 * low + 0.05, (low, high)
    # rank correlation: AUC of intent for "converted" well above chance
    pos = [t["intent"] for t in leads if t["converted"]]
    neg = [t["intent"] for t in leads if not t["converted"]]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos[:300] for n in neg[:1500])
    assert wins / (min(len(pos), 300) * min(len(neg), 1500)) > 0.7


def test_dropout_propensity_drives_drop_outs_and_absences(run: Run) -> None:
    buyers = [(uid, t) for uid, t in run.truth.items() if t["at_risk_label"] is not None]
    risky = [t["dropout"] for _, t in buyers if t["at_risk_label"] == 1]
    fine = [t["dropout"] for _, t in buyers if t["at_risk_label"] == 0]
    assert risky and fine
    assert sum(risky) / len(risky) > sum(fine) / len(fine) + 0.05
    # learners who withdraw before the end of the course end with a streak of missed lessons
    cfg = run.sim.config
    streak = cfg.study.withdraw_after_misses
    withdrawn = 0
    for uid, t in buyers:
        lessons = [e["type"] for e in run.by_user[uid]
                   if e["type"] in ("lesson_attended", "lesson_missed")
                   and e["props"].get("class_type") != "trial"]
        if t["at_risk_label"] == 1 and len(lessons) < cfg.courses[t["category"]].lessons:
            withdrawn += 1
            assert lessons[-streak:] == ["lesson_missed"] * streak, (uid, lessons)
    assert withdrawn > 5


def test_channels_differ_in_volume_and_quality(run: Run) -> None:
    arrivals, leads, buyers = Counter(), Counter(), Counter()
    for t in run.truth.values():
        arrivals[t["channel"]] += 1
        leads[t["channel"]] += t["registered"]
        buyers[t["channel"]] += t["converted"]
    assert arrivals["douyin"] > 2 * arrivals["offline"]
    assert leads["offline"] / arrivals["offline"] > leads["douyin"] / arrivals["douyin"] + 0.2
    assert (buyers["wechat_oa"] / leads["wechat_oa"]) > (buyers["douyin"] / leads["douyin"])


def test_referrals_name_an_inviter_who_shared_before(run: Run) -> None:
    invitees = 0
    first_share = {}
    for ev in run.events:
        if ev["type"] == "share":
            first_share.setdefault(ev["user_id"], ev["ts"])
    for uid, evs in run.by_user.items():
        t = run.truth[uid]
        if t["channel"] != "referral":
            continue
        inviter = t["inviter_id"]
        assert inviter in first_share and first_share[inviter] < evs[0]["ts"]
        reg = [e for e in evs if e["type"] == "registered"]
        if reg:
            invitees += 1
            assert reg[0]["props"]["inviter_id"] == inviter == reg[0]["props"]["referrer"]
            assert reg[0]["tenant"] == run.truth[inviter]["tenant"]
    assert invitees > 10
    assert sum(t["invited"] for t in run.truth.values()) == sum(
        1 for t in run.truth.values() if t["channel"] == "referral")


def test_diurnal_and_weekly_rhythm(run: Run) -> None:
    hours = Counter(((e["ts"] // 3_600_000) + 8) % 24 for e in run.events
                    if e["type"] in ("ad_landing", "page_view"))
    night = sum(hours[h] for h in (2, 3, 4))
    evening = sum(hours[h] for h in (19, 20, 21))
    assert evening > 8 * night, (night, evening)


def test_weekly_rhythm_busier_weekends(run: Run) -> None:
    per_day = Counter((e["ts"] + 8 * 3_600_000) // 86_400_000 for e in run.events
                      if e["type"] == "ad_landing")
    weekend = [n for d, n in per_day.items() if (d + 3) % 7 >= 5]
    weekday = [n for d, n in per_day.items() if (d + 3) % 7 < 5]
    assert sum(weekend) / len(weekend) > 1.05 * sum(weekday) / len(weekday)


def test_profile_events_carry_demographics_and_consent(run: Run) -> None:
    regs = [e for e in run.events if e["type"] == "registered"]
    for e in regs:
        p = e["props"]
        assert {"region", "age_band", "occupation", "education", "goal"} <= set(p)
        assert isinstance(p["consent_marketing"], bool)
    assert any(e["type"] == "profile_updated" for e in run.events)
    goals = Counter(e["props"]["goal"] for e in regs)
    assert set(goals) == {"career_switch", "certificate", "skill_upgrade"}


def test_deletion_requests_are_rare_and_final() -> None:
    r = make_run(users=600, days=40, **{"lead.deletion_requested": 0.5})
    deleted = [uid for uid, t in r.truth.items() if t["deleted"]]
    assert len(deleted) > 30
    for uid in deleted:
        assert r.by_user[uid][-1]["type"] == "deletion_requested"
