"""JSONL file replay: every non-empty line once, offsets are line numbers, resumable."""

from __future__ import annotations

from datetime import timedelta

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.errors import BytewaxRuntimeError
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import TestingSink, run_main

from boucle.config.loader import load_settings
from boucle.sources.file_source import JsonlFileSource
from boucle.sources.simulator import Simulator


@pytest.fixture(scope="module")
def values():
    return [m.value for m in Simulator(load_settings(), days=1, volume_scale=0.5).messages()]


@pytest.fixture()
def path(tmp_path, values):
    """The simulator's messages, one per line, with empty lines sprinkled in and no final newline."""
    lines = []
    for i, value in enumerate(values):
        lines.append(value)
        if i % 97 == 0:
            lines.append(b"")
    file = tmp_path / "feedback.jsonl"
    file.write_bytes(b"\n".join(lines))
    return file


def _expected(path):
    return [(line, number) for number, line in enumerate(path.read_bytes().split(b"\n")) if line]


def _flow(source, out, fail_at=None):
    flow = Dataflow("file_test")

    def check(message):
        if message.offset == fail_at:
            raise RuntimeError("injected failure")
        return message

    op.output("out", op.map("check", op.input("in", flow, source), check), TestingSink(out))
    return flow


def test_every_line_once_with_line_number_offsets(path, values):
    out = []
    run_main(_flow(JsonlFileSource(path, batch_size=64), out))
    assert [(m.value, m.offset) for m in out] == _expected(path)
    assert [m.value for m in out] == values
    assert {(m.origin, m.partition) for m in out} == {(str(path), 0)}


def test_crlf_and_blank_lines(tmp_path):
    file = tmp_path / "crlf.jsonl"
    file.write_bytes(b'{"a":1}\r\n\r\n   \n{"a":2}\n')
    out = []
    run_main(_flow(JsonlFileSource(file), out))
    assert [(m.value, m.offset) for m in out] == [(b'{"a":1}', 0), (b'{"a":2}', 3)]


def test_partition_resumes_from_its_snapshot(path):
    source = JsonlFileSource(path, batch_size=100)
    part = source.build_part("in", str(path), None)
    first = part.next_batch() + part.next_batch()
    state = part.snapshot()
    part.close()
    resumed = source.build_part("in", str(path), state)
    rest = []
    while True:
        try:
            rest += resumed.next_batch()
        except StopIteration:
            break
    resumed.close()
    assert [(m.value, m.offset) for m in first + rest] == _expected(path)


def test_dataflow_resumes_after_a_failure(path, tmp_path):
    db = tmp_path / "recovery"
    db.mkdir()
    init_db_dir(db, 1)
    recovery = RecoveryConfig(str(db))
    first, second = [], []
    with pytest.raises(BytewaxRuntimeError):  # wraps the injected RuntimeError
        run_main(_flow(JsonlFileSource(path, batch_size=50), first, fail_at=400),
                 epoch_interval=timedelta(0), recovery_config=recovery)
    run_main(_flow(JsonlFileSource(path, batch_size=50), second), epoch_interval=timedelta(0),
             recovery_config=recovery)
    assert 0 < second[0].offset <= 400
    assert sorted({(m.value, m.offset) for m in first + second}, key=lambda x: x[1]) == _expected(path)


# ---- A file rotated in place under the same recovery directory (issue #13) ----
def _recovery(tmp_path):
    db = tmp_path / "recovery"
    db.mkdir()
    init_db_dir(db, 1)
    return RecoveryConfig(str(db))


def _lines(n, tag):
    return b"".join(b'{"n": %d, "file": "%s"}\n' % (i, tag.encode()) for i in range(n))


def test_a_file_rotated_in_place_is_read_from_its_beginning(tmp_path, caplog):
    recovery = _recovery(tmp_path)
    file = tmp_path / "feedback.jsonl"
    file.write_bytes(_lines(1_000, "old"))
    first, second = [], []
    run_main(_flow(JsonlFileSource(file, batch_size=64), first), epoch_interval=timedelta(0), recovery_config=recovery)
    assert len(first) == 1_000
    rotated = tmp_path / "feedback.jsonl.new"
    rotated.write_bytes(_lines(2_000, "new"))  # bigger than the old one: its size alone cannot tell
    rotated.replace(file)
    with caplog.at_level("WARNING", logger="boucle.sources.file_source"):
        run_main(_flow(JsonlFileSource(file, batch_size=64), second), epoch_interval=timedelta(0),
                 recovery_config=recovery)
    assert [(m.value, m.offset) for m in second] == _expected(file)  # all 2,000, from line 0
    assert "not the file its recovery snapshot was taken from" in caplog.text


def test_a_file_rewritten_shorter_in_place_is_read_from_its_beginning(tmp_path):
    recovery = _recovery(tmp_path)
    file = tmp_path / "feedback.jsonl"
    file.write_bytes(_lines(500, "old"))
    run_main(_flow(JsonlFileSource(file), []), epoch_interval=timedelta(0), recovery_config=recovery)
    with file.open("r+b") as f:  # same inode, truncated and rewritten
        f.truncate(0)
        f.write(_lines(100, "new"))
    again = []
    run_main(_flow(JsonlFileSource(file), again), epoch_interval=timedelta(0), recovery_config=recovery)
    assert len(again) == 100 and again[0].offset == 0


def test_a_file_that_only_grew_resumes_where_it_stopped(tmp_path, caplog):
    recovery = _recovery(tmp_path)
    file = tmp_path / "feedback.jsonl"
    file.write_bytes(_lines(300, "old"))
    run_main(_flow(JsonlFileSource(file, batch_size=64), []), epoch_interval=timedelta(0), recovery_config=recovery)
    with file.open("ab") as f:
        f.write(_lines(50, "appended"))
    more = []
    with caplog.at_level("WARNING", logger="boucle.sources.file_source"):
        run_main(_flow(JsonlFileSource(file, batch_size=64), more), epoch_interval=timedelta(0),
                 recovery_config=recovery)
    assert [m.offset for m in more] == list(range(300, 350)) and not caplog.text
