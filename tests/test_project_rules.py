"""Rules the architecture depends on: a Qt-free core, light start-up, and CI running the README."""

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _dynamic_qt(path: Path) -> bool:
    return bool(re.search(r"import_module\(\s*['\"](PySide6|PyQt)", path.read_text()))


def test_core_and_plugins_never_import_qt() -> None:
    offenders = []
    files = [p for p in (ROOT / "diffedit").rglob("*.py") if "qt" not in p.relative_to(ROOT / "diffedit").parts[:1]]
    files += list((ROOT / "plugins").rglob("*.py"))
    assert any(p.name == "document.py" for p in files)
    for path in files:
        if _imports(path) & {"PySide6", "PyQt5", "PyQt6", "shiboken6"} or _dynamic_qt(path):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == [], f"Qt imported outside diffedit/qt: {offenders}"


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print('\\n'.join(sys.modules))"],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )
    return set(out.stdout.split())


def test_help_and_document_model_do_not_import_heavy_modules() -> None:
    heavy = {"torch", "diffusers", "PySide6", "scipy"}
    after_help = _modules_after("import contextlib, io\nfrom diffedit.__main__ import main\n"
                                "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
                                "    main(['--help'])")
    assert not heavy & after_help
    after_doc = _modules_after("from diffedit.document.io import open_document\n"
                               "from diffedit.document.brush import paint_stroke\n"
                               "from diffedit.document import masks, Document\nDocument(10, 10).composite()")
    assert not {"torch", "diffusers", "PySide6"} & after_doc


def test_version_and_help_commands() -> None:
    version = subprocess.run([sys.executable, "-m", "diffedit", "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and re.fullmatch(r"diffedit \d+\.\d+\.\d+\s*", version.stdout)
    helped = subprocess.run([sys.executable, "-m", "diffedit", "--help"], capture_output=True, text=True)
    assert helped.returncode == 0 and "export" in helped.stdout and "usage: diffedit" in helped.stdout


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.strip() for line in block.strip().splitlines() if line.strip()]
    assert len(commands) == 2, "the Quick start holds exactly two commands"
    assert "diffedit" in commands[0] and "pytest" in commands[1]
    assert commands[1] in (ROOT / ".ci" / "run").read_text()
