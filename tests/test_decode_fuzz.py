"""Property-based fuzz of the decoder (hypothesis): arbitrary bytes and mutated events; no exception
escapes, every result is a typed Feedback or a DeadLetter with a known reason code (never
``internal_error``), and an accepted event's alert serialises within the size bound.
benchmarks/fuzz_decoder.py runs the same property at a larger count."""

from __future__ import annotations

import pytest
from decode_strategies import any_bytes, check, mutated_events
from hypothesis import HealthCheck, given, settings

from boucle.operators.decode import Decoder
from boucle.operators.hot_alerts import HotAlertBuilder

FUZZ = settings(max_examples=1500, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def decoding(settings):
    return Decoder(settings), HotAlertBuilder(settings)


@FUZZ
@given(value=any_bytes)
def test_arbitrary_bytes_never_escape_the_dead_letter_path(decoding, value):
    check(*decoding, value)


@FUZZ
@given(value=mutated_events())
def test_mutated_events_are_typed_or_dead_lettered_with_a_known_reason(decoding, value):
    check(*decoding, value)
