"""What a bytewax snapshot may hold: builtins only, never a class of ours or a config object."""

from __future__ import annotations


def is_plain(value) -> bool:
    """True when ``value`` is built of builtins only.

    >>> is_plain({"n": 3, "cells": [(1, 2.0)]}), is_plain({"when": object()})
    (True, False)
    """
    if isinstance(value, (tuple, list)):
        return type(value) in (tuple, list) and all(map(is_plain, value))
    if isinstance(value, dict):
        return type(value) is dict and all(is_plain(k) and is_plain(v) for k, v in value.items())
    return value is None or type(value) in (str, bytes, int, float, bool)
