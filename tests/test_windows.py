"""Tumbling windows on event time: boundaries, box shares, late events, end of input, resume."""

import itertools
from datetime import datetime, timezone

import bytewax.operators as op
import orjson
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, run_main

from boucle.config.times import iso_ms
from boucle.flows.feedback_flow import window_spec
from boucle.operators.decode import Decoder, decode_batches, group_by_site
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
    assert rows[("nps", 0)]["n"] == 3  # the 10:00 events and the on-time one


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
    windowed = event_time_windows("windows", op.flat_map("by_site", decoded, group_by_site), window_spec(settings))
    op.output("out", op.map("values", windowed, lambda kv: kv[1]), TestingSink(captured))
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
                key = (e.site_id, q, length, e.ts_ms - e.ts_ms % (length * 1000))
                n, s, b, t = expected.get(key, (0, 0, 0, 0))
                bottom, top = (6, 9) if q == "nps" else (2, 4)
                expected[key] = (n + 1, s + v, b + (v <= bottom), t + (v >= top))
    assert got == expected

