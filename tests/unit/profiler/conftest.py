from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[2] / "data"
CASES = DATA / "collapse"


@pytest.fixture
def data_dir() -> Path:
    return DATA
