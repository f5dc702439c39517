"""The documentation cannot rot: every code block and every docstring example runs.

* every fenced ``python`` block of README.md and docs/**/*.md is executed (the blocks of
  one file share a namespace, top to bottom, like a notebook; a block fenced as
  ``text``, ``bash`` or ``console`` is not run, nor are the ``python3`` blocks of the
  examples pages, which include the scripts that tests/test_examples.py runs);
* ``doctest.testmod`` runs over every module of functorch_lite.

Under ``FUNCTORCH_LITE_BACKEND=array_api_strict`` the same examples run on that backend; the
``backend=...`` in a printed Tensor is then compared as if it said ``numpy``.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import functorch_lite as fl

ROOT = Path(__file__).resolve().parent.parent
OPTIONAL = {"onnx", "onnxruntime", "numba", "jax", "torch", "distributed", "dask"}
DOC_FILES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
_FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """The fenced ``python`` blocks of a markdown text: (line number, dedented source)."""
    blocks = []
    for m in _FENCE.finditer(text):
        lang = m.group("lang").strip().split()
        if not lang or lang[0] not in ("python", "py"):
            continue
        indent = len(m.group("indent"))
        body = "\n".join(line[indent:] for line in m.group("body").splitlines())
        blocks.append((text.count("\n", 0, m.start()) + 2, body))
    return blocks


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_markdown_code_blocks_run(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # blocks that write files write them here
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace: dict[str, object] = {"__name__": "__docs__"}
    saved_dtype, saved_backend = fl.get_default_dtype(), fl.default_backend_name()
    try:
        for line, source in python_blocks(path.read_text(encoding="utf-8")):
            code = compile(source, f"{path.relative_to(ROOT)}:{line}", "exec")
            try:
                exec(code, namespace)
            except ModuleNotFoundError as exc:  # a page about an optional extra, without it installed
                if exc.name in OPTIONAL:
                    pytest.skip(f"{path.relative_to(ROOT)} needs {exc.name} (an optional extra)")
                raise AssertionError(f"{path.relative_to(ROOT)}, block at line {line} raised {exc!r}") from exc
            except Exception as exc:
                raise AssertionError(f"{path.relative_to(ROOT)}, block at line {line} raised {exc!r}") from exc
    finally:  # a page that changes the defaults must not leak into the next test
        fl.set_default_dtype(saved_dtype)
        fl.set_default_backend(saved_backend)


def test_readme_and_docs_have_code_blocks() -> None:
    assert python_blocks((ROOT / "README.md").read_text(encoding="utf-8")), "README.md has no python block"


def _modules() -> list[str]:
    names = ["functorch_lite"]
    for info in pkgutil.walk_packages(fl.__path__, prefix="functorch_lite."):
        names.append(info.name)
    return sorted(names)


class _BackendBlindChecker(doctest.OutputChecker):
    """Compares outputs as if every printed ``backend=NAME`` said ``backend=numpy``."""

    _pattern = re.compile(r"backend=\w+")

    def check_output(self, want: str, got: str, optionflags: int) -> bool:
        want = self._pattern.sub("backend=numpy", want)
        got = self._pattern.sub("backend=numpy", got)
        return super().check_output(want, got, optionflags)


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(
        checker=_BackendBlindChecker(),
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
    )
    tests = finder.find(module, name, globs={})
    tests = [t for t in tests if t.examples]
    failures = []
    saved_dtype = fl.get_default_dtype()
    saved_backend = fl.default_backend_name()
    for test in tests:
        out: list[str] = []
        try:
            result = runner.run(test, out=out.append, clear_globs=True)
        finally:  # an example that changes the defaults must not leak into the next
            fl.set_default_dtype(saved_dtype)
            fl.set_default_backend(saved_backend)
        if result.failed:
            failures.append("".join(out))
    assert not failures, f"{len(failures)} docstring example(s) failed in {name}:\n" + "\n".join(failures)


def test_every_public_function_has_an_example() -> None:
    """Each public function and class of the top-level namespace has a docstring example."""
    missing = []
    for attr in fl.__all__:
        obj = getattr(fl, attr, None)
        if not callable(obj) or isinstance(obj, type) and issubclass(obj, BaseException):
            continue
        if isinstance(obj, fl.DType):  # fl.float32 and friends are instances, documented by the class
            continue
        doc = getattr(obj, "__doc__", None) or ""
        if ">>>" not in doc:
            missing.append(attr)
    assert not missing, f"public functions without a docstring example: {', '.join(sorted(missing))}"


def test_readme_has_exactly_two_setup_commands_and_ci_runs_the_second() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    setup = text.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    commands = [m.group("body").strip() for m in _FENCE.finditer(setup) if m.group("lang").strip() == "bash"]
    assert len(commands) == 2, commands
    demo, tests = commands
    assert demo.startswith("python3 -m venv .venv && ") and demo.endswith("functorch-lite demo")
    assert tests.startswith("python3 -m venv .venv && ") and 'pip install -e ".[test]"' in tests
    assert tests.endswith("python -m pytest -q -n 2 tests")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    # CI installs the README's test extra plus the optional ones whose tests would otherwise skip
    assert re.search(r'pip install -q -e "\.\[test(,[a-z-]+)*\]"', ci) and "pytest_gate -q -n 2 tests" in ci
    assert "FUNCTORCH_LITE_BACKEND=array_api_strict" in ci


# ------------------------------------------------------------------------------------------------
# what the built pages show: no Sphinx roles, no private paths on the errors page
# ------------------------------------------------------------------------------------------------
# mkdocstrings renders Markdown, not reStructuredText: ":func:`jit`" would show as literal text.
# Cross-references are written [`jit`][functorch_lite.jit] (or plain backticks where no page
# renders the target); `mkdocs build --strict` then fails on a target that does not exist.
_SPHINX_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|attr|obj|data|exc|const|ref|doc|term|any):`")


def _docstrings() -> list[tuple[str, str]]:
    """(qualified name, docstring) of every module of functorch_lite and what it defines,
    class members included; generated docstrings (activation modules, class optimizers) too."""
    found: list[tuple[str, str]] = []
    seen: set[int] = set()

    def visit(qualname: str, obj: object, module: str) -> None:
        if id(obj) in seen:
            return
        seen.add(id(obj))
        doc = getattr(obj, "__doc__", None)
        if isinstance(doc, str):
            found.append((qualname, doc))
        if isinstance(obj, type) and obj.__module__ == module:
            for name, member in vars(obj).items():
                target = member.fget if isinstance(member, property) else getattr(member, "__func__", member)
                if callable(target) or isinstance(member, property):
                    visit(f"{qualname}.{name}", target, module)

    for name in _modules():
        module = importlib.import_module(name)
        visit(name, module, name)
        for attr, obj in vars(module).items():
            if getattr(obj, "__module__", None) == name and (callable(obj) or isinstance(obj, type)):
                visit(f"{name}.{attr}", obj, name)
    return found


def test_no_sphinx_roles_in_docstrings() -> None:
    docs = _docstrings()
    assert len(docs) > 500, f"the docstring walk found only {len(docs)} docstrings"
    bad = [name for name, doc in docs if _SPHINX_ROLE.search(doc)]
    assert not bad, f"Sphinx roles (shown as literal text by mkdocstrings) in the docstrings of: {', '.join(bad)}"


def test_no_sphinx_roles_in_sources_or_pages() -> None:
    files = sorted((ROOT / "functorch_lite").rglob("*.py")) + DOC_FILES
    bad = [
        f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, m.start()) + 1}"
        for path in files
        for text in [path.read_text(encoding="utf-8")]
        for m in _SPHINX_ROLE.finditer(text)
    ]
    assert not bad, f"Sphinx roles (use [`name`][functorch_lite.name] or backticks): {', '.join(bad)}"


def test_sphinx_role_check_catches_a_role() -> None:
    assert _SPHINX_ROLE.search("Compile it with :func:`jit` first.")
    assert _SPHINX_ROLE.search("a :py:class:`Program`")
    assert not _SPHINX_ROLE.search("Compile it with [`jit`][functorch_lite.jit] first.")


def test_errors_page_shows_public_names() -> None:
    from functorch_lite import _errors

    page = (ROOT / "docs" / "api" / "errors.md").read_text(encoding="utf-8")
    assert "_errors" not in page, "the errors page names the private module functorch_lite._errors"
    classes = {n for n in _errors.__all__ if getattr(_errors, n).__name__ == n}  # CheckpointError is an alias
    for name in sorted(classes):
        assert getattr(fl, name) is getattr(_errors, name), f"{name} is not exported as functorch_lite.{name}"
        assert re.search(rf"^::: functorch_lite\.{name}\n    options:\n      show_bases: false$", page, re.M), (
            f"the errors page does not render functorch_lite.{name} (without its private bases)"
        )
        bases = ", ".join(f"`{b.__name__}`" for b in getattr(_errors, name).__bases__)
        assert f"| [`{name}`][functorch_lite.{name}] | {bases} |" in page, f"the table row of {name} is wrong"
