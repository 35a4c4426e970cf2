"""Fedora's kernel-devel ships build/vmlinux.id (the raw build-id notes): the doctor must read it as bytes.

Found by the Fedora stand-in host (tests/ansible/test_distros.py): collected as text, a build-id with
bytes that are not UTF-8 (this machine's: 7dd4ff07...) came back as U+FFFD and never matched.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from stapdoctor.doctor import checks, snapshot

# A build-id whose bytes are not UTF-8 (0xd4 0xff ...), as real kernels' ids often are.
BUILD_ID = "7dd4ff0789e05e14285320129149da2555ca0bfc"
R = "6.18.44-200.fc40.x86_64"


def _notes(build_id: str) -> bytes:
    desc = bytes.fromhex(build_id)
    return (4).to_bytes(4, "little") + len(desc).to_bytes(4, "little") + (3).to_bytes(4, "little") + b"GNU\0" + desc


@pytest.fixture
def fedora_tree(tmp_path) -> Path:
    root = tmp_path / "root"
    (root / "proc/sys/kernel").mkdir(parents=True)
    (root / "proc/sys/kernel/osrelease").write_text(R + "\n")
    (root / "etc").mkdir()
    (root / "etc/os-release").write_text('ID=fedora\nVERSION_ID=40\n')
    build = root / f"usr/src/kernels/{R}"
    build.mkdir(parents=True)
    (build / "vmlinux.id").write_bytes(_notes(BUILD_ID))
    (root / f"lib/modules/{R}").mkdir(parents=True)
    (root / f"lib/modules/{R}/build").symlink_to(f"../../../usr/src/kernels/{R}")
    debug = root / f"usr/lib/debug/lib/modules/{R}"
    debug.mkdir(parents=True)
    src = tmp_path / "v.c"
    src.write_text("int f(int x) { return x + 1; }\n")
    subprocess.run(["gcc", "-g", "-O0", "-nostdlib", "-static", "-Wl,-e,f", f"-Wl,--build-id=0x{BUILD_ID}",
                    "-o", str(debug / "vmlinux"), str(src)], check=True)
    return root


def test_vmlinux_id_with_non_utf8_build_id_matches(fedora_tree):
    snap = snapshot.collect(str(fedora_tree))
    found = {f.id: f for f in checks.run_checks(snap)}
    f = found["debuginfo.vmlinux"]
    assert f.status == "pass", f.evidence
    assert BUILD_ID in f.evidence and "vmlinux.id" in f.evidence


def test_vmlinux_id_survives_the_snapshot_json(fedora_tree, tmp_path):
    snap = snapshot.collect(str(fedora_tree))
    again = snapshot.HostSnapshot.from_dict(json.loads(snap.to_json()))
    found = {f.id: f for f in checks.run_checks(again)}
    assert found["debuginfo.vmlinux"].status == "pass"
