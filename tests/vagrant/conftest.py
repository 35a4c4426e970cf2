"""Fixtures for the Vagrantfile tests."""
from __future__ import annotations

import pytest

from vagrantcheck import describe, vagrant_environment


@pytest.fixture(scope="session")
def vagrant_env(tmp_path_factory) -> dict:
    return vagrant_environment(tmp_path_factory.mktemp("vagrant"))


@pytest.fixture(scope="session")
def described(vagrant_env) -> dict:
    """What Vagrant makes of the project's Vagrantfile (tests/vagrant/describe_vagrantfile.rb)."""
    return describe(vagrant_env)
