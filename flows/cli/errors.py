"""One top-level error handler for the ``boucle`` command: one line on stderr and an exit code.

Exit codes: 0 success; 1 the operation failed (warehouse, query, file system, anything else);
2 bad configuration or arguments; 130 interrupted (Ctrl-C). No traceback unless ``BOUCLE_DEBUG=1``.
Every line is redacted (:mod:`boucle.config.redact`): no password of a URL, of the warehouse or
of Kafka reaches the terminal, nor the logs once :func:`redact_logs` has run.

>>> describe(OSError(28, "No space left on device", "var/alerts.jsonl"))
(1, 'disk full: var/alerts.jsonl: No space left on device')
>>> describe(KeyboardInterrupt())
(130, 'interrupted')
"""

from __future__ import annotations

import errno
import logging
import os
import sys
import traceback
from collections.abc import Iterable
from contextlib import nullcontext

import typer
from rich.console import Console
from typer.core import TyperGroup

from boucle.config.redact import RedactingFilter, redact
from boucle.flows.cli.panics import quiet_rust_panics

__all__ = ["BoucleGroup", "EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_USAGE", "describe", "redact_logs", "report"]

EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130

_stderr = Console(stderr=True, soft_wrap=True, highlight=False)
_secrets: list[str] = []
_filter = RedactingFilter()
_factory_installed = False

# What the operating system said, as a user reads it.
_OS_LABELS = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOENT: "no such file or directory",
    errno.ENOTDIR: "not a directory",
    errno.EISDIR: "is a directory",
    errno.EEXIST: "already exists",
}


def redact_logs(secrets: Iterable[str]) -> None:
    """Redact ``secrets`` (and URL passwords) from every log record and every error line.

    Records are redacted when they are made (a record factory: handlers added later are covered
    too), and the handlers present now also get the filter for the tracebacks they format.
    """
    global _factory_installed
    _secrets[:] = [s for s in secrets if s]
    _filter.secrets = list(_secrets)
    if not _factory_installed:
        make = logging.getLogRecordFactory()

        def redacted_record(*args, **kwargs) -> logging.LogRecord:
            record = make(*args, **kwargs)
            _filter.redact_message(record)
            return record

        logging.setLogRecordFactory(redacted_record)
        _factory_installed = True
    for handler in [*logging.getLogger().handlers, logging.lastResort]:
        if handler is not None and _filter not in handler.filters:
            handler.addFilter(_filter)


def _chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:500] if text else type(exc).__name__


def describe(exc: BaseException) -> tuple[int, str]:
    """``(exit code, one line)`` for an exception that reached the top of a command.

    The most telling exception of the chain wins: bytewax wraps what a step raised in its own
    runtime error, with the original as its cause.
    """
    from confluent_kafka import KafkaException

    from boucle.config.loader import ConfigError
    from boucle.sinks.clickhouse.client import WarehouseError
    from boucle.sinks.clickhouse.query import QueryError

    chain = list(_chain(exc))
    for cause in chain:
        if isinstance(cause, (KeyboardInterrupt, typer.Abort)):
            return EXIT_INTERRUPTED, "interrupted"
        if isinstance(cause, typer.TyperException) and hasattr(cause, "format_message"):
            # click's usage errors (no such option, bad value...), vendored by typer
            ctx = getattr(cause, "ctx", None)
            where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
            return getattr(cause, "exit_code", EXIT_USAGE), f"error: {cause.format_message()}{where}"
        if isinstance(cause, ConfigError):
            return EXIT_USAGE, f"config error: {'; '.join(str(cause).splitlines())}"
        if isinstance(cause, QueryError):
            return EXIT_FAILED, f"query refused: {cause}"
        if isinstance(cause, WarehouseError):
            return EXIT_FAILED, f"warehouse error: {cause}"
        if isinstance(cause, KafkaException):  # KafkaUnavailable, NotDelivered, a refused record
            return EXIT_FAILED, f"kafka error: {_first_line(cause)}"
    for cause in chain:
        if _is_driver_error(cause):
            return EXIT_FAILED, f"warehouse error: {_first_line(cause)}"
        if isinstance(cause, OSError) and cause.errno is not None:
            label = _OS_LABELS.get(cause.errno, "system error")
            where = f"{cause.filename}: " if cause.filename else ""
            return EXIT_FAILED, f"{label}: {where}{cause.strerror or _first_line(cause)}"
    if isinstance(exc, MemoryError):
        return EXIT_FAILED, "out of memory"
    return EXIT_FAILED, f"failed: {type(exc).__name__}: {_first_line(exc)} (BOUCLE_DEBUG=1 shows the traceback)"


