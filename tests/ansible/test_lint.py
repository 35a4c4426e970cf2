"""The playbooks stay ansible-lint clean at the production profile (CI gate from the issue)."""

from __future__ import annotations

import os
import subprocess

from stapdoctor.testing.ansiblerun import REPO, VENV_BIN


def test_ansible_lint_production_profile():
    p = subprocess.run(
        [str(VENV_BIN / "ansible-lint"), "--profile", "production", "--offline", "--nocolor", "--format=pep8",
         "playbooks/"],
        cwd=REPO, text=True, capture_output=True, timeout=600,
        env=dict(os.environ, PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}", HOME=os.environ.get("HOME", "/root")))
    assert p.returncode == 0, p.stdout[-5000:] + p.stderr[-3000:]
    assert "Profile 'production' was required, and it passed" in p.stdout + p.stderr
