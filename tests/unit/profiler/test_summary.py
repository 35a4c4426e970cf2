import io

from rich.console import Console

from stapdoctor.profiler.summary import print_top, top_functions


def test_self_and_total_with_recursion():
    stacks = {("main", "f", "f", "g"): 3, ("main", "f"): 2, ("main",): 1}
    rows = {r.name: r for r in top_functions(stacks, 10)}
    assert (rows["g"].self, rows["g"].total) == (3, 3)
    assert (rows["f"].self, rows["f"].total) == (2, 5)  # recursion counted once
    assert (rows["main"].self, rows["main"].total) == (1, 6)
    assert [r.name for r in top_functions(stacks, 2)] == ["g", "f"]


def test_print_top_prints_names_as_text():
    buf = io.StringIO()
    print_top(top_functions({("main", "[bold]x[/bold]"): 4}, 5), total_samples=4,
              console=Console(file=buf, width=120))
    out = buf.getvalue()
    assert "[bold]x[/bold]" in out and "100.00" in out
