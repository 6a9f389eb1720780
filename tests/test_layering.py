"""The package's layering, read from its source: stages side by side on shared contracts, no
import cycles, and a light Snakemake start."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "src" / "foldscreen"
STAGES = ("queries", "msa", "inference", "reports")
SHARED = {"contracts", "io", "model"}
HEAVY = ("rdkit", "torch", "mlx", "openfold3", "gemmi", "pandas", "pyarrow")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every foldscreen module `path` imports, at module level or inside functions."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("foldscreen")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if base.startswith("foldscreen"):
                # `from . import x` names a module; `from .m import name` the module m
                found |= {f"{base}.{alias.name}" for alias in node.names} if not node.module else {base}
    return found


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def resolve(name: str, known: dict[str, Path]) -> str:
    """The module an imported name is (an attribute of a package resolves to the package)."""
    while name not in known:
        name = name.rpartition(".")[0]
    return name


def test_stages_import_only_the_contracts_io_and_model():
    known = modules()
    wrong = []
    for name, path in known.items():
        parts = name.split(".")
        if len(parts) < 2 or parts[1] not in (*STAGES, "contracts"):
            continue
        own = parts[1]
        allowed = SHARED | {own} if own != "contracts" else {"contracts", "io"}
        for imported in imports(path):
            target = resolve(imported, known).split(".")
            if len(target) > 1 and target[1] not in allowed:
                wrong.append(f"{name} imports {'.'.join(target)}")
    assert wrong == []


def test_no_module_imports_itself_back():
    known = modules()
    graph = {name: {resolve(i, known) for i in imports(path)} - {name} for name, path in known.items()}
    cycles = []

    def visit(node: str, trail: list[str]) -> None:
        for nxt in sorted(graph[node]):
            if nxt in trail:
                cycles.append(" -> ".join([*trail[trail.index(nxt):], nxt]))
            elif nxt not in done:
                visit(nxt, [*trail, nxt])
        done.add(node)

    done: set[str] = set()
    for name in known:
        if name not in done:
            visit(name, [name])
    assert cycles == []


def test_snakemake_start_loads_no_heavy_module(tmp_path):
    """What common.smk imports, and the plan it makes, load no chemistry, model or table code."""
    lines = (REPO / "workflow" / "rules" / "common.smk").read_text().splitlines()
    header = [line for line in lines if line.startswith(("from foldscreen", "import foldscreen"))]
    assert any("plan_screen" in line for line in header)
    script = "\n".join([
        "import json, sys, yaml", *header,
        "config = yaml.safe_load(open('config/config.yaml'))",
        f"config['results'] = {str(tmp_path)!r}",
        "chunks = plan_screen(config)",
        f"loaded = {{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r}",
        "print(json.dumps([len(chunks), sorted(loaded)]))",
    ])
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    n_chunks, heavy = json.loads(result.stdout)
    assert n_chunks >= 1
    assert heavy == []
