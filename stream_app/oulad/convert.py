"""Convert OULAD (Open University Learning Analytics Dataset) into a stream-app event file.

Per enrolment (user id ``<module>-<presentation>-<id_student>``, tenant ``oulad``):

* ``registered`` (profile) on the registration day, with the demographic fields as props
  (gender, region, highest_education, imd_band, age_band, disability, module; numeric
  num_of_prev_attempts, studied_credits). The final result is never a prop.
* ``course_started`` (study) on day 0 of the presentation.
* ``vle_<activity_type>`` (study) per day and activity type with ``props.clicks``.
* ``assignment_submitted`` / ``quiz_submitted`` / ``exam_submitted`` (study) on the submission
  day with ``score``, ``weight`` and ``days_late``.
* ``unregistered`` (profile) on the withdrawal day.
* ``checkpoint`` labels (target ``at_risk``, group ``<module>-<presentation>@<pct>``) at the end
  of the day at 10/20/40/60/80/100% of the course length, only for learners registered then.
* ``outcome`` label (target ``at_risk``, value 1 for Fail or Withdrawn): at the withdrawal day
  for withdrawals, else the day after the course ends. Its ``event_ts`` (when the outcome
  happened, which the Scorer learns the states before) is the ``unregistered`` event's time
  for a withdrawal (without it, the state with the withdrawal folded in was the label's
  gate pair: QA33 F3), else the end of the course's last day (midnight, after its 23:00
  checkpoint).

Times: day ``d`` of a presentation is its start date (``B``: 1 February, ``J``: 1 October of
the year) plus ``d`` days; within a day, registrations come at 09:00, activity at 12:00,
submissions at 18:00, withdrawals at 20:00, outcomes of withdrawals at 21:00 and checkpoints
at 23:00 (so a checkpoint sees the whole day, and a withdrawal that day excludes it).

Example:
    >>> presentation_start("AAA-2014J").isoformat()
    '2014-10-01T00:00:00+00:00'
    >>> day_ts("AAA-2014J", 0, 12) - day_ts("AAA-2014J", -1, 12)
    86400000
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from stream_app.config import REPO_ROOT

__all__ = ["CHECKPOINTS", "DEFAULT_PRESENTATIONS", "DATA_DIR", "convert", "day_ts",
           "presentation_start"]

DATA_DIR = REPO_ROOT / "data" / "oulad"
DEFAULT_PRESENTATIONS = ("BBB-2013B", "AAA-2013J", "AAA-2014J")
CHECKPOINTS = (10, 20, 40, 60, 80, 100)
DAY_MS = 86_400_000
HOUR_MS = 3_600_000
VLE_FILE = "studentVle_AAA2013J_AAA2014J_BBB2013B.csv.gz"
PROFILE_FIELDS = ("gender", "region", "highest_education", "imd_band", "age_band", "disability")
NUMERIC_FIELDS = ("num_of_prev_attempts", "studied_credits")
SUBMISSION_TYPES = {"TMA": "assignment_submitted", "CMA": "quiz_submitted",
                    "Exam": "exam_submitted"}
# order of streams within the same millisecond
_STREAM_ORDER = {"profile": 0, "study": 1, "click": 1, "order": 1, "label": 2}


def presentation_start(pres: str) -> datetime:
    """Start date of presentation ``MODULE-YYYYB|J`` (B: February, J: October)."""
    code = pres.split("-")[-1]
    month = 2 if code.endswith("B") else 10
    return datetime(int(code[:4]), month, 1, tzinfo=UTC)


def day_ts(pres: str, day: int, hour: int) -> int:
    """Epoch ms of ``hour`` o'clock on day ``day`` of presentation ``pres``."""
    return int(presentation_start(pres).timestamp() * 1000) + day * DAY_MS + hour * HOUR_MS


def _rows(path: Path) -> Iterator[dict[str, str]]:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        yield from csv.DictReader(f)


def _int(v: str | None) -> int | None:
    v = (v or "").strip()
    if not v or v == "?":
        return None
    try:
        return int(float(v))
    except ValueError:
        return None


def _event(eid: str, uid: str, ts: int, etype: str, stream: str,
           props: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": eid, "user_id": uid, "ts": ts, "type": etype, "stream": stream,
            "tenant": "oulad", "props": props}


