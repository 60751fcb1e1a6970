"""The generator of one site: a deterministic, arrival-ordered stream of raw feedback messages.

Everything random about a site comes from generators seeded by ``(seed, site index, stream)``,
so a site's messages are the same bytes whichever partition (or process) produces them. Work is
vectorised per site and per week of simulated time; only building the JSON is per event.
"""

from __future__ import annotations

import bisect
import hashlib
import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import orjson

from boucle.config.settings import CHANNELS, Attribute, Metric
from boucle.sources.simulator.customers import CustomerPool
from boucle.sources.simulator.incidents import Incident
from boucle.sources.simulator.malformed import MALFORMED_REASONS, corrupt
from boucle.sources.simulator.model import QuestionModel
from boucle.sources.simulator.profiles import (
    STREAM_BURST,
    STREAM_CONTENT,
    STREAM_COUNTS,
    STREAM_CUSTOMERS,
    SiteProfile,
    site_rng,
)
from boucle.sources.simulator.seasonality import (
    DAY_MS,
    DOW_WEIGHTS,
    HOUR_MS,
    HOUR_WEIGHTS,
    PEAK_SENSITIVE,
    local_hour_weekday,
    rating_seasonality,
)
from boucle.sources.simulator.text import CommentComposer

__all__ = ["JOURNEY_STAGES", "Context", "Record", "merged_records", "site_batches", "site_count", "site_records"]

JOURNEY_STAGES = ("purchase", "checkout", "delivery", "return", "after_sales", "support", "browsing")
CHANNEL_SHARES = np.array([0.46, 0.15, 0.12, 0.11, 0.06, 0.06, 0.04])  # order of CHANNELS
# P(stage | channel), rows in CHANNELS order, columns in JOURNEY_STAGES order.
_STAGE_GIVEN_CHANNEL = np.array(
    [
        [0.38, 0.28, 0.00, 0.08, 0.10, 0.04, 0.12],  # store
        [0.35, 0.10, 0.20, 0.07, 0.05, 0.05, 0.18],  # web
        [0.35, 0.10, 0.20, 0.05, 0.05, 0.05, 0.20],  # app
        [0.30, 0.12, 0.22, 0.10, 0.14, 0.07, 0.05],  # email
        [0.30, 0.20, 0.25, 0.05, 0.10, 0.05, 0.05],  # sms
        [0.05, 0.02, 0.18, 0.15, 0.25, 0.35, 0.00],  # call_center
        [0.05, 0.02, 0.20, 0.13, 0.20, 0.40, 0.00],  # ivr
    ]
)
_STAGE_CUM = np.cumsum(_STAGE_GIVEN_CHANNEL / _STAGE_GIVEN_CHANNEL.sum(1, keepdims=True), axis=1)
_STAGE_CUM[:, -1] = 1.0
_PURCHASE_STAGES = (0, 1)

# Headline scores: natural scale, level at an average experience, slope per rating point, noise.
_SCORES = {"nps": (0, 10, 8.9, 3.6, 1.35), "csat": (1, 5, 4.25, 1.5, 0.55), "ces": (1, 7, 5.2, 1.9, 0.8)}
_COMMENT_P = np.array([0.50, 0.27, 0.32])  # by mood: detractor, passive, promoter
_OTHER_LANGUAGE = 0.05
_PII_SHARE = 0.02
_LATE_MIN_MS, _LATE_MAX_MS = 30 * 60_000, 12 * HOUR_MS
CHUNK_DAYS = 7
_MISSING = -(10**9)  # an unanswered attribute
_CHANNEL_NAMES = np.array(CHANNELS, dtype=object)
_STAGE_NAMES = np.array(JOURNEY_STAGES, dtype=object)

Record = tuple  # (arrival_ms, site_index, seq, value bytes)


