"""The code's shape, checked on its source (nothing runs): one way down (``googlenet`` <- ``training`` <- ``explorer``
<- ``ui`` <- ``app.py``), no import circle (imports inside functions count; only ``TYPE_CHECKING`` ones do not), no
private name imported from another module, Gradio only in ``ui/`` and ``app.py``, no function over 60 lines and no
file over 400; and the documented import paths of the interpretability methods, which moved."""

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("googlenet", "training", "explorer", "ui")
LAYER = {"googlenet": 0, "training": 1, "explorer": 2, "ui": 3, "app": 4}
SOURCES = sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py")) + [ROOT / "app.py"]


def _name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(p): p for p in SOURCES}


def _imports(path: Path) -> list[tuple[str, str | None, int]]:
    """(module, name or None, line) of every import of a project module, outside ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(path.read_text())
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
               for n in ast.walk(node)}
    here, found = _name(path), []
    package = here.split(".") if path.name == "__init__.py" else here.split(".")[:-1]
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found += [(a.name, None, node.lineno) for a in node.names if a.name.split(".")[0] in LAYER]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else [])) \
                if node.level else node.module
            if base and base.split(".")[0] in LAYER:
                found += [(base, a.name, node.lineno) for a in node.names]
    return found


def _edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        targets = set()
        for module, imported, _ in _imports(path):
            full = f"{module}.{imported}" if imported else module
            targets.add(full if full in MODULES else module)
        edges[name] = {t for t in targets if t in MODULES and t != name}
    return edges


def test_no_import_circle_anywhere():
    edges, cycles, seen, stack = _edges(), [], {}, []

    def visit(node: str) -> None:  # depth-first: a back edge closes a circle
        seen[node] = "open"
        stack.append(node)
        for target in sorted(edges[node]):
            if seen.get(target) == "open":
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in seen:
                visit(target)
        stack.pop()
        seen[node] = "done"

    for node in sorted(edges):
        if node not in seen:
            visit(node)
    assert not cycles, cycles


def _third_party(path: Path) -> set[str]:
    """The top-level names of every package ``path`` imports."""
    tree = ast.parse(path.read_text())
    names = {a.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
    return names | {node.module.split(".")[0] for node in ast.walk(tree)
                    if isinstance(node, ast.ImportFrom) and node.module and not node.level}


def test_one_way_down_and_gradio_only_in_the_page():
    upward, gradio = [], []
    for name, path in MODULES.items():
        layer = LAYER[name.split(".")[0]]
        upward += [f"{name}:{line} imports {module}" for module, _, line in _imports(path)
                   if LAYER[module.split(".")[0]] > layer]
        if layer < LAYER["ui"] and {"gradio", "gradio_client"} & _third_party(path):
            gradio.append(name)
    assert not upward and not gradio, (upward, gradio)


def test_no_private_name_crosses_a_module():
    crossing = [f"{name}:{line} imports {imported} from {module}" for name, path in MODULES.items()
                for module, imported, line in _imports(path)
                if imported and imported.startswith("_") and f"{module}.{imported}" not in MODULES]
    assert not crossing, crossing


def test_no_function_over_60_lines_and_no_file_over_400():
    long = []
    for name, path in MODULES.items():
        text = path.read_text()
        if text.count("\n") > 400:
            long.append(f"{name}: {text.count(chr(10))} lines")
        long += [f"{name}:{node.lineno} {node.name}: {node.end_lineno - node.lineno + 1} lines"
                 for node in ast.walk(ast.parse(text)) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                 and node.end_lineno - node.lineno + 1 > 60]
    assert not long, long


def test_every_module_says_what_it_is_for():
    undocumented = [name for name, path in MODULES.items() if not ast.get_docstring(ast.parse(path.read_text()))
                    and path.read_text().strip()]
    assert not undocumented, undocumented


@pytest.mark.parametrize("old", ["googlenet.features", "googlenet.featurevis", "googlenet.explain",
                                 "googlenet.examples", "googlenet.accentuate"])
def test_the_documented_import_paths_still_work_and_other_moved_names_say_where_they_went(old):
    from googlenet.moved import DOCUMENTED, MOVED

    module = importlib.import_module(old)
    for name, home in DOCUMENTED[old].items():
        assert getattr(module, name) is getattr(importlib.import_module(home), name)
        exec(f"from {old} import {name}", {})
    for name, home in MOVED[old].items():
        with pytest.raises(ImportError, match=f"import it from {home}"):
            exec(f"from {old} import {name}", {})
        if home.startswith("googlenet"):
            assert hasattr(importlib.import_module(home), name), (name, home)
