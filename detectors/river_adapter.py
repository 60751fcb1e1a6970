"""Any river detector as an alarm source of a series: ``"river:drift.PageHinkley"`` and its parameters.

:func:`resolve` turns a spec (``river:<module>.<Class>``, a module of river's and one of its drift
or anomaly detectors) and keyword parameters into the class, or raises :class:`RiverSpecError`
saying what is wrong; :class:`RiverAlarm` wraps an instance into what a series watch expects of a
local detector (:class:`~detectors.AttributeWatch`): ``update(x, t_ms)``, ``alarm``, ``evidence``,
``state`` / ``from_state``; :func:`build` is the same for a benchmark (``build(spec, **params)``) and
:func:`parse_option` reads the command-line form ``river:drift.PageHinkley(threshold=20, mode="down")``.

How a river detector becomes an alarm that an alert can follow:

- a **drift detector** (``drift.PageHinkley``, ``drift.ADWIN``, ``drift.KSWIN``...) is fed each rating;
  a detected drift counts when the level went down (``direction="down"``: a short running mean of the
  ratings below a long one) or always (``"both"``). river's detectors signal once and start over, an
  open alert needs a state: the alarm holds for ``hold_days`` of the series' time after the
  latest drift (its own clock in an :class:`~detectors.AttributeWatch`, see
  :mod:`detectors.clock`: a week of a busy series, the time of as many responses for a thin one);
- an **anomaly detector** scores each rating before learning it: ``anomaly.GaussianScorer`` and
  other supervised ones as ``score_one(None, y)``, unsupervised ones on ``{"x": rating}``. A rating
  above the long mean scores 0 (a drop is the question); a running mean of the scores (weight
  ``score_alpha``) reaching ``score_threshold`` is an event, held like a drift.

>>> import random
>>> rng, hour = random.Random(4), 3_600_000
>>> alarm = build("river:drift.PageHinkley", threshold=30.0, mode="down")
>>> for i in range(800):                      # a point lost at the 500th rating
...     alarm.update(min(5, max(1, round(rng.gauss(4.0 - (i >= 500), 0.9)))), i * hour)
...     if alarm.alarm:
...         break
>>> 500 < i < 560, alarm.evidence()["river_drifts"]
(True, 1.0)

**State.** The detectors' contract (:mod:`detectors`) wants plain data without parameters, rebuilt
under the parameters of the day. A river estimator keeps its constructor parameters as attributes
of the same names (river's ``_get_params`` / ``clone`` rely on it); every *other* attribute is what
it has learnt, and so is a parameter attribute that learning changed (KSWIN's ``window``). :meth:`RiverAlarm.state` exports those, recursively, as plain data (numbers, strings,
lists, tuples; a nested river object as a dict of its own learnt attributes; a ``deque`` as a list;
a ``random.Random`` as its state tuple), and :meth:`RiverAlarm.from_state` builds a fresh detector
with the parameters of the day and loads them into it, guided by the fresh object's own attributes
(so a ``deque`` keeps the new ``maxlen``). An attribute held by a compiled helper (ADWIN's window is
Rust) is kept as that helper's own serialisation (hex) with the arguments it was built with: it is
loaded only into a helper built with the same arguments, else it starts afresh, as a reshaped part of
a Boucle detector does. A spec changed to another class starts the river detector afresh.

>>> again = RiverAlarm.from_state(alarm.state(), spec="river:drift.PageHinkley", params={"threshold": 30.0,
...                               "mode": "down"})
>>> again.evidence() == alarm.evidence(), again.detector._sum_decrease == alarm.detector._sum_decrease
(True, True)
"""

from __future__ import annotations

import ast
import copy
import importlib
import inspect
import random
from collections import deque
from typing import Any

from river import base

from boucle.config.times import DAY_MS

__all__ = ["RiverAlarm", "RiverSpecError", "build", "parse_option", "resolve"]

PREFIX = "river:"
_KINDS = (base.DriftDetector, base.AnomalyDetector, base.SupervisedAnomalyDetector)
_MISSING = object()


class RiverSpecError(ValueError):
    """A river spec or parameter that cannot be used (the message says why); ``key`` says which:
    ``"use"`` (the spec), ``"params.<name>"`` or ``"params"``."""

    def __init__(self, message: str, key: str = "use"):
        super().__init__(message)
        self.key = key