def convert(src: Path | str = DATA_DIR, out: Path | str = "var/oulad/events.jsonl.gz",
            presentations: tuple[str, ...] = DEFAULT_PRESENTATIONS,
            checkpoints: tuple[int, ...] = CHECKPOINTS) -> dict[str, Any]:
    """Write the event file ``out`` (JSON lines, gzip) and return counts by kind."""
    src = Path(src)
    wanted = set(presentations)
    length: dict[str, int] = {}
    for r in _rows(src / "courses.csv.gz"):
        pres = f"{r['code_module']}-{r['code_presentation']}"
        length[pres] = int(r["module_presentation_length"])
    events: list[dict[str, Any]] = []
    info: dict[str, dict[str, str]] = {}
    for r in _rows(src / "studentInfo.csv.gz"):
        pres = f"{r['code_module']}-{r['code_presentation']}"
        if pres in wanted:
            info[f"{pres}-{r['id_student']}"] = r
    reg: dict[str, tuple[int | None, int | None]] = {}
    for r in _rows(src / "studentRegistration.csv.gz"):
        uid = f"{r['code_module']}-{r['code_presentation']}-{r['id_student']}"
        if uid in info:
            reg[uid] = (_int(r["date_registration"]), _int(r["date_unregistration"]))
    counts: dict[str, int] = defaultdict(int)
    for uid, r in info.items():
        pres = uid.rsplit("-", 1)[0]
        rday, uday = reg.get(uid, (None, None))
        rday = rday if rday is not None else 0
        props: dict[str, Any] = {k: r[k] for k in PROFILE_FIELDS if r.get(k) not in (None, "", "?")}
        props["module"] = r["code_module"]
        for k in NUMERIC_FIELDS:
            v = _int(r.get(k))
            if v is not None:
                props[k] = v
        events.append(_event(f"{uid}:reg", uid, day_ts(pres, rday, 9), "registered", "profile",
                             props))
        events.append(_event(f"{uid}:start", uid, day_ts(pres, 0, 0), "course_started", "study",
                             {}))
        if uday is not None:
            events.append(_event(f"{uid}:unreg", uid, day_ts(pres, uday, 20), "unregistered",
                                 "profile", {}))
        n = length[pres]
        for pct in checkpoints:
            cday = round(pct / 100 * n)
            if rday <= cday and (uday is None or uday > cday):
                events.append(_event(f"{uid}:cp{pct}", uid, day_ts(pres, cday, 23), "checkpoint",
                                     "label", {"target": "at_risk", "group": f"{pres}@{pct}"}))
                counts["checkpoints"] += 1
        result = r["final_result"]
        y = 1 if result in ("Fail", "Withdrawn") else 0
        if result == "Withdrawn" and uday is not None:
            known = day_ts(pres, max(uday, rday), 21)
            happened = day_ts(pres, uday, 20)      # the unregistered event (QA33 F3)
        else:
            known = day_ts(pres, n + 1, 1)
            happened = day_ts(pres, n + 1, 0)      # the course's end
        events.append(_event(f"{uid}:out", uid, known, "outcome", "label",
                             {"target": "at_risk", "value": y, "final_result": result,
                              "event_ts": happened}))
        counts["outcomes"] += 1
        counts["positives"] += y
    # assessments
    assess: dict[str, tuple[str, str, int | None, int | None]] = {}
    for r in _rows(src / "assessments.csv.gz"):
        pres = f"{r['code_module']}-{r['code_presentation']}"
        if pres in wanted:
            assess[r["id_assessment"]] = (pres, r["assessment_type"], _int(r["date"]),
                                          _int(r["weight"]))
    for r in _rows(src / "studentAssessment.csv.gz"):
        a = assess.get(r["id_assessment"])
        if a is None:
            continue
        pres, atype, due, weight = a
        uid = f"{pres}-{r['id_student']}"
        sday = _int(r["date_submitted"])
        if uid not in info or sday is None:
            continue
        props = {"weight": weight or 0}
        score = _int(r["score"])
        if score is not None:
            props["score"] = score
        if due is not None:
            props["days_late"] = sday - due
        events.append(_event(f"{uid}:a{r['id_assessment']}", uid, day_ts(pres, sday, 18),
                             SUBMISSION_TYPES.get(atype, "assessment_submitted"), "study", props))
        counts["submissions"] += 1
    # daily VLE activity by activity type
    site_type: dict[str, str] = {}
    for r in _rows(src / "vle.csv.gz"):
        site_type[r["id_site"]] = r["activity_type"]
    clicks: dict[tuple[str, int, str], int] = defaultdict(int)
    with gzip.open(src / VLE_FILE, "rt", encoding="utf-8", newline="") as f:
        rd = csv.reader(f)
        next(rd)
        for mod, code, sid, site, date, n_clicks in rd:
            pres = f"{mod}-{code}"
            if pres not in wanted:
                continue
            uid = f"{pres}-{sid}"
            if uid in info:
                clicks[(uid, int(date), site_type.get(site, "other"))] += int(n_clicks)
    for (uid, day, activity), n_clicks in clicks.items():
        pres = uid.rsplit("-", 1)[0]
        events.append(_event(f"{uid}:v{day}:{activity}", uid, day_ts(pres, day, 12),
                             f"vle_{activity}", "study", {"clicks": n_clicks}))
    counts["vle_days"] = len(clicks)
    events.sort(key=lambda e: (e["ts"], _STREAM_ORDER.get(e["stream"], 1), e["event_id"]))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    for e in events:
        buf.write(orjson.dumps(e))
        buf.write(b"\n")
    with gzip.open(out, "wb", compresslevel=5) as f:
        f.write(buf.getvalue())
    stamp_of(out).write_bytes(orjson.dumps({"converter": converter_digest(presentations,
                                                                          checkpoints)}))
    counts["events"] = len(events)
    counts["learners"] = len(info)
    return dict(counts)


def stamp_of(out: Path | str) -> Path:
    """The file beside a converted event file that names the converter which wrote it."""
    return Path(f"{out}.meta.json")


def converter_digest(presentations: tuple[str, ...] = DEFAULT_PRESENTATIONS,
                     checkpoints: tuple[int, ...] = CHECKPOINTS) -> str:
    """A digest of this converter (its source) and its choices: an event file written by
    another one is converted again, not evaluated as is.

    >>> converter_digest() == converter_digest(), converter_digest() == converter_digest(
    ...     checkpoints=(10,))
    (True, False)
    """
    h = hashlib.sha256(Path(__file__).read_bytes())
    h.update(orjson.dumps([list(presentations), list(checkpoints)]))
    return h.hexdigest()[:16]


def is_current(out: Path | str) -> bool:
    """Whether ``out`` exists and was written by this converter (with its defaults)."""
    try:
        meta = orjson.loads(stamp_of(out).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return False
    return Path(out).exists() and meta.get("converter") == converter_digest()
