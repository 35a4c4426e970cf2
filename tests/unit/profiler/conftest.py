from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[2] / "data"
CASES = DATA / "collapse"


@pytest.fixture
def data_dir() -> Path:
    return DATA


_APP = None


def flamegraph_app():
    """One Typer app around profiler.cli.flamegraph (Typer must not wrap the same function twice)."""
    global _APP
    if _APP is None:
        import typer

        from stapdoctor.profiler.cli import flamegraph

        _APP = typer.Typer(add_completion=False)
        _APP.command()(flamegraph)
    return _APP


@pytest.fixture(scope="session")
def fg_app():
    return flamegraph_app()
