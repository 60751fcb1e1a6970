"""Per-response cost of the attribute-alert step, with headline scores watched and without, and the
same at a base git revision, side by side on the same machine minute.

The step is driven in-process the way the dataflow drives it (:mod:`operators.attribute_order`): the
partition clock, then every region's canonical order with its site and region states, batch after
batch of the simulated stream (``--batch-size`` messages, as a source hands them over), with a fixed
detection clock. Decoding is done before the clock starts: the figure is CPU time (``process_time``)
of the attribute step alone, divided by the accepted responses. In the same process, bare
``orjson.loads`` over the same bytes gives a floor: the ratio to it says how the step compares with
merely parsing its input, whatever the machine's speed that minute.

With ``--base REV`` a ``git worktree`` of REV is checked out in a temporary folder and imported as
``boucle`` by a worker process of its own; the runs alternate (base, current, base, current ...) so
the ratio current/base is measured side by side. Each run also prints a digest of every attribute
alert it emitted: the same digest at both revisions says a speed-up changed no result.

    nice -n 10 .venv/bin/python benchmarks/attribute_cost.py --days 7 --repeat 3 --base main

Figures: median and range of ``--repeat`` runs per variant, µs of CPU time per accepted response;
``--json PATH`` writes them with the digests (``{"current": {"scores_on": {"us_per_response": ...,
"runs": [...], "digest": ...}, "scores_off": {...}, "floor": {...}}, "base": {...}, "ratio": {...}}``).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from _floor import loads_seconds

VARIANTS = (("scores_on", True), ("scores_off", False))


# -- the worker: runs in the code of whichever ``boucle`` is importable ---------------------------
def _read_messages(path: str) -> list[tuple[bytes, str, int, int]]:
    with open(path, "rb") as f:
        return [(row[0].encode(), row[1], row[2], row[3]) for row in orjson.loads(f.read())]


def _floor_us(values: list[bytes]) -> float:
    """µs of CPU per message of bare ``orjson.loads`` over the same bytes."""
    return loads_seconds(values, time.process_time) * 1e6 / len(values)


def _driver(settings: Any):
    """``run(engine, batches) -> alerts``: the dataflow's attribute step in-process (the canonical
    order when the revision has it, else the plain replay)."""
    try:
        from boucle.operators.attribute_order import OrderSpec, _PartitionClock, _RegionOrder, by_partition
    except ImportError:  # an older revision: sites and regions straight from the batches
        from boucle.operators.attribute_replay import replay

        return lambda engine, batches: replay(engine, [b.accepted for b in batches], lambda: 0), "replay"
    cfg = settings.attribute_alerts
    region_of = {s.id: s.region for s in settings.sites}
    spec = OrderSpec(step_ms=int(cfg.order_step.total_seconds() * 1000),
                     delay_ms=int(cfg.order_delay.total_seconds() * 1000), partitions=1,
                     regions=tuple(sorted(set(region_of.values()))), region_of=region_of,
                     dedup_horizon_ms=int(settings.windows.dedup_horizon.total_seconds() * 1000))

    def run(engine, batches):
        clock = _PartitionClock(spec, None, engine)
        regions = {region: _RegionOrder(engine, spec, None, lambda: 0) for region in spec.regions}
        out: list[Any] = []
        for batch in batches:
            shares, _ = clock.on_batch([events for _, events in by_partition(batch)])
            for region, value in shares:
                out += regions[region].on_batch([value])[0]
        for logic in regions.values():
            out += logic.on_eof()[0]
        return [item for item in out if isinstance(item, dict)]

    return run, "ordered"


def _digest(alerts: list[dict[str, Any]]) -> str:
    h = hashlib.sha256()
    for alert in alerts:
        h.update(orjson.dumps(alert, option=orjson.OPT_SORT_KEYS))
    return h.hexdigest()[:16]


def worker(messages_path: str, out_path: str, batch_size: int, config: str | None) -> None:
    """One run of each variant (and the floor) in this process's ``boucle``; the figures to ``out_path``."""
    from boucle.config.loader import load_settings
    from boucle.operators.attribute_engine import AttributeAlertEngine
    from boucle.operators.decode import DecodedBatch, Decoder, Feedback
    from boucle.sources.message import RawMessage

    settings = load_settings(config)
    rows = _read_messages(messages_path)
    messages = [RawMessage(v, o, p, off) for v, o, p, off in rows]
    decoder = Decoder(settings)
    batches = []
    for i in range(0, len(messages), batch_size):
        decoded = [decoder.decode(m) for m in messages[i:i + batch_size]]
        accepted = [e for e in decoded if isinstance(e, Feedback)]
        batches.append(DecodedBatch(accepted, [e for e in decoded if not isinstance(e, Feedback)], len(decoded)))
    n = sum(len(b.accepted) for b in batches)
    run, driver = _driver(settings)
    import boucle.operators

    result: dict[str, Any] = {"responses": n, "driver": driver, "code": str(Path(boucle.operators.__file__).parent),
                              "floor_us": _floor_us([m.value for m in messages])}
    cfg = settings.attribute_alerts
    for name, watch in VARIANTS:
        if not hasattr(cfg, "watch_scores") and watch:
            continue  # a revision before the headline scores were watched: one variant only
        variant = settings.model_copy(update={"attribute_alerts": cfg.model_copy(update={"watch_scores": watch})})
        engine = AttributeAlertEngine(variant)
        run(engine, batches[:1])  # warm-up: lazy imports, caches (untimed, on its own states)
        gc.collect()
        before = gc.get_threshold()
        gc.freeze()  # as the flow runs (flows.run.throughput_gc): young collections every 50,000 allocations
        gc.set_threshold(50_000, 20, 20)
        try:
            started = time.process_time()
            alerts = run(engine, batches)
            seconds = time.process_time() - started
        finally:
            gc.set_threshold(*before)
            gc.unfreeze()
        result[name] = {"us": seconds * 1e6 / n, "alerts": len(alerts), "digest": _digest(alerts)}
    Path(out_path).write_text(json.dumps(result))