def resolve(spec: str, params: dict[str, Any] | None = None) -> type:
    """The river class of ``spec`` (``"river:drift.ADWIN"``), checked by building it with ``params``.

    >>> resolve("river:drift.ADWIN", {"delta": 0.01}).__name__
    'ADWIN'
    >>> resolve("river:drift.PageHinkly")
    Traceback (most recent call last):
    ...
    boucle.detectors.river_adapter.RiverSpecError: river.drift has no detector 'PageHinkly' (known: ADWIN, DummyDriftDetector, KSWIN, NoDrift, PageHinkley)
    >>> resolve("river:drift.PageHinkley", {"treshold": 3})
    Traceback (most recent call last):
    ...
    boucle.detectors.river_adapter.RiverSpecError: drift.PageHinkley has no parameter 'treshold' (known: alpha, delta, min_instances, mode, threshold)

    Checked once per spec and parameters: the class must be one of river's drift or anomaly
    detectors, take the parameters, and live in a snapshot (a short probe: fed, kept, rebuilt and
    fed again, it must go on as before).
    """
    params = dict(params or {})
    key = (repr(spec), repr(sorted(params.items())))
    cls = _RESOLVED.get(key)
    if cls is None:
        cls = _RESOLVED[key] = _resolve(spec, params)
    return cls


_RESOLVED: dict[tuple[str, str], type] = {}


