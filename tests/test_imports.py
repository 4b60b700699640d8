"""nnc's structure: the layers contract in pyproject.toml (import-linter), no import cycle
anywhere in the package, `import nnc` without the CLI or torch, and modules of one job (no
module in nnc/ over 400 lines)."""
import itertools
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_layers_contract_is_kept():
    lint = Path(sys.executable).parent / "lint-imports"
    r = subprocess.run([str(lint), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 broken" in r.stdout


def test_no_import_cycle():
    import grimp
    graph = grimp.build_graph("nnc")
    cycles = [(a, b) for a, b in itertools.combinations(sorted(graph.modules), 2)
              if graph.chain_exists(a, b) and graph.chain_exists(b, a)]
    assert not cycles, [graph.find_shortest_chain(a, b) + graph.find_shortest_chain(b, a)[1:]
                        for a, b in cycles]


def test_import_nnc_imports_neither_the_cli_nor_torch():
    code = "import sys, nnc; print(sorted(m for m in sys.modules if m in ('nnc.cli', 'torch')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_import_nnc_leaves_numpy_to_the_cli():
    """`import nnc` imports the API on first use, so the CLI can tell numpy's OpenBLAS to
    start no threads before numpy loads (nnc/cli/__init__.py)."""
    code = ("import sys, os; import nnc; a = 'numpy' in sys.modules; import nnc.cli; "
            "print(a, os.environ.get('OPENBLAS_NUM_THREADS'), callable(nnc.compress))")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=env).stdout
    assert out.split() == ["False", "1", "True"]


def test_no_module_is_over_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in sorted((ROOT / "nnc").rglob("*.py"))
            if (n := len(p.read_text().splitlines())) > 400}
    assert not long, long
