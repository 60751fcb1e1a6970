"""Former name of ``benchmarks/detectors.py`` (same options): kept so older commands still run.

    python benchmarks/detector_quality.py --seeds 1 2   # = python benchmarks/detectors.py --seeds 1 2
"""

import runpy
from pathlib import Path

if __name__ == "__main__":
    runpy.run_path(str(Path(__file__).with_name("detectors.py")), run_name="__main__")