def _is_driver_error(exc: BaseException) -> bool:
    module = type(exc).__module__ or ""
    return module.startswith("clickhouse_connect") or module.startswith("chdb")


def report(exc: BaseException) -> int:
    """Print the one line for ``exc`` on stderr (redacted); returns the exit code."""
    code, line = describe(exc)
    if os.environ.get("BOUCLE_DEBUG"):
        text = "".join(traceback.format_exception(exc))
        _stderr.out(redact(text, _secrets), end="")
    _stderr.out(redact(line, _secrets))
    return code


def _globals_first(args: list[str], options: dict[str, bool]) -> list[str]:
    """The app's own options (``options``: name -> takes a value), wherever they are on the line,
    moved before the sub-command: ``boucle replay FILE --config X`` is ``boucle --config X replay FILE``.

    >>> _globals_first(["replay", "f.jsonl", "-c", "x.toml", "--", "--config"], {"--config": True, "-c": True})
    ['-c', 'x.toml', 'replay', 'f.jsonl', '--', '--config']
    """
    out, moved, i = [], [], 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            out += args[i:]
            break
        name = arg.split("=", 1)[0] if arg.startswith("--") else arg
        if name in options:
            takes_value = options[name] and name == arg  # "--config=X" carries its value
            moved += args[i:i + 2] if takes_value else [arg]
            i += 2 if takes_value else 1
            continue
        out.append(arg)
        i += 1
    return moved + out


class BoucleGroup(TyperGroup):
    """The app's click group: every error ends as one line and an exit code (see the module)."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        args = _globals_first(list(sys.argv[1:] if args is None else args), self._global_options())
        debug = bool(os.environ.get("BOUCLE_DEBUG"))
        if not debug:
            os.environ["RUST_BACKTRACE"] = "0"  # a failing bytewax step: no Rust stack on top of our line
            # The driver warns at each failed attempt; our retries say it once, the error line says why.
            logging.getLogger("clickhouse_connect").setLevel(logging.ERROR)
        with nullcontext() if debug else quiet_rust_panics():  # nor Rust's panic message
            code = self._main_once(args, prog_name, complete_var, extra)
        code = code if isinstance(code, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code

    def _global_options(self) -> dict[str, bool]:
        """The app's options (e.g. ``--config``/``-c``): name -> whether it takes a value."""
        return {name: not param.is_flag
                for param in self.params if getattr(param, "opts", None) and hasattr(param, "is_flag")
                for name in (*param.opts, *param.secondary_opts)}

    def _main_once(self, args, prog_name, complete_var, extra):
        from boucle.sinks.clickhouse.client import close_all

        try:
            code = super().main(args=args, prog_name=prog_name, complete_var=complete_var,
                                standalone_mode=False, **extra)
            if code == EXIT_INTERRUPTED:  # typer turns Ctrl-C into Exit(130), silently
                code = report(KeyboardInterrupt())
        except typer.TyperException as exc:
            if type(exc).__name__ != "NoArgsIsHelpError":
                code = report(exc)
            else:  # `boucle` or `boucle db` alone: the help, as typer prints it
                exc.show()
                code = getattr(exc, "exit_code", EXIT_USAGE)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else EXIT_FAILED
        except BaseException as exc:  # noqa: BLE001 - the one place that turns errors into a line
            code = report(exc)
        finally:
            try:
                close_all()
            except Exception:  # noqa: BLE001 - already ending; the line above matters more
                pass
        return code
