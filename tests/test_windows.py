"""Tumbling windows on event time: boundaries, box shares, late events, end of input, resume."""

import itertools
from datetime import datetime, timezone

import bytewax.operators as op
import orjson
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, run_main

from boucle.config.times import iso_ms, local_days
from boucle.flows.feedback_flow import window_spec
from boucle.operators.decode import Decoder, decode_batches
from boucle.operators.site_shards import SiteShards, site_values
from boucle.operators.windows import SCORE_COLUMNS, SiteWindows, event_time_windows
from boucle.sources.message import RawMessage

HOUR = 3_600_000


BASE = int(datetime(2026, 10, 1, tzinfo=timezone.utc).timestamp() * 1000)


_EVENT_NUMBERS = itertools.count(1)


def feedback(settings, ts, nps=8, waiting=3, site="store-0001"):
    """A decoded event ``ts`` ms after 2026-10-01T00:00Z."""
    n = next(_EVENT_NUMBERS)
    raw = {"event_id": f"e{n}", "occurred_at": iso_ms(BASE + ts), "site_id": site,
           "scores": {"nps": nps}, "attributes": {"waiting_time": waiting}}
    return Decoder(settings).decode(RawMessage(orjson.dumps(raw), "t", 0, n))


def midnight(settings, ts, site="store-0001"):
    """The start (ms after BASE) of the site's local day holding ``BASE + ts``: daily windows start there."""
    days = local_days(settings.site_zones()[site])
    return days.start_ms(days.day_of(BASE + ts)) - BASE


def rows_by(rows, length_s):
    return {
        (r[2], r[4] - BASE): dict(zip(SCORE_COLUMNS, r)) for r in rows if r[3] == length_s
    }


def test_boundaries_belong_to_the_next_window(settings):
    windows = SiteWindows(window_spec(settings))
    events = [feedback(settings, t) for t in (0, HOUR - 1, HOUR, 2 * HOUR)]
    assert windows.add(events) == []  # nothing closes before end + allowed lateness (2 h)
    rows = rows_by(windows.add([feedback(settings, 4 * HOUR), feedback(settings, 4 * HOUR)]), 3600)
    assert rows[("nps", 0)]["n"] == 2 and rows[("nps", HOUR)]["n"] == 1
    assert ("nps", 2 * HOUR) not in rows  # its end + 2 h has not passed yet
    assert rows[("nps", 0)]["window_start"] == BASE and rows[("nps", HOUR)]["window_start"] == BASE + HOUR


def test_counts_mean_and_boxes(settings):
    windows = SiteWindows(window_spec(settings))
    windows.add([feedback(settings, 10, nps=n, waiting=w) for n, w in [(10, 5), (9, 4), (7, 3), (3, 1)]])
    rows = rows_by(windows.close(2**62), 3600)
    nps, waiting = rows[("nps", 0)], rows[("waiting_time", 0)]
    assert (nps["n"], nps["sum"], nps["top_n"], nps["bottom_n"]) == (4, 29, 2, 1)
    assert (waiting["n"], waiting["sum"], waiting["top_n"], waiting["bottom_n"]) == (4, 13, 2, 1)
    assert rows_by(windows.close(2**62), 86400) == {}  # closed windows are forgotten


def test_late_events_are_flagged_and_left_out(settings):
    windows = SiteWindows(window_spec(settings))
    windows.add([feedback(settings, 10 * HOUR), feedback(settings, 10 * HOUR)])  # the watermark: 10:00
    within = feedback(settings, 8 * HOUR + 1)  # 2 h - 1 ms behind the watermark: on time
    beyond = feedback(settings, 8 * HOUR - 1)  # more than 2 h behind: late
    windows.add([within, beyond])
    assert (within.late, beyond.late) == (False, True)
    rows = rows_by(windows.close(2**62), 86400)
    assert rows[("nps", midnight(settings, 0))]["n"] == 3  # the 10:00 events and the on-time one


def test_windows_are_per_site(settings):
    windows = SiteWindows(window_spec(settings))
    windows.add([feedback(settings, 10 * HOUR), feedback(settings, 10 * HOUR)])
    other = SiteWindows(window_spec(settings))
    early = feedback(settings, 1 * HOUR, site="store-0002")
    other.add([early])
    assert not early.late  # another site's clock does not make it late


