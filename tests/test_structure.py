"""House rules about the shape of the code, checked on the sources with ``ast`` (nothing imported).

* No function or method in ``bridge/`` is longer than 100 code lines. Code lines are the lines
  from ``def`` to the function's last line that hold a token other than a comment, minus
  blank lines, comment-only lines and docstrings (the function's own and those of functions or
  classes nested in it). A nested function counts towards its enclosing function as well: the
  whole body has to fit on a screen.
* No import cycle between modules of ``bridge``. Every ``import`` / ``from ... import`` counts,
  relative or absolute, at the top of a module or inside a function (a cycle closed only
  inside a function still ties the two modules together). Each imported name becomes one edge
  to the deepest ``bridge`` module it names:

  - ``import bridge.a.b`` and ``from bridge.a import b`` (``b`` a submodule), ``from . import
    b``: an edge to ``bridge.a.b``;
  - ``from bridge.a import f`` (``f`` defined or re-exported by ``bridge/a/__init__.py``) and
    ``import bridge.a``: an edge to the package's ``__init__``, so a submodule that takes a
    name from its own package's ``__init__`` while that ``__init__`` imports the submodule is a
    cycle (it works only as long as the ``__init__`` imports things in the right order).

  The ``__init__`` files of the *parent* packages, which Python runs before any submodule, are
  not edges: otherwise every module re-exported by ``bridge/__init__.py`` would sit in a cycle
  with it. Nothing else is excluded, in particular not the edges from a package's ``__init__``
  to its own submodules, so a re-export really is a dependency of the ``__init__``.
* No tracked file refers to material outside the repository or to the task tracker: the
  project's private notes folder beside the clone, the former specification by its
  upper-case name, the experiments notes file, and issue numbers (``issue 12``, ``#12``, "the
  issue's sizes"); and no tracked path is named after an issue. The mathematics is cited as
  ``docs/math.md §n``. This file is exempt, and spells the names in pieces (``_NOTES``, ...).

Each checker is a plain function of a directory, and the tests at the end plant a violation
of each rule in a temporary package or file to show that the checker catches it.
"""

from __future__ import annotations

import ast
import io
import re
import shutil
import subprocess
import textwrap
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_CODE_LINES = 100
THIS_FILE = Path(__file__).resolve().relative_to(ROOT).as_posix()


# ----------------------------------------------------------------------------------------------
# function length


def _token_lines(source: str) -> set[int]:
    """Line numbers holding at least one token other than comments and line breaks."""
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT}
    skip |= {tokenize.ENCODING, tokenize.ENDMARKER}
    lines: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type not in skip:
            lines.update(range(tok.start[0], tok.end[0] + 1))
    return lines


def _docstring_lines(node: ast.AST) -> set[int]:
    """Lines of the docstrings of ``node`` and of every function or class nested in it."""
    lines: set[int] = set()
    for sub in ast.walk(node):
        if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)):
            body = sub.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                if isinstance(body[0].value.value, str):
                    lines.update(range(body[0].lineno, body[0].end_lineno + 1))
    return lines


def _qualified_functions(tree: ast.Module):
    """Yield (qualified name, node) for every function and method, nested ones included."""

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield f"{prefix}{child.name}", child
                yield from visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                yield from visit(child, f"{prefix}{child.name}.")
            else:
                yield from visit(child, prefix)

    yield from visit(tree, "")


def function_lengths(package_dir: Path) -> list[tuple[str, int]]:
    """(``path:line qualname``, code lines) for every function in the package's sources."""
    out = []
    for path in sorted(package_dir.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source, filename=str(path))
        code = _token_lines(source)
        for name, node in _qualified_functions(tree):
            span = set(range(node.lineno, node.end_lineno + 1))
            n = len((span & code) - _docstring_lines(node))
            out.append((f"{path.relative_to(package_dir.parent).as_posix()}:{node.lineno} {name}", n))
    return out


def long_functions(package_dir: Path, limit: int = MAX_CODE_LINES) -> list[str]:
    return [f"{where} has {n} code lines" for where, n in function_lengths(package_dir) if n > limit]


# ----------------------------------------------------------------------------------------------
# import cycles