@dataclass
class Context:
    """What every site stream shares: the catalogue, the response model, incidents, knobs."""

    scores: dict[str, Metric]  # the headline scores of the catalogue
    attributes: list[Attribute]
    seed: int
    start_ms: int
    end_ms: int
    volume_scale: float
    malformed_share: float
    late_share: float
    model: QuestionModel
    incidents: list[Incident]
    # Network profile knobs (defaults: the demo's). date_only: occurred_at at the site's local midnight.
    date_only: bool = False
    chunk_days: int = CHUNK_DAYS
    emitted_scores: tuple[str, ...] | None = None  # None: every headline score of the catalogue
    # (question index, source min, source max, end of the old scale in ms, usage shift) or None
    scale_change: tuple[int, int, int, int, float] | None = None

    def __post_init__(self) -> None:
        attrs = self.attributes
        self.attr_lo = np.array([a.min for a in attrs], dtype=np.int64)
        self.attr_hi = np.array([a.max for a in attrs], dtype=np.int64)
        self.identity_scale = bool(np.all(self.attr_lo == 1) and np.all(self.attr_hi == 5))
        self.scales = {name: (m.min, m.max) for name, m in [*self.scores.items(), *((a.name, a) for a in attrs)]}
        self.score_names = [name for name in _SCORES if name in self.scores
                            and (self.emitted_scores is None or name in self.emitted_scores)]
        self.composer = CommentComposer(
            self.model.names, {a.name: (a.label_fr or a.name, a.label_en or a.name) for a in attrs}
        )
        self.peak = [(self.model.index(n), s) for n, s in PEAK_SENSITIVE.items() if n in self.model.names]


def _slots(ctx: Context, profile: SiteProfile, rng: np.random.Generator):
    """Hourly slots from the start (days from the local midnight of the first day when date-only):
    their start, length and Poisson response counts."""
    if ctx.date_only:
        n_days = math.ceil((ctx.end_ms - ctx.start_ms) / DAY_MS)
        starts = ctx.start_ms - profile.utc_offset * HOUR_MS + np.arange(n_days, dtype=np.int64) * DAY_MS
        lengths = np.full(n_days, DAY_MS, dtype=np.int64)
        _, weekday = local_hour_weekday(starts, profile.utc_offset)
        return starts, lengths, rng.poisson(profile.daily_mean * ctx.volume_scale * DOW_WEIGHTS[weekday])
    n_slots = math.ceil((ctx.end_ms - ctx.start_ms) / HOUR_MS)
    starts = ctx.start_ms + np.arange(n_slots, dtype=np.int64) * HOUR_MS
    lengths = np.minimum(starts + HOUR_MS, ctx.end_ms) - starts
    hour, weekday = local_hour_weekday(starts, profile.utc_offset)
    lam = profile.daily_mean * ctx.volume_scale * HOUR_WEIGHTS[hour] * DOW_WEIGHTS[weekday] * (lengths / HOUR_MS)
    return starts, lengths, rng.poisson(lam)


def _bursts(ctx: Context, profile: SiteProfile) -> list[Incident]:
    return [i for i in ctx.incidents if i.kind == "bad_burst" and i.site_id == profile.site_id]


def site_count(ctx: Context, profile: SiteProfile) -> int:
    """How many messages :func:`site_records` yields for this site (without generating them)."""
    _, _, counts = _slots(ctx, profile, site_rng(ctx.seed, profile.index, STREAM_COUNTS))
    return int(counts.sum()) + sum(i.responses for i in _bursts(ctx, profile))


_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_UUID_SLOTS = np.array([i + (i >= 8) + (i >= 12) + (i >= 16) + (i >= 20) for i in range(32)])


