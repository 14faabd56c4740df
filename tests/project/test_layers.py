"""The import graph holds its layers (checked on the source, nothing imported): kshot.core imports no other
part of kshot; the data sources import only the core; each domain imports the core, the data and only the
domains it builds on; the service and the CLI sit on top; and no modules import each other in a circle."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "kshot"

# package -> the kshot packages it may import (besides itself)
ALLOWED = {
    "core": set(),
    "data": {"core"},
    "images": {"core", "data"},
    "text": {"core", "data"},
    "recsys": {"core", "data"},
    "tagging": {"core", "data", "text"},
    "serve": {"core", "data", "text"},
    "cli": {"core", "data", "images", "text", "recsys", "tagging", "serve"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """The kshot modules ``path`` imports, anywhere in the file (lazy imports inside functions too)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "kshot"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "kshot":
                continue
            for alias in node.names:  # `from . import x` may name a module
                sub = f"{target}.{alias.name}"
                out.add(
                    sub
                    if (ROOT.parent / sub.replace(".", "/")).with_suffix(".py").exists()
                    or (ROOT.parent / sub.replace(".", "/")).is_dir()
                    else target
                )
    return out


MODULES = {module_name(p): p for p in ROOT.rglob("*.py")}
GRAPH = {m: {t for t in imports(p) if t in MODULES} for m, p in MODULES.items()}


def package_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ALLOWED else None


def test_every_package_is_placed_in_a_layer():
    top = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert top <= set(ALLOWED), f"packages without a layer: {top - set(ALLOWED)}"
    loose = {p.name for p in ROOT.glob("*.py")} - {"__init__.py", "__main__.py"}
    assert not loose, f"modules at the package root belong in a layer: {loose}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_import_runs_up_or_sideways(module):
    src = package_of(module)
    if src is None:  # kshot/__init__.py, __main__.py: the top
        return
    bad = sorted(t for t in GRAPH[module] if package_of(t) not in ALLOWED[src] | {src})
    assert not bad, f"{module} imports {bad}; {src} may import only {sorted(ALLOWED[src])}"


def test_no_import_circle():
    state, stack, circles = {}, [], []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for t in sorted(GRAPH[m]):
            if t == "kshot" or t.startswith(m + ".") and m.count(".") == 0:
                continue
            if state.get(t) == "open":
                circles.append(stack[stack.index(t) :] + [t])
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = "done"

    for m in sorted(MODULES):
        if m not in state and m != "kshot":
            visit(m)
    assert not circles, "import circles: " + "; ".join(" -> ".join(c) for c in circles)