def _module_files(package_dir: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package (``__init__`` = the package)."""
    modules = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _deepest_module(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of ``name`` that is a module of the package (None: outside it)."""
    parts = name.split(".")
    for k in range(len(parts), 0, -1):
        candidate = ".".join(parts[:k])
        if candidate in modules:
            return candidate
    return None


def _imported_modules(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that ``module`` imports anywhere in its source (see the docstring)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            targets = [origin if alias.name == "*" else f"{origin}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            resolved = _deepest_module(target, modules)
            if resolved is not None and resolved != module:
                found.add(resolved)
    return found


def import_graph(package_dir: Path) -> dict[str, set[str]]:
    modules = _module_files(package_dir)
    return {name: _imported_modules(name, path, modules) for name, path in modules.items()}


def import_cycles(package_dir: Path) -> list[list[str]]:
    """One cycle (``[a, b, ..., a]``) per strongly connected component with more than one module."""
    graph = import_graph(package_dir)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return [_cycle_through(component, graph) for component in components]


def _cycle_through(component: list[str], graph: dict[str, set[str]]) -> list[str]:
    """A shortest cycle through the component's first module, to name in the failure message."""
    start, members = component[0], set(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & members):
                if w == start:
                    return paths[v] + [start]
                if w not in paths:
                    paths[w] = paths[v] + [w]
                    nxt.append(w)
        frontier = nxt
    raise AssertionError("a strongly connected component always holds a cycle")


# ----------------------------------------------------------------------------------------------
# references to material outside the repository

# The names are spelled in pieces, so that this file does not cite them itself.
_NOTES, _FIRST_MATHS, _PAPER_SETTINGS = "shared", "SPEC", "EXPERIMENTS"

_OUTSIDE = [
    ("notes folder", re.compile(rf"(?<![\w-]){_NOTES}/|\.\./{_NOTES}\b")),
    ("specification", re.compile(rf"\b{_FIRST_MATHS}\b")),
    ("experiments notes", re.compile(rf"\b{_PAPER_SETTINGS}\.md\b")),
    ("issue number", re.compile(r"\bissues?\s*(?:#|no\.?\s*)?\d+\b", re.IGNORECASE)),
    # '#12' but not a colour ('"#333"'), an HTML entity ('&#12;'), a URL fragment or '##'
    ("issue number", re.compile(r"(?<![\w&/\"'#])#\d+\b")),
    ("the issue", re.compile(r"\bthe issue['\u2019]s\b", re.IGNORECASE)),  # not 'the issues'
]
_ISSUE_PATH = re.compile(r"(?:^|[/_.\-])issues?(?:[/_.\-]|$)", re.IGNORECASE)


def outside_references(text: str) -> list[tuple[int, str, str]]:
    """(line number, kind, matched text) for every forbidden mention in ``text``."""
    hits = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        for kind, pattern in _OUTSIDE:
            hits.extend((lineno, kind, m.group(0)) for m in pattern.finditer(line))
    return hits


def tracked_files(root: Path) -> list[str]:
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed")
    proc = subprocess.run([git, "ls-files", "-z"], cwd=root, capture_output=True, check=False)
    if proc.returncode != 0:
        pytest.skip("not a git checkout")
    return [p for p in proc.stdout.decode().split("\0") if p]


def files_with_outside_references(root: Path, paths: list[str]) -> list[str]:
    problems = []
    for rel in paths:
        if rel == THIS_FILE:
            continue
        if _ISSUE_PATH.search(rel):
            problems.append(f"{rel}: the path is named after an issue")
        file = root / rel
        if not file.is_file():  # deleted in the working tree, or a submodule
            continue
        data = file.read_bytes()
        if b"\0" in data:  # binary
            continue
        for lineno, kind, found in outside_references(data.decode("utf-8", errors="replace")):
            problems.append(f"{rel}:{lineno}: {kind} ({found!r})")
    return problems


# ----------------------------------------------------------------------------------------------
# the checks on this repository


def test_no_function_longer_than_a_screen():
    too_long = long_functions(ROOT / "bridge")
    if too_long:
        pytest.fail("functions over 100 code lines:\n" + "\n".join(too_long), pytrace=False)


def test_no_import_cycles():
    cycles = import_cycles(ROOT / "bridge")
    if cycles:
        pytest.fail("import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles), pytrace=False)


def test_tracked_files_stay_inside_the_repository():
    problems = files_with_outside_references(ROOT, tracked_files(ROOT))
    if problems:
        pytest.fail(f"{len(problems)} references to outside material:\n" + "\n".join(problems), pytrace=False)


# ----------------------------------------------------------------------------------------------
# the checkers catch planted violations


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")


def _function(name: str, code_lines: int) -> str:
    """A function with exactly ``code_lines`` code lines, padded with lines that do not count."""
    lines = [f"def {name}(x):", '    """Docstring.', "", "    More docstring.", '    """']
    for i in range(code_lines - 3):  # the def line and the two-line return make up the rest
        lines += [f"    x = x + {i}  # comment", "", "    # a comment line"]
    lines += ["    return (", "        x)"]
    return "\n".join(lines) + "\n"


def test_function_length_counts_code_lines_only(tmp_path):
    _write(tmp_path, {"pkg/__init__.py": "", "pkg/m.py": _function("ok", 100) + _function("long", 101)})
    lengths = dict(function_lengths(tmp_path / "pkg"))
    assert sorted(lengths.values()) == [100, 101]
    assert long_functions(tmp_path / "pkg") == [f"{next(k for k in lengths if k.endswith(' long'))} has 101 code lines"]


def test_function_length_sees_methods_and_nested_functions(tmp_path):
    method = textwrap.indent(_function("method", 101), "    ")
    inner = textwrap.indent(_function("inner", 60), "    ")
    outer = "def outer(x):\n" + inner + "    return inner(x)\n" + "\n".join(f"    x = {i}" for i in range(50)) + "\n"
    _write(tmp_path, {"pkg/__init__.py": "", "pkg/m.py": "class C:\n" + method + "\n" + outer})
    assert [w.split(" ")[1] for w in long_functions(tmp_path / "pkg")] == ["C.method", "outer"]


def test_import_cycles_found_directly_through_a_chain_and_inside_functions(tmp_path):
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "from .a import f\n",
            "pkg/a.py": "from pkg.b import g\ndef f():\n    return g()\n",
            "pkg/b.py": "def g():\n    from . import c\n    return c.h()\n",
            "pkg/c.py": "import pkg.a\ndef h():\n    return 1\n",
        },
    )
    assert import_cycles(tmp_path / "pkg") == [["pkg.a", "pkg.b", "pkg.c", "pkg.a"]]


def test_import_cycle_through_a_packages_init(tmp_path):
    # the sub-package's __init__ re-exports ``a``, and ``a`` takes a name from that __init__
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/sub/__init__.py": "from .a import f\nfrom .b import g\n",
            "pkg/sub/a.py": "from pkg.sub import g\ndef f():\n    return g()\n",
            "pkg/sub/b.py": "def g():\n    return 1\n",
        },
    )
    assert import_cycles(tmp_path / "pkg") == [["pkg.sub", "pkg.sub.a", "pkg.sub"]]


