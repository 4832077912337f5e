"""The import rules of docs/architecture.md, enforced: the engine never imports Prefect, and
the adapters import downwards (blocks < tasks < flows < deployments), never sideways but for the
few imports the page names. Every import counts, those inside functions too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ORCHESTRATION = {"prefect", "prefect_redis"}
ADAPTERS = ("blocks", "tasks", "flows", "deployments")

# What each package may import of Sluice's own packages and of Prefect (the engine's own
# subpackages are one package here: sluice.read may import sluice.schema).
ALLOWED: dict[str, set[str]] = {
    "sluice": {"sluice"},  # the engine: no Prefect, no adapter
    "sluice.cli": {"sluice", "sluice.cli", *ORCHESTRATION, "tasks", "flows", "deployments"},
    "blocks": {"sluice", *ORCHESTRATION},
    "tasks": {"sluice", "blocks", "tasks", *ORCHESTRATION},
    "flows": {"sluice", "blocks", "tasks", "flows", *ORCHESTRATION},
    "deployments": {"sluice", "blocks", "tasks", "flows", "deployments", *ORCHESTRATION},
}

# Sideways, inside one adapter package: the shared policy every module may import, and what
# each other module may import of its own package (a composite and what it composes).
SHARED = {"tasks": {"tasks.policy", "tasks.observe"}, "flows": set(), "deployments": set()}
SIDEWAYS: dict[str, set[str]] = {
    "tasks.finish": {"tasks.relay"},  # the run's end relays the outbox in-process
    "tasks.prepare": {f"tasks.{s}" for s in ("read", "infer_schema", "profile", "validate")}
    | {"tasks.enrich", "tasks.transform"},
    "tasks.onepass": {"tasks.load", "tasks.validate"},
    "tasks.file_run": {f"tasks.{s}" for s in ("claim", "fingerprint", "finish", "load")}
    | {"tasks.onepass", "tasks.prepare"},
    "flows.replay": {"flows.ingest_file"},  # ingest_file as a subflow
    "flows.sweep_inbox": {"flows.ingest_file"},
    "deployments.serve": {"deployments.executor", "deployments.file_sensor"}
    | {"deployments.signals"},
    "deployments.worker": {"deployments.executor", "deployments.signals"},
    "deployments.file_sensor": {"deployments.signals"},
}


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _package(module: str) -> str:
    return "sluice.cli" if module.startswith("sluice.cli") else module.split(".")[0]


def _ours(name: str) -> str | None:
    """The package an import name belongs to, if it is Sluice's or Prefect's."""
    top = name.split(".")[0]
    if top in ORCHESTRATION:
        return top
    if top in ("sluice", *ADAPTERS):
        return _package(name)
    return None


def _modules() -> list[Path]:
    return sorted(p for top in ("sluice", *ADAPTERS) for p in (ROOT / top).rglob("*.py"))


def _adapter_module(name: str) -> str | None:
    """`tasks.policy` for `tasks.policy.stage_task` or `tasks.policy`; None for a package."""
    parts = name.split(".")
    if parts[0] not in ADAPTERS or len(parts) < 2:
        return None
    module = ".".join(parts[:2])
    return module if (ROOT / parts[0] / f"{parts[1]}.py").exists() else None


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_a_module_imports_only_what_its_package_may(path: Path) -> None:
    module = _module(path)
    package = _package(module)
    wrong = sorted(
        name
        for name in _imports(path)
        if (owner := _ours(name)) is not None and owner not in ALLOWED[package]
    )
    assert not wrong, f"{module} ({package}) may not import {wrong} (docs/architecture.md)"


@pytest.mark.parametrize(
    "path",
    [p for p in _modules() if p.parts[len(ROOT.parts)] in ADAPTERS],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_an_adapter_imports_its_own_package_only_as_documented(path: Path) -> None:
    module = _module(path)
    package = module.split(".")[0]
    allowed = SHARED.get(package, set()) | SIDEWAYS.get(module, set()) | {module}
    sideways = {
        found
        for name in _imports(path)
        if (found := _adapter_module(name)) is not None and found.startswith(f"{package}.")
    }
    assert sideways <= allowed, (
        f"{module} imports {sorted(sideways - allowed)} of its own package sideways "
        "(docs/architecture.md names the imports allowed)"
    )


def test_the_rules_catch_an_engine_module_importing_prefect(tmp_path: Path) -> None:
    module = tmp_path / "bad.py"
    module.write_text("def f():\n    from prefect import flow\n    from tasks.read import read\n")

    assert {_ours(name) for name in _imports(module)} == {"prefect", "tasks"}
    assert not {"prefect", "tasks"} <= ALLOWED["sluice"]