def test_end_of_input_emits_open_windows_and_keeps_them_for_a_resume(settings):
    windows = SiteWindows(window_spec(settings))
    windows.add([feedback(settings, 10)])
    first = windows.close(2**62, keep=True)
    resumed = SiteWindows(window_spec(settings), windows.snapshot())
    resumed.add([feedback(settings, 20)])
    again = rows_by(resumed.close(2**62), 3600)
    assert rows_by(first, 3600)[("nps", 0)]["n"] == 1 and again[("nps", 0)]["n"] == 2


def test_flow_windows_match_a_direct_recomputation(settings):
    import random

    rng = random.Random(7)
    raw, times = [], sorted(rng.randrange(0, 30 * HOUR) for _ in range(400))
    for i, ts in enumerate(times):
        ts = max(0, ts - (5 * HOUR if i % 37 == 0 else 0))  # a few arrive late
        site = f"store-000{1 + i % 3}"
        raw.append(feedback(settings, ts, nps=rng.randint(0, 10), waiting=rng.randint(1, 5), site=site))
    messages = [
        RawMessage(orjson.dumps({"event_id": e.event_id, "occurred_at": iso_ms(e.ts_ms), "site_id": e.site_id,
                                 "scores": e.scores, "attributes": e.attributes}), "t", 0, i)
        for i, e in enumerate(raw)
    ]
    captured = []
    flow = Dataflow("windows_test")
    decoded = decode_batches("decode", op.input("in", flow, TestingSource(messages, batch_size=16)), Decoder(settings))
    windowed = event_time_windows("windows", op.flat_map("by_shard", decoded, SiteShards(8)), window_spec(settings), 8)
    op.output("out", op.flat_map_batch("values", windowed, site_values), TestingSink(captured))
    run_main(flow)
    late = {e.event_id for b in captured for e in b.events if e.late}
    assert 0 < len(late) < 15
    got = {(r[0], r[2], r[3], r[4]): (r[5], r[6], r[7], r[8]) for b in captured for r in b.rows}
    expected: dict = {}
    for e in raw:
        if e.event_id in late:
            continue
        for length in (3600, 86400):
            for q, v in {**e.scores, **e.attributes}.items():
                start = e.ts_ms - e.ts_ms % (length * 1000)
                if length == 86400:  # daily windows: the site's local day
                    start = BASE + midnight(settings, e.ts_ms - BASE, e.site_id)
                key = (e.site_id, q, length, start)
                n, s, b, t = expected.get(key, (0, 0, 0, 0))
                bottom, top = (6, 9) if q == "nps" else (2, 4)
                expected[key] = (n + 1, s + v, b + (v <= bottom), t + (v >= top))
    assert got == expected



# ---- Robust watermark: one future-dated event cannot close a site's windows (issue #13) ----
YEAR = 365 * 24 * HOUR