def test_no_cycle_for_re_exports_and_sibling_imports(tmp_path):
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.sub import f, g\nfrom . import c\n",
            "pkg/sub/__init__.py": "from .a import f\nfrom .b import g\n",
            "pkg/sub/a.py": "from . import b\nfrom pkg.sub.b import g\nimport numpy\ndef f():\n    return b.g()\n",
            "pkg/sub/b.py": "from ..c import h\ndef g():\n    return h()\n",
            "pkg/c.py": "import os\ndef h():\n    return 1\n",
        },
    )
    graph = import_graph(tmp_path / "pkg")
    assert graph["pkg"] == {"pkg.sub", "pkg.c"}
    assert graph["pkg.sub.a"] == {"pkg.sub.b"}
    assert graph["pkg.sub.b"] == {"pkg.c"}
    assert import_cycles(tmp_path / "pkg") == []


@pytest.mark.parametrize(
    "line",
    [
        f"see ../{_NOTES}/NOTES.md",
        f"The mathematics is in `/work/{_NOTES}/x.md`",
        f"as in {_FIRST_MATHS} §5",
        f"({_FIRST_MATHS})",
        f"settings from {_PAPER_SETTINGS}.md",
        "fixed in issue 12",
        "Issue #3 asks for",
        "issues 4 and 5",
        "see #12 for details",
        "(#7)",
        "at the issue's sizes",
        "the issue\u2019s goals",
    ],
)
def test_outside_reference_patterns_catch(line):
    assert outside_references(line), line


@pytest.mark.parametrize(
    "line",
    [
        "tensors in shared memory",
        "spec = importlib.util.spec_from_file_location(name, path)",
        f"{_FIRST_MATHS}TRAL = 1; _{_FIRST_MATHS} = 2; {_FIRST_MATHS}S",
        "the issue is numerical",
        "the issues with stiff drifts",
        "an issue with 3 modes",
        'color="#333"',
        "&#12; and https://example.org/page#12",
        "## 1. Heading",
        "x = y  # 12 steps",
        "issue_size = 5",
    ],
)
def test_outside_reference_patterns_have_no_false_positives(line):
    assert not outside_references(line), line


def test_outside_references_in_files_and_paths(tmp_path):
    _write(
        tmp_path,
        {
            "ok.py": "x = 1  # fine\n",
            "notes.md": "Line one.\nSee docs/math.md §2 and issue 9.\n",
            "results/run_issue_size.json": "{}\n",
        },
    )
    (tmp_path / "blob.bin").write_bytes(b"\0issue 9")
    problems = files_with_outside_references(tmp_path, ["ok.py", "notes.md", "results/run_issue_size.json", "blob.bin"])
    assert problems == [
        "notes.md:2: issue number ('issue 9')",
        "results/run_issue_size.json: the path is named after an issue",
    ]
