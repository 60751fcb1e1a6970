"""``python -m boucle.schemas [--check] [--output PATH]``: write (or check) ``alert.schema.json``.

The default path is the package's own copy (in a development install, ``schemas/`` of the
repository), so the file that ships is the file that was generated.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from boucle.schemas import ALERT_SCHEMA_FILE, render_alert_schema


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m boucle.schemas", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=Path(__file__).with_name(ALERT_SCHEMA_FILE),
                        help="where to write the alert schema (default: the package's copy)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if the file is not up to date")
    args = parser.parse_args(argv)
    text = render_alert_schema()
    current = args.output.read_text(encoding="utf-8") if args.output.exists() else None
    if args.check:
        if current != text:
            print(f"{args.output} is out of date: run python -m boucle.schemas", file=sys.stderr)
            return 1
        print(f"{args.output} is up to date")
        return 0
    if current != text:
        args.output.write_text(text, encoding="utf-8")
        print(f"wrote {args.output}")
    else:
        print(f"{args.output} unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