def test_one_future_event_does_not_move_the_watermark(settings):
    windows = SiteWindows(window_spec(settings))
    rows = windows.add([feedback(settings, t * 600_000) for t in range(6 * 10)])  # every 10 min for 10 h
    outlier = feedback(settings, YEAR)  # a wrong clock, a year ahead
    rows += windows.add([outlier])
    later = [feedback(settings, 10 * HOUR + t * 600_000) for t in range(6 * 10)]  # the next 10 h
    rows += windows.add(later)
    assert not outlier.late and not any(e.late for e in later)
    hourly = rows_by(rows, 3600)
    # Windows keep closing with the stream (end + 2 h behind its 19:50), not all at once or never.
    assert {start // HOUR for _, start in hourly} == set(range(17))
    assert all(row["n"] == 6 for row in hourly.values())
    assert windows.watermark == BASE + 10 * HOUR + 59 * 600_000
    # The end of the input still emits the outlier's window.
    assert ("nps", YEAR) in rows_by(windows.close(2**62, keep=True), 3600)


def test_a_second_event_as_far_ahead_confirms_the_jump(settings):
    windows = SiteWindows(window_spec(settings))
    windows.add([feedback(settings, 0), feedback(settings, 600_000)])
    windows.add([feedback(settings, 5 * HOUR), feedback(settings, 5 * HOUR + 1)])
    stale = feedback(settings, HOUR)
    windows.add([stale])
    assert stale.late  # the stream did move on: two events say so


def test_thin_site_one_response_a_month_closes_its_windows(settings):
    windows = SiteWindows(window_spec(settings))
    month = 30 * 24 * HOUR
    rows = []
    for k in range(4):
        rows += windows.add([feedback(settings, k * month)])
    # Each response closes the windows of the one two before it; the end of the input the rest.
    assert {start for _, start in rows_by(rows, 86400)} == {midnight(settings, 0), midnight(settings, month)}
    rest = rows_by(windows.close(2**62, keep=True), 86400)
    assert {start for _, start in rest} == {midnight(settings, 2 * month), midnight(settings, 3 * month)}


def test_replay_with_a_future_event_ends_with_every_window_emitted(settings):
    events = [feedback(settings, t * 600_000, site=f"store-000{1 + t % 2}") for t in range(60)]
    events.insert(30, feedback(settings, YEAR, site="store-0001"))
    windowed = _run_windows(settings, events)
    assert not any(e.late for b in windowed for e in b.events)
    counted = sum(r[5] for b in windowed for r in b.rows if r[2] == "nps" and r[3] == 3600)
    assert counted == len(events)


def _run_windows(settings, events, now=None, **spec_changes):
    """``events`` (decoded) through the windows step in a dataflow, 8 to a batch: the windowed batches."""
    import dataclasses

    messages = [
        RawMessage(orjson.dumps({"event_id": e.event_id, "occurred_at": iso_ms(e.ts_ms), "site_id": e.site_id,
                                 "scores": e.scores, "attributes": e.attributes}), "t", 0, i)
        for i, e in enumerate(events)
    ]
    spec = dataclasses.replace(window_spec(settings), **spec_changes)
    captured = []
    flow = Dataflow("windows_order_test")
    decoded = decode_batches("decode", op.input("in", flow, TestingSource(messages, batch_size=8)), Decoder(settings))
    kwargs = {} if now is None else {"now": now}
    windowed = event_time_windows("windows", op.flat_map("by_shard", decoded, SiteShards(8)), spec, 8, **kwargs)
    op.output("out", op.flat_map_batch("values", windowed, site_values), TestingSink(captured))
    run_main(flow)
    return captured


# ---- Live sources: lateness against the stream's progress, the wall clock closes quiet sites ----
def test_a_backlog_older_than_the_lateness_is_history_on_a_live_source(settings):
    wall = BASE + 30 * HOUR  # the engine starts 24-30 h after the events happened
    events = [feedback(settings, t * 300_000, site=f"store-000{1 + t % 3}") for t in range(72)]  # 6 h
    windowed = _run_windows(settings, events, now=lambda: wall, wall_clock=True)
    assert sum(b.late for b in windowed) == 0
    assert not any(e.late for b in windowed for e in b.events)
    counted = sum(r[5] for b in windowed for r in b.rows if r[2] == "nps" and r[3] == 3600)
    assert counted == len(events)


def test_the_wall_clock_closes_a_quiet_site_without_making_events_late(settings):
    spec = window_spec(settings, wall_clock=True)
    windows = SiteWindows(spec)
    wall = BASE + 24 * HOUR  # read a day late
    rows = windows.add([feedback(settings, 10 * 60_000 * k) for k in range(3)], now_ms=wall)
    assert rows == [] and windows.progress(wall) == BASE + 10 * 60_000
    # Quiet for 3 h of wall time: progress 00:10 + 3 h, so the first hour (ends 01:00, + 2 h) closes.
    assert windows.next_close_ms() == wall + 3 * HOUR - 10 * 60_000
    rows = rows_by(windows.add((), now_ms=wall + 3 * HOUR), 3600)
    assert rows[("nps", 0)]["n"] == 3
    # An event in that closed window is now late; one in an open window is not.
    stale, fresh = feedback(settings, 30 * 60_000), feedback(settings, 2 * HOUR)
    windows.add([stale, fresh], now_ms=wall + 3 * HOUR)
    assert (stale.late, fresh.late) == (True, False)


def test_a_resumed_live_site_does_not_count_the_downtime_as_progress(settings):
    from boucle.operators.windows import _WindowLogic

    spec = window_spec(settings, wall_clock=True)
    clock = [BASE + 24 * HOUR]
    logic = _WindowLogic(spec, None, lambda: clock[0])
    logic.on_batch([[feedback(settings, 0), feedback(settings, 60_000)]])
    snapshot = logic.snapshot()
    clock[0] += 12 * HOUR  # down for 12 h with a backlog waiting
    resumed = _WindowLogic(spec, snapshot, lambda: clock[0])
    assert resumed.on_notify()[0] == []  # nothing closed by the downtime
    backlog = feedback(settings, 2 * HOUR)
    [batch], _ = resumed.on_batch([[backlog]])
    assert not backlog.late and batch.late == 0
