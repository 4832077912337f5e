"""The tree's shape in numbers: modules per package and the 90th percentile of function length.

    python scripts/layout_stats.py [ROOT]      # ROOT: a checkout (default: this one)

A package is a folder of Python modules (`sluice/validate/`, `tasks/`); `sluice/` counts only its
own modules, each subpackage is its own row. A function's length is its lines from `def` to its
last line, docstring included; methods and nested functions count as functions of their own.
"""

from __future__ import annotations

import ast
import math
import sys
from pathlib import Path

TOP = ("sluice", "tasks", "flows", "deployments", "blocks")


def p90(values: list[int]) -> int:
    """The nearest-rank 90th percentile (0 for none)."""
    if not values:
        return 0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


def lengths(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        (node.end_lineno or node.lineno) - node.lineno + 1
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    ]


def packages(root: Path) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    for top in TOP:
        for module in sorted((root / top).rglob("*.py")):
            if "__pycache__" in module.parts:
                continue
            found.setdefault(module.parent.relative_to(root).as_posix() + "/", []).append(module)
    return found


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1])
    lines = ["| package | modules | functions | lines p90 | longest |", "|---|---:|---:|---:|---:|"]
    for name, modules in sorted(packages(root).items()):
        funcs = [n for m in modules for n in lengths(m)]
        cells = (len(modules), len(funcs), p90(funcs), max(funcs, default=0))
        lines.append(f"| `{name}` | " + " | ".join(map(str, cells)) + " |")
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
