"""The layers as contracts, read from the import graph of the source (no import runs).

1. ``galclust`` never imports ``flows`` (the orchestration imports the library).
2. No import cycles among galclust's modules (imports inside functions count:
   a cycle hidden in a function is still a cycle).
3. Science modules (``galclust.pixels``, ``galclust.catalog`` and every new
   capability package) import no dask, distributed, zarr, fsspec, s3fs or prefect,
   directly or through another galclust module, except each capability's one
   Dask-mapping module (``survey.py``).
4. Only ``galclust.store`` opens files or URLs (``galclust.synth`` writes the FITS
   files of a synthetic survey, as a survey team delivers them, and is exempt).

Each contract is a function of a graph, so a planted violation can show that the
check fails (the ``test_planted_*`` tests).
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("dask", "distributed", "zarr", "fsspec", "s3fs", "prefect", "prefect_dask")
SCIENCE = ("galclust.pixels", "galclust.catalog", "galclust.classify", "galclust.sources",
           "galclust.structures")
MAPPING_MODULES = ("survey",)
#: Calls that open a file or URL.
OPENERS = {("", "open"), ("io", "open"), ("os", "open"), ("fits", "open"),
           ("fits", "getdata"), ("fits", "getheader"), ("fits", "writeto"),
           ("pd", "read_parquet"), ("pd", "read_csv"), ("pd", "read_excel"),
           ("np", "load"), ("np", "save"), ("np", "memmap"), ("fsspec", "open"),
           ("fs", "open"), ("fs", "rm"), ("shutil", "rmtree"), ("os", "remove")}


def _in_science(mod: str) -> bool:
    """Whether ``mod`` is a science package or one of its modules (not a namesake
    such as ``galclust.classify_stage``)."""
    return any(mod == pkg or mod.startswith(pkg + ".") for pkg in SCIENCE)


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _resolve(name: str, known: set[str]) -> str | None:
    """The galclust/flows module an imported name refers to (a module or its parent)."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def read_graph(packages: Iterable[str] = ("galclust", "flows")) -> dict[str, dict]:
    """Module -> {"imports": set of imported modules (all, anywhere in the file),
    "external": set of top-level external packages, "opens": list of open calls}."""
    files = [p for pkg in packages for p in (ROOT / pkg).rglob("*.py")]
    known = {module_name(p) for p in files}
    graph = {}
    for path in files:
        tree = ast.parse(path.read_text(), filename=str(path))
        mod = module_name(path)
        imports, external, opens = set(), set(), []
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Call):
                f = node.func
                key = (f.value.id if isinstance(f, ast.Attribute) and isinstance(
                    f.value, ast.Name) else "", f.attr if isinstance(f, ast.Attribute) else
                    getattr(f, "id", ""))
                if key in OPENERS:
                    opens.append(f"{mod}:{node.lineno} {'.'.join(filter(None, key))}()")
            for name in names:
                target = _resolve(name, known)
                if target and target != mod:
                    imports.add(target)
                elif not target:
                    external.add(name.split(".")[0])
        graph[mod] = {"imports": imports, "external": external, "opens": opens}
    return graph


def library_imports_flows(graph: dict[str, dict]) -> list[str]:
    return sorted(f"{m} -> {t}" for m, v in graph.items() if m.startswith("galclust")
                  for t in v["imports"] if t == "flows" or t.startswith("flows."))


def cycles(graph: dict[str, dict], prefix: str = "galclust") -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    nodes = [m for m in graph if m.startswith(prefix)]
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]["imports"]:
            if not w.startswith(prefix) or _is_parent(w, v):
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in nodes:
        if v not in index:
            visit(v)
    return out


def _is_parent(pkg: str, mod: str) -> bool:
    """``from galclust.pixels import x`` inside galclust.pixels.y names the package's
    ``__init__``; a package importing its own submodules is not a cycle of modules."""
    return mod.startswith(pkg + ".")


def heavy_in_science(graph: dict[str, dict]) -> list[str]:
    """Science modules that reach a heavy package, with the path that leads there."""
    bad = []
    for mod in graph:
        if not _in_science(mod) or mod.rsplit(".", 1)[-1] in MAPPING_MODULES:
            continue
        seen, todo = {mod: [mod]}, [mod]
        while todo:
            m = todo.pop()
            hit = sorted(graph[m]["external"] & set(HEAVY))
            if hit:
                bad.append(" -> ".join(seen[m]) + f" -> {hit[0]}")
                break
            for t in graph[m]["imports"]:
                # a mapping module reached through the package __init__ is its own business
                if t.startswith("galclust") and t not in seen and not (
                        t.rsplit(".", 1)[-1] in MAPPING_MODULES and _in_science(t)):
                    seen[t] = [*seen[m], t]
                    todo.append(t)
    return sorted(bad)


def opens_outside_store(graph: dict[str, dict]) -> list[str]:
    return sorted(o for m, v in graph.items() if m.startswith("galclust")
                  and not m.startswith(("galclust.store", "galclust.synth")) for o in v["opens"])


@pytest.fixture(scope="module")
def graph():
    return read_graph()


def test_the_library_never_imports_flows(graph):
    assert library_imports_flows(graph) == []


def test_no_import_cycles(graph):
    assert cycles(graph) == []


def test_science_modules_reach_no_dask_zarr_fsspec_or_prefect(graph):
    assert heavy_in_science(graph) == []


def test_only_store_opens_files(graph):
    assert opens_outside_store(graph) == []


# --------------------------------------------------------------------------- planted
def _plant(graph: dict[str, dict], mod: str, *, imports: Iterable[str] = (),
           external: Iterable[str] = (), opens: Iterable[str] = ()) -> dict[str, dict]:
    g = {m: {k: (set(v) if isinstance(v, set) else list(v)) for k, v in d.items()}
         for m, d in graph.items()}
    g[mod]["imports"] |= set(imports)
    g[mod]["external"] |= set(external)
    g[mod]["opens"] += list(opens)
    return g


def test_planted_violations_fail_every_contract(graph):
    assert library_imports_flows(_plant(graph, "galclust.query", imports=["flows.nightly"])) \
        == ["galclust.query -> flows.nightly"]
    assert cycles(_plant(graph, "galclust.errors", imports=["galclust.query"])) != []
    planted = heavy_in_science(_plant(graph, "galclust.pixels.distance", external=["dask"]))
    assert "galclust.pixels.distance -> dask" in planted
    # and every module that reaches it, with the path that leads there
    assert any(p.startswith("galclust.pixels.core -> ") and
               p.endswith(" -> galclust.pixels.distance -> dask") for p in planted), planted
    # through another module: errors is imported by every science module
    through = heavy_in_science(_plant(graph, "galclust.errors", external=["zarr"]))
    assert "galclust.pixels.core -> galclust.errors -> zarr" in through
    assert opens_outside_store(_plant(graph, "galclust.query", opens=["galclust.query:1 open()"]))


def test_a_planted_file_fails_the_check(tmp_path, monkeypatch):
    """On real source: a module of galclust.pixels that imports dask is found."""
    planted = ROOT / "galclust" / "pixels" / "_planted_violation.py"
    planted.write_text("import dask.array as da\n")
    try:
        bad = heavy_in_science(read_graph())
    finally:
        os.remove(planted)
    assert bad == ["galclust.pixels._planted_violation -> dask"]
