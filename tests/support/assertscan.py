"""Find test functions that cannot fail: no assert, no pytest.raises, no helper that asserts.

A test asserts when its body holds an ``assert`` or ``raise``, a ``pytest.raises`` /
``pytest.fail`` / ``pytest.warns``, or a call of a helper that asserts in that sense: a function
of the test modules (this module's own, or one imported from another module under ``tests``),
a method through ``self``, or a method of a test class through a parameter annotated with it
(``suite: Suite`` then ``suite.run(...)``). Calls into imgctl or a library never count: a test
that only calls them checks nothing but "does not raise", which a broken function returning
quietly would pass too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Silent", "silent_tests"]

_PYTEST_CHECKS = frozenset({"raises", "fail", "warns", "deprecated_call"})

Key = tuple[str, str]  # (module, qualified name)
Function = ast.FunctionDef | ast.AsyncFunctionDef


@dataclass(frozen=True)
class Silent:
    """A test function that asserts nothing."""

    path: Path
    line: int
    name: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line} {self.name}"


def _checks_directly(node: ast.AST) -> bool:
    for inner in ast.walk(node):
        if isinstance(inner, ast.Assert | ast.Raise):
            return True
        if isinstance(inner, ast.Call):
            called = inner.func
            if (
                isinstance(called, ast.Attribute)
                and isinstance(called.value, ast.Name)
                and called.value.id == "pytest"
                and called.attr in _PYTEST_CHECKS
            ):
                return True
    return False


def _imported_module(module: str, node: ast.ImportFrom) -> str:
    if node.level:
        base = module.split(".")[: -node.level]
        return ".".join([*base, *([node.module] if node.module else [])])
    return node.module or ""


class _Index:
    """Every function and method of the modules, and the names each module can call."""

    def __init__(self, modules: dict[str, ast.Module]) -> None:
        self.defs: dict[Key, Function] = {}
        self.owner: dict[int, str] = {}  # id(method node) -> class name
        self.names: dict[str, dict[str, Key]] = {}  # module -> local name -> definition
        self.classes: dict[str, dict[str, Key]] = {}  # module -> local class name -> definition
        for module, tree in modules.items():
            names = self.names.setdefault(module, {})
            classes = self.classes.setdefault(module, {})
            for node in tree.body:
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    self.defs[module, node.name] = node
                    names[node.name] = (module, node.name)
                elif isinstance(node, ast.ClassDef):
                    classes[node.name] = (module, node.name)
                    for member in node.body:
                        if isinstance(member, ast.FunctionDef | ast.AsyncFunctionDef):
                            self.defs[module, f"{node.name}.{member.name}"] = member
                            self.owner[id(member)] = node.name
        for module, tree in modules.items():
            for node in tree.body:
                if not isinstance(node, ast.ImportFrom):
                    continue
                source = _imported_module(module, node)
                if source not in modules:
                    continue
                for alias in node.names:
                    local = alias.asname or alias.name
                    if (source, alias.name) in self.defs:
                        self.names[module][local] = (source, alias.name)
                    if alias.name in self.classes.get(source, {}):
                        self.classes[module][local] = self.classes[source][alias.name]

    def callees(self, module: str, node: Function) -> Iterator[Key]:
        """The test-module functions ``node`` calls, as far as names tell."""
        annotated: dict[str, Key] = {}
        for argument in [*node.args.args, *node.args.kwonlyargs]:
            hint = argument.annotation
            if isinstance(hint, ast.Name) and hint.id in self.classes[module]:
                annotated[argument.arg] = self.classes[module][hint.id]
        owner = self.owner.get(id(node))
        for inner in ast.walk(node):
            if not isinstance(inner, ast.Call):
                continue
            called = inner.func
            if isinstance(called, ast.Name) and called.id in self.names[module]:
                yield self.names[module][called.id]
            elif isinstance(called, ast.Attribute) and isinstance(called.value, ast.Name):
                target = called.value.id
                if target == "self" and owner is not None:
                    yield (module, f"{owner}.{called.attr}")
                elif target in annotated:
                    class_module, class_name = annotated[target]
                    yield (class_module, f"{class_name}.{called.attr}")


def _module_name(path: Path, root: Path) -> str:
    return ".".join(path.relative_to(root.parent).with_suffix("").parts)


def silent_tests(root: Path, extra: Iterable[tuple[Path, str]] = ()) -> list[Silent]:
    """The test functions under ``root`` (a ``tests`` directory) that assert nothing.

    ``extra`` adds (path under root, source) modules, for testing this scan itself.
    """
    sources = {path: path.read_text() for path in sorted(root.rglob("*.py"))}
    sources.update({root / relative: text for relative, text in extra})
    trees = {_module_name(path, root): ast.parse(text) for path, text in sources.items()}
    paths = {_module_name(path, root): path for path in sources}
    index = _Index(trees)
    asserting: set[Key] = set()
    changed = True
    while changed:  # until no helper is newly known to assert (helpers calling helpers)
        changed = False
        for key, node in index.defs.items():
            if key in asserting:
                continue
            if _checks_directly(node) or any(c in asserting for c in index.callees(key[0], node)):
                asserting.add(key)
                changed = True
    silent = []
    for key, node in index.defs.items():
        module, name = key
        if not paths[module].name.startswith("test_"):
            continue
        if name.rsplit(".", 1)[-1].startswith("test_") and key not in asserting:
            silent.append(Silent(paths[module].relative_to(root), node.lineno, name))
    return sorted(silent, key=str)