# -- the parent: messages once, runs alternated, the table ----------------------------------------
def _base_tree(rev: str, tmp: Path) -> Path:
    """A ``git worktree`` of ``rev`` and a folder whose ``boucle`` package maps onto it (as the
    editable install maps the current tree); returns the folder to put on ``PYTHONPATH``."""
    import tomllib

    repo = Path(__file__).resolve().parent.parent
    tree = tmp / "base"
    subprocess.run(["git", "-C", str(repo), "worktree", "add", "--detach", str(tree), rev], check=True,
                   capture_output=True)
    package = tmp / "path" / "boucle"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    dirs = tomllib.loads((tree / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    for name, folder in dirs.items():
        (package / name.split(".", 1)[1]).symlink_to(tree / folder)
    return tmp / "path"


def _run_worker(messages: Path, out: Path, args, pythonpath: Path | None) -> dict[str, Any]:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    cmd = [sys.executable, __file__, "--worker", str(messages), str(out), "--batch-size", str(args.batch_size)]
    if args.config:
        cmd += ["--config", args.config]
    subprocess.run(cmd, check=True, env=env, cwd=out.parent)
    return json.loads(out.read_text())


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"responses": runs[0]["responses"], "driver": runs[0]["driver"], "code": runs[0]["code"]}
    floors = [r["floor_us"] for r in runs]
    out["floor"] = {"us_per_response": statistics.median(floors), "runs": floors}
    for name, _ in VARIANTS:
        if name not in runs[0]:
            continue
        us = [r[name]["us"] for r in runs]
        digests = sorted({r[name]["digest"] for r in runs})
        out[name] = {"us_per_response": statistics.median(us), "runs": us, "alerts": runs[0][name]["alerts"],
                     "digest": digests[0] if len(digests) == 1 else digests,
                     "to_floor": statistics.median(r[name]["us"] / r["floor_us"] for r in runs)}
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="settings file (default: the shipped config/boucle.toml)")
    parser.add_argument("--days", type=float, default=7, help="simulated demo days (default 7)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=2000, help="messages per source batch (default 2000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per revision; median and range (default 3)")
    parser.add_argument("--base", metavar="REV", help="also measure this git revision, runs alternated")
    parser.add_argument("--json", metavar="PATH", help="write the figures as JSON")
    parser.add_argument("--worker", nargs=2, metavar=("MESSAGES", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(*args.worker, args.batch_size, args.config)
        return {}
    from rich.console import Console
    from rich.table import Table

    from boucle.config.loader import load_settings
    from boucle.sources.simulator import Simulator

    console = Console(width=max(Console().width, 110))
    settings = load_settings(args.config)
    simulator = Simulator(settings, seed=args.seed, days=args.days)
    rows = [(m.value.decode(), m.origin, m.partition, m.offset) for m in simulator.messages()]
    revisions: dict[str, list[dict[str, Any]]] = {"current": []}
    tmp = Path(tempfile.mkdtemp(prefix="boucle-attr-cost-"))
    base_tree = None
    try:
        messages = tmp / "messages.json"
        messages.write_bytes(orjson.dumps(rows))
        paths: dict[str, Path | None] = {"current": None}
        if args.base:
            paths = {"base": _base_tree(args.base, tmp), "current": None}
            base_tree = tmp / "base"
            revisions = {"base": [], "current": []}
        for attempt in range(args.repeat):
            for name, path in paths.items():
                with console.status(f"{name}: {len(rows):,} messages (run {attempt + 1}/{args.repeat})"):
                    revisions[name].append(_run_worker(messages, tmp / f"{name}-{attempt}.json", args, path))
    finally:
        if base_tree is not None:
            repo = Path(__file__).resolve().parent.parent
            subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(base_tree)],
                           capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)

    result: dict[str, Any] = {"days": args.days, "seed": args.seed, "batch_size": args.batch_size,
                              "repeat": args.repeat, "base_rev": args.base,
                              **{name: _summary(runs) for name, runs in revisions.items()}}
    if args.base:
        result["ratio"] = {}
        for name, _ in VARIANTS:
            pairs = [(b[name]["us"], c[name]["us"]) for b, c in zip(revisions["base"], revisions["current"])
                     if name in b and name in c]
            if pairs:
                ratios = sorted(c / b for b, c in pairs)
                result["ratio"][name] = {"median": statistics.median(ratios), "runs": ratios}

    n = result["current"]["responses"]
    table = Table(title=f"Attribute step, µs of CPU per response ({n:,} responses, {args.days:g} demo days, "
                        f"median and range of {args.repeat})")
    for column in ("revision", "variant", "µs/resp.", "range", "× floor", "alerts", "digest"):
        table.add_column(column, justify="left" if column in ("revision", "variant", "digest") else "right")
    for rev in revisions:
        label = f"{rev} ({args.base})" if rev == "base" else rev
        s = result[rev]
        for name, _ in VARIANTS:
            if name in s:
                v = s[name]
                table.add_row(label, name.replace("_", " "), f"{v['us_per_response']:.0f}",
                              f"{min(v['runs']):.0f}–{max(v['runs']):.0f}", f"{v['to_floor']:.0f}",
                              str(v["alerts"]), str(v["digest"]))
        f = s["floor"]
        table.add_row(label, "floor: orjson.loads", f"{f['us_per_response']:.2f}",
                      f"{min(f['runs']):.2f}–{max(f['runs']):.2f}", "1", "", "")
    console.print(table)
    for name, ratio in result.get("ratio", {}).items():
        console.print(f"{name.replace('_', ' ')}: current / base = {ratio['median']:.2f} (median of paired runs; "
                      f"range {ratio['runs'][0]:.2f}–{ratio['runs'][-1]:.2f})")
        if result["base"][name]["digest"] != result["current"][name]["digest"]:
            console.print(f"[yellow]{name}: the alerts differ from the base revision's[/]")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