def _uuids(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` random (version 4) UUID strings drawn from ``rng``, formatted without a Python loop."""
    raw = np.frombuffer(rng.bytes(16 * n), dtype=np.uint8).reshape(n, 16).copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    digits = np.empty((n, 32), dtype=np.uint8)
    digits[:, 0::2] = _HEX[raw >> 4]
    digits[:, 1::2] = _HEX[raw & 0x0F]
    text = np.full((n, 36), ord("-"), dtype=np.uint8)
    text[:, _UUID_SLOTS] = digits
    return text.view("S36").ravel().astype("U36").tolist()


def _iso(t_ms: np.ndarray) -> list[str]:
    return np.datetime_as_string(t_ms.astype("datetime64[ms]"), unit="ms", timezone="UTC").tolist()


def _to_scale(values: np.ndarray, nat_lo: int, nat_hi: int, lo, hi) -> np.ndarray:
    return np.rint(lo + (values - nat_lo) * (hi - lo) / (nat_hi - nat_lo)).astype(np.int64)


class _Site:
    """Mutable state of one site's generation (random streams, counters, labels)."""

    def __init__(self, ctx: Context, profile: SiteProfile, labels: list | None) -> None:
        self.ctx, self.p, self.labels = ctx, profile, labels
        self.rng = site_rng(ctx.seed, profile.index, STREAM_CONTENT)
        n_total = site_count(ctx, profile)
        pool_size = max(20, int(0.4 * n_total))
        country = profile.site.country or ("GB" if profile.site.language == "en" else "FR")
        self.pool = CustomerPool(profile.site_id, country, pool_size,
                                 site_rng(ctx.seed, profile.index, STREAM_CUSTOMERS))
        self.language = profile.site.language
        self.other_language = "en" if self.language == "fr" else "fr"
        self.seq = 0
        self.n_malformed = 0
        self.incidents = [i for i in ctx.incidents if i.kind != "bad_burst" and profile.site_id in i.sites]
        self.mu = ctx.model.base + profile.level + profile.attribute_effects

    # -- ordinary responses ------------------------------------------------------------------
    def responses(self, t: np.ndarray) -> list[Record]:
        ctx, rng, model = self.ctx, self.rng, self.ctx.model
        n, n_attr = len(t), len(model.names)
        if n == 0:
            return []
        hour, weekday = local_hour_weekday(t, self.p.utc_offset)
        channel = rng.choice(len(CHANNELS), n, p=CHANNEL_SHARES)
        stage = (rng.random(n)[:, None] > _STAGE_CUM[channel]).sum(1)
        day = (t - ctx.start_ms) // DAY_MS
        day_effect = rng.normal(0.0, 0.08, int(day.max() - day.min()) + 1)
        s = rng.normal(size=n)
        q = (self.mu + model.loading * s[:, None] + model.noise * rng.normal(size=(n, n_attr))
             + day_effect[day - day.min()][:, None])
        if ctx.peak:
            penalty = rating_seasonality(hour, weekday)
            for j, sensitivity in ctx.peak:
                q[:, j] -= sensitivity * penalty
        for incident in self.incidents:
            q[:, model.index(incident.attribute)] -= incident.drop(self.p.site_id, t)
        ratings = np.clip(np.rint(q), 1, 5)
        if ctx.scale_change is not None:
            ratings = self._old_scale(ratings, q, t)
        answered = rng.random((n, n_attr)) < model.answer_p
        scores = {}
        for name in ctx.score_names:
            nat_lo, nat_hi, mid, slope, noise = _SCORES[name]
            weights = getattr(model, f"w_{name}")
            raw = mid + slope * ((ratings - self.mu_ref) @ weights) + noise * rng.normal(size=n)
            values = np.clip(np.rint(raw), nat_lo, nat_hi)
            lo, hi = ctx.scales[name]
            scores[name] = values.astype(np.int64) if (lo, hi) == (nat_lo, nat_hi) else _to_scale(
                values, nat_lo, nat_hi, lo, hi)
        nps = scores.get("nps")
        mood = (np.where(nps <= 6, 0, np.where(nps <= 8, 1, 2)) if nps is not None
                else np.digitize(ratings.mean(1), [2.9, 3.9]))
        has_comment = rng.random(n) < _COMMENT_P[mood]
        tiebreak = rng.random((n, n_attr)) * 0.5
        masked = np.where(answered, ratings, 9.0)
        if n_attr:
            worst = np.where(answered.any(1), np.argmin(masked + tiebreak, 1), np.argmin(ratings + tiebreak, 1))
            best = np.argmax(np.where(answered, ratings, -9.0) + tiebreak, 1)
        else:
            worst = best = np.zeros(n, dtype=np.int64)
        other = rng.random(n) < _OTHER_LANGUAGE
        purchase = rng.random(n) < np.where(np.isin(stage, _PURCHASE_STAGES), 0.4, 0.12)
        pii = rng.random(n) < _PII_SHARE
        pick = rng.integers(0, 1 << 20, n)
        customer = self.pool.draw(rng, n)
        ids = _uuids(rng, n)
        arrival = t + rng.integers(100, 2000, n)
        malformed = rng.random(n) < ctx.malformed_share
        late = (rng.random(n) < ctx.late_share) & ~malformed
        delay = np.exp(rng.uniform(math.log(_LATE_MIN_MS), math.log(_LATE_MAX_MS), n)).astype(np.int64)
        malformed_pick = rng.integers(0, 1 << 20, n)
        arrival = np.where(late, t + delay, arrival)

        out_ratings = ratings.astype(np.int64) if ctx.identity_scale else _to_scale(
            ratings, 1, 5, ctx.attr_lo, ctx.attr_hi)
        out_ratings = np.where(answered, out_ratings, _MISSING).tolist()
        names = model.names
        compose = ctx.composer.compose
        langs = np.where(other, self.other_language, self.language).tolist()
        comments = [""] * n
        worst_l, best_l, mood_l = worst.tolist(), best.tolist(), mood.tolist()
        purchase_l, pii_l, pick_l = purchase.tolist(), pii.tolist(), pick.tolist()
        for i in np.flatnonzero(has_comment).tolist():
            comments[i] = compose(langs[i], worst_l[i], best_l[i], mood_l[i], purchase_l[i], pii_l[i], pick_l[i])
        if list(scores) == ["nps", "csat", "ces"]:
            score_dicts = [{"nps": a, "csat": b, "ces": c}
                           for a, b, c in zip(*(v.tolist() for v in scores.values()))]
        elif scores:
            score_dicts = [dict(zip(scores, row)) for row in zip(*(v.tolist() for v in scores.values()))]
        else:
            score_dicts = [{} for _ in range(n)]
        site_id = self.p.site_id
        events = [
            {
                "event_id": event_id,
                "occurred_at": occurred_at,
                "site_id": site_id,
                "channel": channel_name,
                "journey_stage": stage_name,
                "scores": score_dict,
                "attributes": {k: v for k, v in zip(names, row) if v != _MISSING},
                "comment": comment,
                "language": lang,
                "customer": customer_obj,
            }
            for event_id, occurred_at, channel_name, stage_name, score_dict, row, comment, lang, customer_obj
            in zip(ids, _iso(t), _CHANNEL_NAMES[channel].tolist(),
                   _STAGE_NAMES[stage].tolist(), score_dicts, out_ratings, comments, langs,
                   self.pool.customers_for(customer))
        ]
        dumps = orjson.dumps
        values = [dumps(event) for event in events]
        arrival_l = arrival.tolist()
        for i in np.flatnonzero(malformed | late).tolist():
            if malformed[i]:
                values[i] = self._malform(events[i], int(malformed_pick[i]))
            elif self.labels is not None:
                self.labels.append({"type": "late", "event_id": ids[i],
                                    "delay_seconds": (arrival_l[i] - int(t[i])) / 1000})
        index = self.p.index
        records = list(zip(arrival_l, [index] * n, range(self.seq, self.seq + n), values))
        self.seq += n
        return records

    def _old_scale(self, ratings: np.ndarray, q: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Answers given on the old scale, rescaled onto the catalogue's 1-5 by the source."""
        j, lo, hi, until_ms, usage = self.ctx.scale_change
        old = t < until_ms
        if not old.any():
            return ratings
        ratings = ratings.copy()
        on_old = np.clip(np.rint(lo + (q[old, j] + usage - 1) * (hi - lo) / 4), lo, hi)
        ratings[old, j] = np.rint(1 + (on_old - lo) * 4 / (hi - lo))
        return ratings

    @property
    def mu_ref(self) -> np.ndarray:
        return self.ctx.model.base  # scores react to a site's own level too: sites differ in NPS

    def _malform(self, event: dict, pick: int) -> bytes:
        reason = MALFORMED_REASONS[(self.p.index + self.n_malformed) % len(MALFORMED_REASONS)]
        self.n_malformed += 1
        value = corrupt(event, reason, pick, self.ctx.scales)
        if self.labels is not None:
            self.labels.append({"type": "malformed", "reason_code": reason,
                                "raw_sha1": hashlib.sha1(value).hexdigest(), "site_id": self.p.site_id})
        return value

    # -- bad bursts --------------------------------------------------------------------------
    def burst(self, incident: Incident, k0: int) -> list[Record]:
        """Very bad responses of first-time, consenting customers: each must fire a hot alert."""
        ctx, model = self.ctx, self.ctx.model
        rng = site_rng(ctx.seed, self.p.index, STREAM_BURST)
        n, n_attr = incident.responses, len(model.names)
        span = max(min(110 * 60_000, incident.end_ms - incident.start_ms - 1), 1) if not ctx.date_only else max(
            incident.end_ms - incident.start_ms, 1)
        t = incident.start_ms + np.sort(rng.integers(0, span, n))
        if ctx.date_only:  # the local midnight of the day
            offset = self.p.utc_offset * HOUR_MS
            t = (t + offset) // DAY_MS * DAY_MS - offset
        ids = _uuids(rng, n)
        occurred = _iso(t)
        attrs = rng.integers(1, 3, (n, n_attr))
        answered = rng.random((n, n_attr)) < 0.9
        answered[:, 0] = True
        if not ctx.identity_scale:
            attrs = _to_scale(attrs, 1, 5, ctx.attr_lo, ctx.attr_hi)
        natural = {"nps": rng.integers(0, 3, n), "csat": np.ones(n, dtype=np.int64), "ces": rng.integers(1, 3, n)}
        scores = {}
        for name in ctx.score_names:
            nat_lo, nat_hi = _SCORES[name][:2]
            lo, hi = ctx.scales[name]
            scores[name] = natural[name] if (lo, hi) == (nat_lo, nat_hi) else _to_scale(
                natural[name], nat_lo, nat_hi, lo, hi)
        pick = rng.integers(0, 1 << 20, n).tolist()
        worst = rng.integers(0, max(n_attr, 1), n).tolist()
        records = []
        for i in range(n):
            comment = ctx.composer.compose(self.language, worst[i], worst[i], 0, 1, 0, pick[i])
            event = {
                "event_id": ids[i],
                "occurred_at": occurred[i],
                "site_id": self.p.site_id,
                "channel": "store",
                "journey_stage": JOURNEY_STAGES[i % 2],
                "scores": {name: int(values[i]) for name, values in scores.items()},
                "attributes": {model.names[j]: int(attrs[i, j]) for j in range(n_attr) if answered[i, j]},
                "comment": comment,
                "language": self.language,
                "customer": self.pool.new(k0 + i),
            }
            if self.labels is not None:
                self.labels.append({"type": "bad_response", "incident_id": incident.incident_id,
                                    "event_id": ids[i], "site_id": self.p.site_id})
            records.append((int(t[i]) + 500 + i, self.p.index, self.seq, orjson.dumps(event)))
            self.seq += 1
        return records


def site_batches(ctx: Context, profile: SiteProfile, labels: list | None = None) -> Iterator[list[Record]]:
    """One site's messages as one sorted batch per week of simulated time, then a last batch.

    Batch *k* holds exactly the messages arriving in week *k* (late ones wait for their week), so
    concatenating the *k*-th batches of several sites and sorting gives their merged arrival order.
    Ground-truth labels are appended to ``labels``.
    """
    site = _Site(ctx, profile, labels)
    starts, lengths, counts = _slots(ctx, profile, site_rng(ctx.seed, profile.index, STREAM_COUNTS))
    place = site_rng(ctx.seed, profile.index, STREAM_COUNTS + 100)  # where in its slot a response falls
    bursts = _bursts(ctx, profile)
    pending: list[Record] = []
    n_new = 0
    per_chunk = ctx.chunk_days * (1 if ctx.date_only else 24)
    for c0 in range(0, len(starts), per_chunk):
        sl = slice(c0, c0 + per_chunk)
        cnt = counts[sl]
        if ctx.date_only:
            t = np.repeat(starts[sl], cnt)
        else:
            t = np.repeat(starts[sl], cnt) + (place.random(int(cnt.sum())) * np.repeat(lengths[sl], cnt)).astype(
                np.int64)
            t.sort()
        pending.extend(site.responses(t))
        chunk_end = int(starts[sl][-1] + lengths[sl][-1])
        for incident in bursts:
            if int(starts[c0]) <= incident.start_ms < chunk_end:
                pending.extend(site.burst(incident, n_new))
                n_new += incident.responses
        pending.sort()
        cut = bisect.bisect_left(pending, (chunk_end,))
        yield pending[:cut]
        del pending[:cut]
    yield pending


def site_records(ctx: Context, profile: SiteProfile, labels: list | None = None) -> Iterator[Record]:
    """Every message of one site in arrival order, as ``(arrival_ms, site index, seq, bytes)``."""
    for batch in site_batches(ctx, profile, labels):
        yield from batch


def merged_records(ctx: Context, profiles: list[SiteProfile]) -> Iterator[list[Record]]:
    """The messages of several sites merged in arrival order, in batches (one per simulated week)."""
    for batches in zip(*(site_batches(ctx, p) for p in profiles)):
        merged = [record for batch in batches for record in batch]
        merged.sort()
        yield merged
