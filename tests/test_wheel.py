"""The wheel runs on its own: built from the repository, installed into a fresh virtual
environment outside it, run from an empty directory.

The fresh environment gets Boucle's dependencies from the test environment's site-packages
(a ``.pth`` path entry, which does not load the editable install's import hook) so the test does
not re-download ~1 GB of wheels; Boucle itself comes only from the wheel.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(REPO)],
        check=True, capture_output=True, text=True,
    )
    (path,) = out.glob("boucle-*.whl")
    return path


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """The bin/ directory of a fresh venv with the wheel installed."""
    root = tmp_path_factory.mktemp("venv")
    venv.create(root, with_pip=True)
    python = root / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    (Path(site) / "boucle-test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
        check=True, capture_output=True, text=True,
    )
    return root / "bin"


def test_wheel_holds_one_package_with_its_data(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"boucle"}
    assert "boucle/config/boucle.toml" in names
    assert "boucle/schemas/alert.schema.json" in names
    assert {"boucle/flows/notify/templates/email.html.j2", "boucle/config/locales/de/notify.toml"} <= set(names)
    migrations = [n for n in names if n.startswith("boucle/sinks/clickhouse/") and n.endswith(".sql")]
    assert len(migrations) == len(list((REPO / "sinks" / "clickhouse").glob("*.sql"))) > 0


def _run(bin_dir: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOUCLE_")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run([str(bin_dir / "boucle"), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


def test_installed_wheel_runs_from_an_empty_directory(installed, tmp_path):
    where = subprocess.run(
        [str(installed / "python"), "-c", "import boucle.flows.cli.app as m; print(m.__file__)"],
        cwd=tmp_path, check=True, capture_output=True, text=True,
    ).stdout
    assert str(REPO) not in where  # the wheel's copy, not the checkout
    help_ = _run(installed, tmp_path, "--help")
    assert help_.returncode == 0, help_.stderr
    assert "boucle run" in help_.stdout
    run = _run(installed, tmp_path, "run", "--days", "1", "--no-progress")
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "accepted" in run.stdout
    assert (tmp_path / "var" / "alerts.jsonl").stat().st_size > 0
    assert (tmp_path / "var" / "boucle.chdb").is_dir()