def _resolve(spec: str, params: dict[str, Any]) -> type:
    if not isinstance(spec, str) or not spec.startswith(PREFIX) or "." not in spec[len(PREFIX):]:
        raise RiverSpecError(f"expected 'river:<module>.<Class>' such as 'river:drift.PageHinkley', got {spec!r}")
    module_name, _, class_name = spec[len(PREFIX):].rpartition(".")
    try:
        module = importlib.import_module(f"river.{module_name}")
    except ImportError:
        raise RiverSpecError(f"river has no module {module_name!r} (detectors live in drift and anomaly)") from None
    known = sorted(name for name, value in vars(module).items()
                   if inspect.isclass(value) and issubclass(value, _KINDS) and not inspect.isabstract(value))
    cls = getattr(module, class_name, None)
    if not (inspect.isclass(cls) and issubclass(cls, _KINDS)) or inspect.isabstract(cls):
        raise RiverSpecError(f"river.{module_name} has no detector {class_name!r} (known: {', '.join(known) or 'none'})")
    names = [n for n, p in inspect.signature(cls).parameters.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    for name in params:
        if name not in names:
            raise RiverSpecError(f"{module_name}.{class_name} has no parameter {name!r} (known: {', '.join(sorted(names))})",
                                 f"params.{name}")
    try:
        cls(**params)
    except (TypeError, ValueError) as exc:  # the detector's own check of its parameters (a bad mode...)
        raise RiverSpecError(f"{module_name}.{class_name}({_kwargs(params)}): {type(exc).__name__}: {exc}",
                             "params") from None
    _probe(spec, params)
    return cls


def _probe(spec: str, params: dict[str, Any]) -> None:
    """Feed a detector, keep its state, rebuild it and feed both: their states must agree, or the
    detector cannot live in a snapshot (its learnt state is something :func:`export` cannot hold)."""
    rng = random.Random(0)
    xs = [float(min(5, max(1, round(rng.gauss(3.8, 1.0))))) for _ in range(160)]
    one = RiverAlarm(spec, params, _probe=False)
    try:
        one.update_many(xs[:120], list(range(120)))
        other = RiverAlarm.from_state(one.state(), spec=spec, params=params, _probe=False)
        one.update_many(xs[120:], list(range(120, 160)))
        other.update_many(xs[120:], list(range(120, 160)))
        same = one.state() == other.state()
    except (TypeError, ValueError, AttributeError, KeyError, IndexError) as exc:
        raise RiverSpecError(f"{spec[len(PREFIX):]} cannot be kept in a snapshot as plain data "
                             f"({type(exc).__name__}: {exc})") from None
    if not same:
        raise RiverSpecError(f"{spec[len(PREFIX):]} cannot be kept in a snapshot as plain data "
                             "(rebuilt from its state, it does not go on as before)")


def _class(spec: str) -> type:
    module_name, _, class_name = spec[len(PREFIX):].rpartition(".")
    return getattr(importlib.import_module(f"river.{module_name}"), class_name)


def _kwargs(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in params.items())


def parse_option(text: str) -> tuple[str, dict[str, Any]]:
    """``'river:drift.PageHinkley(threshold=20, mode="down")'`` -> the spec and its parameters
    (literal values only); the parentheses may be left out.

    >>> parse_option('river:drift.PageHinkley(threshold=20, mode="down")')
    ('river:drift.PageHinkley', {'threshold': 20, 'mode': 'down'})
    >>> parse_option("river:drift.ADWIN")
    ('river:drift.ADWIN', {})
    """
    text = text.strip()
    spec, paren, rest = text.partition("(")
    if not paren:
        return spec, {}
    try:
        call = ast.parse(f"f({rest}", mode="eval").body
        if not isinstance(call, ast.Call) or call.args:
            raise ValueError("keyword arguments only")
        return spec.strip(), {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
    except (SyntaxError, ValueError) as exc:
        raise RiverSpecError(f"cannot read {text!r}: write river:<module>.<Class>(name=value, ...) ({exc})") from None


def build(spec: str, *, hold_days: float = 7.0, direction: str = "down", score_threshold: float = 0.5,
          score_alpha: float = 0.1, **params: Any) -> "RiverAlarm":
    """A :class:`RiverAlarm` of ``spec`` built with the river detector's ``params`` (the benchmark's hook)."""
    return RiverAlarm(spec, params, hold_days=hold_days, direction=direction, score_threshold=score_threshold,
                      score_alpha=score_alpha)


class RiverAlarm:
    """A river drift or anomaly detector as the held alarm of one series (see the module's docstring)."""

    _FAST, _SLOW = 0.1, 0.01  # weights of the short and long running means (per rating)

    def __init__(self, spec: str, params: dict[str, Any] | None = None, hold_days: float = 7.0,
                 direction: str = "down", score_threshold: float = 0.5, score_alpha: float = 0.1,
                 trigger: str = "trend", _probe: bool = True):
        if direction not in ("down", "both"):
            raise RiverSpecError(f"direction must be 'down' or 'both', got {direction!r}")
        self.spec = spec
        self.params = dict(params or {})
        self.hold_days = hold_days
        self.direction = direction
        self.score_threshold = score_threshold
        self.score_alpha = score_alpha
        self.trigger = trigger  # the name of the trigger its alarm raises in an alert
        cls = resolve(spec, self.params) if _probe else _class(spec)
        self.detector = cls(**self.params)
        # What the parameter attributes hold before any learning: one that moves away is learnt state.
        self._initial = {name: copy.deepcopy(getattr(self.detector, name, None)) for name in self.detector._get_params()}
        self.kind = ("drift" if isinstance(self.detector, base.DriftDetector) else
                     "supervised" if isinstance(self.detector, base.SupervisedAnomalyDetector) else "anomaly")
        self._hold_ms = hold_days * DAY_MS
        self.t_ms: int | None = None
        self.count = 0
        self.event_ms: int | None = None  # event time of the latest drift (or score past the threshold)
        self.events = 0
        self.short = self.long = 0.0  # running means of the ratings
        self.score = 0.0  # running mean of the anomaly scores of ratings below the long mean

    def update(self, x: float, t_ms: int | None = None) -> None:
        """Learn one rating at ``t_ms`` (the newest time seen without it)."""
        x = float(x)
        if t_ms is None:
            t_ms = self.t_ms or 0
        if self.count == 0:
            self.short = self.long = x
        below = x < self.long
        self.short += self._FAST * (x - self.short)
        self.long += self._SLOW * (x - self.long)
        det, event = self.detector, False
        if self.kind == "drift":
            det.update(x)
            event = det.drift_detected and (self.direction == "both" or self.short < self.long)
        else:
            s = det.score_one(None, x) if self.kind == "supervised" else det.score_one({"x": x})
            self.score += self.score_alpha * ((float(s) if below or self.direction == "both" else 0.0) - self.score)
            det.learn_one(None, x) if self.kind == "supervised" else det.learn_one({"x": x})
            event = self.score >= self.score_threshold
        if event:
            self.event_ms = t_ms if self.event_ms is None else max(self.event_ms, t_ms)
            self.events += 1
        self.count += 1
        if self.t_ms is None or t_ms > self.t_ms:
            self.t_ms = t_ms

    def update_many(self, xs: list[float], ts: list[int]) -> None:
        for x, t_ms in zip(xs, ts):
            self.update(x, t_ms)

    @property
    def alarm(self) -> bool:
        """A drift (or an anomaly score past the threshold) within ``hold_days`` of the newest rating."""
        return self.event_ms is not None and (self.t_ms or 0) - self.event_ms < self._hold_ms

    drift_detected = alarm

    def evidence(self) -> dict[str, float]:
        return {"river_alarm": float(self.alarm), "river_drifts": float(self.events), "river_score": self.score,
                "river_short": self.short, "river_long": self.long}

    def copy(self) -> "RiverAlarm":
        """An independent copy (same state, same future outputs)."""
        return copy.deepcopy(self)

    # -- state as plain data (see the module's docstring and detectors/__init__.py) ---------------
    _FIELDS = ("t_ms", "count", "event_ms", "events", "short", "long", "score")

    def state(self) -> dict[str, Any]:
        """The adapter's numbers, the river detector's learnt attributes (:func:`export`) and ``layout``,
        the spec they were learnt under (it tells a rebuild whether they fit; never a parameter)."""
        out = {name: getattr(self, name) for name in self._FIELDS}
        out["detector"] = export(self.detector, self._initial)
        out["layout"] = self.spec
        return out

    @classmethod
    def from_state(cls, state: dict[str, Any], **params: Any) -> "RiverAlarm":
        """An alarm built with ``params`` (the constructor's) that resumes from :meth:`state`; a detector
        of another class than the one the state was learnt by starts afresh."""
        return cls(**params)._load(state)

    def _load(self, state: dict[str, Any]) -> "RiverAlarm":
        for name in self._FIELDS:
            setattr(self, name, state[name])
        if state["layout"] == self.spec:
            load(self.detector, state["detector"])
        return self


# -- a river estimator's learnt attributes as plain data -------------------------------------------
def export(obj: Any, initial: dict[str, Any] | None = None) -> dict[str, Any]:
    """The attributes of a river object that are not constructor parameters (nor bound methods), as
    plain data; with ``initial`` (the parameter attributes before learning), a parameter attribute
    that no longer equals its initial value is exported too. Raises TypeError for a value it cannot
    represent."""
    params = set(obj._get_params()) if isinstance(obj, base.Base) else set()
    out = {}
    for name, value in vars(obj).items():
        if inspect.ismethod(value) or inspect.isfunction(value):
            continue  # a method picked from the parameters (PageHinkley's mode)
        if name in params and (initial is None or _same(initial.get(name), value)):
            continue  # a parameter, as built
        out[name] = _plain(value, name)
    return out


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except (TypeError, ValueError):  # numpy arrays and the like: compare their plain forms
        return _plain(a, "") == _plain(b, "")


def _plain(value: Any, where: str) -> Any:
    if value is None or type(value) in (bool, int, float, str):
        return value
    for kind in (bool, int, float, str):  # their subclasses (numpy's float64 is a float)
        if isinstance(value, kind):
            return kind(value)
    if hasattr(value, "item") and hasattr(value, "dtype") and getattr(value, "ndim", 1) == 0:
        return value.item()  # a numpy scalar
    if isinstance(value, (list, deque)):
        return [_plain(v, where) for v in value]
    if hasattr(value, "tolist") and hasattr(value, "dtype"):
        return value.tolist()  # a numpy array
    if isinstance(value, tuple):
        return tuple(_plain(v, where) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v, where) for k, v in value.items()}
    if isinstance(value, random.Random):
        return value.getstate()
    if isinstance(value, base.Base) or hasattr(value, "__dict__"):
        return export(value)
    reduced = value.__reduce_ex__(4)
    if len(reduced) >= 3 and isinstance(reduced[2], bytes) and reduced[1] and reduced[1][0] is type(value):
        # A compiled helper (ADWIN's window): its own serialisation, with the arguments it was built with.
        return {"layout": _plain(tuple(reduced[1][1:]), where), "blob": reduced[2].hex()}
    raise TypeError(f"{where}: cannot keep a {type(value).__qualname__} as plain data")


def load(obj: Any, learnt: dict[str, Any]) -> Any:
    """Load :func:`export`'s attributes into ``obj`` (built with the parameters of the day); a value
    that does not fit what ``obj`` has there keeps ``obj``'s own (it starts afresh)."""
    for name, value in learnt.items():
        current = getattr(obj, name, _MISSING)
        try:
            setattr(obj, name, _restore(current, value))
        except (TypeError, ValueError, KeyError, AttributeError, IndexError):
            pass
    return obj


def _restore(current: Any, value: Any) -> Any:
    if current is _MISSING or current is None:
        return value
    if isinstance(current, deque):
        return deque(value, maxlen=current.maxlen)
    if isinstance(current, random.Random):
        rng = random.Random()
        rng.setstate((value[0], tuple(value[1]), value[2]))
        return rng
    if isinstance(current, tuple):
        return tuple(value)
    if hasattr(current, "tolist") and hasattr(current, "dtype") and getattr(current, "ndim", 0) > 0:
        import numpy as np

        return np.asarray(value, dtype=current.dtype)
    if isinstance(current, (base.Base,)) or (hasattr(current, "__dict__") and isinstance(value, dict)):
        return load(current, value)
    if isinstance(value, dict) and "blob" in value:
        reduced = current.__reduce_ex__(4)
        if list(_plain(tuple(reduced[1][1:]), "")) != list(value["layout"]):
            return current  # built with other arguments: the window starts afresh
        new = type(current).__new__(type(current), *reduced[1][1:])
        new.__setstate__(bytes.fromhex(value["blob"]))
        return new
    return value
