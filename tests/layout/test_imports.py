"""The package's import rules, read from the source: one-way layering and no import cycles.

hw imports nothing of ours; driver only hw; sim only driver and hw (it knows no accelerator);
an accelerator uses hw and driver and never knows what runs it; sw puts them together. Imports
inside functions count too (they are still dependencies), except under ``TYPE_CHECKING``.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "accelkit"
ALLOWED = {
    "hw": {"hw"},
    "driver": {"driver", "hw"},
    "sim": {"sim", "driver", "hw"},
    "accelerators": {"accelerators", "driver", "hw"},
    "sw": {"sw", "accelerators", "driver", "hw", "sim"},
}


def _modules():
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[0] in ("tests", "examples", "build") or any(p.startswith(".") for p in parts):
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield path, parts


def _imports(path, parts):
    """Top-level package names (hw, driver, ...) and full module names this file imports from accelkit."""
    package = list(parts if path.name == "__init__.py" else parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)] if node.level > 1 else package
                target = base + (node.module.split(".") if node.module else [])
                names = [target + [alias.name] for alias in node.names] if not node.module else [target]
            elif node.module and node.module.split(".")[0] == PACKAGE:
                names = [node.module.split(".")[1:]]
            else:
                continue
            found.update(tuple(name) for name in names if name)
        elif isinstance(node, ast.Import):
            found.update(tuple(alias.name.split(".")[1:]) for alias in node.names
                         if alias.name.split(".")[0] == PACKAGE and "." in alias.name)
    return found


def _graph():
    modules = {parts: path for path, parts in _modules()}
    graph = {}
    for parts, path in modules.items():
        targets = set()
        for name in _imports(path, parts):
            # "from . import x" may name a module or an attribute: keep the longest existing module
            while name and name not in modules:
                name = name[:-1]
            if name and name != parts:
                targets.add(name)
        graph[parts] = targets
    return graph


def test_layers_import_one_way():
    wrong = []
    for module, targets in _graph().items():
        if not module or module[0] not in ALLOWED:
            continue
        for target in targets:
            if target and target[0] in ALLOWED and target[0] not in ALLOWED[module[0]]:
                wrong.append(f"{'.'.join(module)} imports {'.'.join(target)}")
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_cycles():
    graph = _graph()
    state, cycles = {}, []

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for target in graph.get(node, ()):
            if state.get(target) == "open":
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target, stack)
        stack.pop()
        state[node] = "done"

    for node in graph:
        if node not in state:
            visit(node, [])
    # a package's __init__ importing its own submodules is not a cycle between modules
    real = [c for c in cycles if not any(len(a) < len(b) and b[:len(a)] == a for a, b in zip(c, c[1:]))]
    assert not real, "\n".join(" -> ".join(".".join(m) for m in cycle) for cycle in real[:10])
