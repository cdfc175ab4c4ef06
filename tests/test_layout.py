"""The layout holds: imports run one way (vidsme <- {attack, data_splits} <- train <- benchmark <-
{challenge, study} <- cli), no module imports another module's `_private` name, and every CLI
subcommand is one module with its examples, `add_parser` and `run`, listed in one table.

Read from the source text (ast), so a lazy import inside a function counts like any other."""
from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Each package's level: a module may import its own package and packages of a lower level only,
# so siblings (attack and data_splits; challenge and study) never import each other.
LEVELS = {"vidsme": 0, "attack": 1, "data_splits": 1, "train": 2, "benchmark": 3, "challenge": 4, "study": 4,
          "cli": 5}


def _package_folders() -> dict[str, str]:
    """Top-level import package -> folder, read from setup.py's PACKAGES (the one place that maps them)."""
    tree = ast.parse((REPO / "setup.py").read_text())
    mapping = next(ast.literal_eval(node.value) for node in tree.body
                   if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "PACKAGES")
    return {name.split(".")[1] if "." in name else name: folder for name, folder in mapping.items()
            if name.count(".") <= 1}


FOLDERS = _package_folders()


def _package_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "vidsme":
        return None
    return parts[1] if len(parts) > 1 and parts[1] in LEVELS and parts[1] != "vidsme" else "vidsme"


def _imports(path: Path):
    """(line, imported module, imported names) for every absolute `vidsme` import in a file."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []


def _modules():
    for package, folder in FOLDERS.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            yield package, path


def test_setup_maps_every_package_of_the_layout():
    assert set(FOLDERS) == set(LEVELS)
    assert FOLDERS["vidsme"] == "vidsme"  # the namespace root has the namespace's name


def test_imports_run_one_way():
    wrong = []
    for package, path in _modules():
        for line, module, _ in _imports(path):
            target = _package_of(module)
            if target is not None and target != package and LEVELS[target] >= LEVELS[package]:
                wrong.append(f"{path.relative_to(REPO)}:{line}: {package} imports {module}")
    assert not wrong, "\n".join(wrong)


def test_the_namespace_root_imports_no_stage():
    # the acceptance's grep, on the source text (docstrings included)
    pattern = re.compile(r"from vidsme\.(attack|train|benchmark|data_splits|study|challenge|cli)\b")
    hits = [f"{p.relative_to(REPO)}:{n}" for p in (REPO / "vidsme").rglob("*.py")
            for n, text in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(text)]
    assert not hits, hits


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_no_module_imports_a_private_name_of_another_module():
    wrong = []
    for _package, path in _modules():
        for line, module, names in _imports(path):
            if _package_of(module) is None:
                continue
            private = [n for n in names if _is_private(n)] + [p for p in module.split(".") if _is_private(p)]
            if private:
                wrong.append(f"{path.relative_to(REPO)}:{line}: {module} {private}")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):  # module._name
            if (isinstance(node, ast.Attribute) and _is_private(node.attr) and isinstance(node.value, ast.Name)
                    and node.value.id not in ("self", "cls", "os", "obj")):
                wrong.append(f"{path.relative_to(REPO)}:{node.lineno}: {node.value.id}.{node.attr}")
    assert not wrong, "\n".join(wrong)


def test_one_module_per_subcommand_in_one_table():
    from vidsme.cli import COMMANDS, build_parser

    folder = REPO / FOLDERS["cli"]
    parser = build_parser()
    subcommands = next(a for a in parser._actions if a.dest == "command").choices  # argparse has no public walk
    modules = {m.__name__.rsplit(".", 1)[1] for m in COMMANDS}
    assert set(subcommands) == modules
    assert modules == {p.stem for p in folder.glob("*.py")} - {"__init__", "__main__", "arguments"}
    for module in COMMANDS:
        assert module.EPILOG.startswith("examples:") and callable(module.add_parser), module.__name__
