"""The VM harness's cheap parts: recipe keys, the PYTHONPATH tree, the Ansible inventory, the CLI.

Booting is covered by tests/e2e; these run in a second and need no root.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

from stapdoctor.testing import vm as vmh
from stapdoctor.testing.vmtools import build_pythonpath_tree

REPO = Path(__file__).resolve().parents[3]


def test_recipe_key_follows_the_recipe_data():
    r = vmh.RECIPES["unstable"]
    assert r.key() == dataclasses.replace(r).key()
    assert r.key() != dataclasses.replace(r, packages=r.packages + ("strace",)).key()
    assert r.key() != vmh.RECIPES["bookworm"].key()


def test_unstable_image_leaves_headers_and_dbg_to_the_playbooks():
    r = vmh.RECIPES["unstable"]
    assert not any(p.startswith("linux-headers") or p.endswith("-dbg") for p in r.packages)
    assert {"linux-headers-{krel}", "linux-image-{krel}-dbg"} <= set(r.mirror_packages)
    assert "python3-apt" in r.packages  # Ansible's apt module needs it on the target


def test_pythonpath_tree_is_pure_python_and_imports(tmp_path):
    lib = build_pythonpath_tree(REPO, tmp_path / "lib")
    assert not list(lib.rglob("*.so"))
    p = subprocess.run([sys.executable, "-I", "-c",
                        f"import sys; sys.path.insert(0, {str(lib)!r}); "
                        "import stapdoctor.doctor.cli, stapdoctor.profiler.cli, typer, rich; "
                        "print(stapdoctor.doctor.cli.__file__)"],
                       capture_output=True, text=True, check=True)
    assert p.stdout.startswith(str(lib))


def test_ansible_inventory_reaches_the_forwarded_port(tmp_path):
    fake = vmh.VM.__new__(vmh.VM)
    fake.image = vmh.Image(vmh.RECIPES["unstable"], tmp_path)
    fake.port = 40222
    inv = fake.ansible_inventory(tmp_path / "inv.ini", systemtap_install="package")
    text = inv.read_text()
    assert text.startswith("[stap_hosts]\n")
    assert "ansible_port=40222" in text and "ansible_host=127.0.0.1" in text
    assert "systemtap_install=package" in text


def test_cli_list_runs_without_root():
    p = subprocess.run([sys.executable, "-m", "stapdoctor.testing.vm", "list"], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "bookworm" in p.stderr and "unstable" in p.stderr
