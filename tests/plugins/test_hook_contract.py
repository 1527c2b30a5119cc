"""Meta-tests (as datasette does): every hook is documented with its exact signature and tested."""

import inspect
import re
from pathlib import Path

from diffedit import hookspecs

ROOT = Path(__file__).resolve().parents[2]
HOOKS = [name for name, obj in vars(hookspecs).items()
         if name.startswith("diffedit_") and callable(obj) and hasattr(obj, "diffedit_spec")]


def test_there_are_registrar_hooks_for_tasks_samplers_loaders_formats_and_actions() -> None:
    assert {"diffedit_register_tasks", "diffedit_register_samplers", "diffedit_register_model_loaders",
            "diffedit_register_file_formats", "diffedit_register_actions"} <= set(HOOKS)


def test_every_hook_has_a_docstring_and_typed_parameters() -> None:
    for name in HOOKS:
        fn = getattr(hookspecs, name)
        assert fn.__doc__ and len(fn.__doc__.strip()) > 40, name
        sig = inspect.signature(fn)
        assert all(p.annotation is not inspect.Parameter.empty for p in sig.parameters.values()), name


def test_every_hook_is_documented_in_docs_with_its_exact_signature() -> None:
    doc = (ROOT / "docs" / "plugins.md").read_text()
    for name in HOOKS:
        sig = str(inspect.signature(getattr(hookspecs, name))).replace("'", "")
        assert f"### `{name}{sig}`" in doc, f"docs/plugins.md lacks a '### `{name}{sig}`' section"


def test_every_hook_has_a_test() -> None:
    tests = "\n".join(p.read_text() for p in (ROOT / "tests").rglob("test_*.py") if p.name != Path(__file__).name)
    for name in HOOKS:
        assert re.search(rf"\b{name}\b", tests), f"no test mentions {name}"
