"""The docs cover the registries, and the package keeps its shape (datasette's tests/test_docs.py idea):

- every layer kind any preset's ledger produces, every named formula (the public functions of the formula
  modules), every CLI flag and every key of the JSON contract is written down in README.md or docs/;
- costmodel/ has no import cycle (module-level or function-local), no module over ~500 lines without a
  reason in its docstring, and never imports streamlit.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

import costmodel
from costmodel import collectives, layers, parallel, perf, timing
from costmodel.cli import build_parser
from costmodel.ledger import ledger, make_ctx
from costmodel.models import list_presets, load_model
from costmodel.workload import Workload

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "costmodel"
DOCS = "\n".join(p.read_text(encoding="utf-8") for p in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))])
JSON_DOC = (ROOT / "docs" / "json.md").read_text(encoding="utf-8")
MAX_LINES = 500


def _documented(name: str) -> bool:
    return re.search(r"(?<![\w-])" + re.escape(name) + r"(?![\w-])", DOCS) is not None


# ---- the registries are documented ---------------------------------------------------------------------------

def _layer_kinds() -> set[str]:
    kinds = set()
    for p in list_presets():
        spec = load_model(p.id)
        for task, phases in (("train", ("train",)), ("infer", ("prefill", "decode", "forward"))):
            w = Workload(task=task, batch=1, seq=16, prompt=16, generate=4, image_size=64,
                         precision="amp-bf16" if task == "train" else "bf16")
            for phase in phases:
                if phase in ("prefill", "decode") and not spec.generative:
                    continue
                kinds |= {r.kind for r in ledger(spec, make_ctx(spec, w, phase))}
    return kinds


@pytest.mark.parametrize("kind", sorted(_layer_kinds()))
def test_every_layer_kind_is_documented(kind):
    assert _documented(kind), f"layer kind {kind!r} (a ledger row of some preset) is not described in docs/"


def _formula_names() -> list[str]:
    names = []
    for module in (collectives, timing, parallel, perf):
        for name, obj in vars(module).items():
            if (inspect.isfunction(obj) and obj.__module__ == module.__name__ and not name.startswith("_")):
                names.append(name)
    # the ledger's record functions (linear(), attention_core() ...): one per kind of layer
    names += [n for n, o in vars(layers).items() if inspect.isfunction(o) and o.__module__ == layers.__name__
              and not n.startswith("_")]
    return sorted(set(names))


@pytest.mark.parametrize("name", _formula_names())
def test_every_named_formula_is_documented(name):
    assert _documented(name), f"formula function {name}() is not named in docs/ (say what it computes and its source)"


def _cli_flags() -> list[tuple[str, str]]:
    out = []
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for cmd, p in sub.choices.items():
        stack = [(cmd, p)]
        while stack:
            name, pp = stack.pop()
            for a in pp._actions:
                if a.__class__.__name__ == "_SubParsersAction":
                    stack += [(f"{name} {k}", v) for k, v in a.choices.items()]
                for opt in a.option_strings:
                    if opt.startswith("--") and opt != "--help":
                        out.append((name, opt))
    return sorted(set(out))


@pytest.mark.parametrize("command,flag", _cli_flags())
def test_every_cli_flag_is_documented(command, flag):
    assert _documented(flag), f"`{command} {flag}` is not in README.md or docs/"


def _json_keys() -> list[str]:
    keys = set()
    for kw in (dict(task="train", batch=2, seq=128), dict(task="infer", batch=2, prompt=64, generate=8, precision="bf16")):
        d = costmodel.estimate("llama-3-8b", "h100-sxm-80gb", **kw).to_dict()
        keys |= set(d)
        for group in ("params", "flops", "memory_bytes", "time_s", "perf", "cost_usd", "energy_kwh",
                      "carbon_kg_co2e", "workload"):
            keys |= {f"{group}.{k}" for k in d[group]}
    return sorted(keys)


@pytest.mark.parametrize("key", _json_keys())
def test_every_json_key_is_documented(key):
    group, _, leaf = key.partition(".")
    # docs/json.md lists each group's keys in that group's rows
    rows = [line for line in JSON_DOC.splitlines() if line.startswith("|") and f"`{group}`" in line.split("|")[1]]
    if not leaf:
        assert f"`{group}`" in JSON_DOC, f"JSON key {key} is not in docs/json.md"
    else:
        assert any(f"`{leaf}`" in line for line in rows), f"JSON key {key} is not in docs/json.md"


# ---- the package's shape -------------------------------------------------------------------------------------

def _modules() -> dict[str, Path]:
    out = {}
    for p in PACKAGE.rglob("*.py"):
        name = ".".join(p.relative_to(ROOT).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = p
    return out


def _import_graph() -> dict[str, set[str]]:
    mods = _modules()
    edges = {m: set() for m in mods}
    for m, p in mods.items():
        pkg = m if p.name == "__init__.py" else m.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = pkg.split(".")
                    base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            edges[m] |= {t for t in targets if t in mods and t not in (m, pkg)}
    return edges


def test_no_import_cycles():
    # module-level and function-local imports alike: a cycle means a rule lives in the wrong room
    edges = _import_graph()

    def reaches(a, b, seen):
        return any(x == b or (x not in seen and not seen.add(x) and reaches(x, b, seen)) for x in edges[a])

    cycles = sorted({tuple(sorted((a, b))) for a in edges for b in edges[a] if reaches(b, a, set())})
    assert not cycles, f"import cycles: {cycles}"


@pytest.mark.parametrize("name", sorted(_modules()))
def test_modules_are_small_or_say_why(name):
    path = _modules()[name]
    n = len(path.read_text(encoding="utf-8").splitlines())
    if n <= MAX_LINES:
        return
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    assert re.search(r"\b\d+ lines\b", doc), f"{name} has {n} lines: split it, or say in its docstring why not"


def test_the_package_never_imports_streamlit():
    # the dashboard is its own package beside it (costmodel_dashboard/), so `import costmodel` never needs Streamlit
    for name, path in _modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(m == "streamlit" or m.startswith("streamlit.") for m in mods), name
