import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import hosts  # noqa: E402


@pytest.fixture(scope="session")
def host_root(tmp_path_factory):
    """Build a named host tree once per session: host_root('ubuntu-12.10') -> Path."""
    base = tmp_path_factory.mktemp("hosts")
    built: dict[str, Path] = {}

    def make(name: str, **overrides) -> Path:
        key = name if not overrides else f"{name}-{abs(hash(repr(sorted(overrides.items()))))}"
        if key not in built:
            built[key] = hosts.make_host(base / key, name, **overrides)
        return built[key]
    return make
