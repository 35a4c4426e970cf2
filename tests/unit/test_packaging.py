"""A plain `pip install .` (README's first command) must ship every subpackage and data file.

setuptools only installs the packages pyproject lists; a forgotten subpackage works in the editable
checkout and breaks for users. Build the wheel for real and look inside.
"""
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_has_every_module_and_data_file(tmp_path):
    # Build from a clean copy: a stale build/ directory in the checkout would hide a missing package.
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", ".artefacts",
                                                             "__pycache__", ".hypothesis", ".vagrant", "tests"))
    shutil.copytree(ROOT / "tests" / "harness", src / "tests" / "harness",
                    ignore=shutil.ignore_patterns("__pycache__"))
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                        str(tmp_path), str(src)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    wheel = next(tmp_path.glob("stapdoctor-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    mapping = {"doctor": "stapdoctor/doctor", "profiler": "stapdoctor/profiler", "tests/harness": "stapdoctor/testing"}
    for src, dest in mapping.items():
        for f in (ROOT / src).rglob("*"):
            if f.is_file() and "__pycache__" not in f.parts and f.suffix in (".py", ".toml", ".stp", ".json", ".js", ".css", ".sh"):
                rel = f"{dest}/{f.relative_to(ROOT / src).as_posix()}"
                assert rel in names, f"{rel} is missing from the wheel (pyproject packages/package-data)"
