"""The package's import graph: no cycles (lazy imports inside functions count too), and every module
imports only from its own layer or below. Read from the source with ``ast``; nothing is imported."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "ebpo_bench"

#: lowest first; a module may import its own layer and the layers before it
LAYERS = [
    {"errors", "registry", "progress", "results", "interrupt", "__init__"},
    {"config"},
    {"data", "estimators"},
    {"models"},
    {"rollout"},
    {"train"},
    {"eval"},
    {"perf", "lab", "report", "runner", "launch"},
    {"cli", "cli_support", "cli_bench", "cli_eval", "sweep_cli", "catalog", "__main__"},
]
#: upward edges that are deliberate, with the reason
ALLOWED = {
    # the spec validates benchmark names against the (torch-free) benchmark registry, lazily
    ("ebpo_bench.config.evaluation", "ebpo_bench.eval.benchmarks"),
}


def _name(f: Path) -> str:
    parts = list(f.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph() -> dict[str, set[str]]:
    mods = {_name(f): f for f in PKG.rglob("*.py")}

    def known(name: str) -> str:
        while name not in mods and "." in name:
            name = name.rsplit(".", 1)[0]
        return name

    graph: dict[str, set[str]] = {}
    for mod, f in mods.items():
        out = set()
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ebpo_bench"):
                for a in node.names:
                    full = f"{node.module}.{a.name}"
                    out.add(full if full in mods else known(node.module))
            elif isinstance(node, ast.Import):
                out |= {known(a.name) for a in node.names if a.name.startswith("ebpo_bench")}
        graph[mod] = out - {mod}
    return graph


def _layer(mod: str) -> int:
    part = mod.split(".")[1] if "." in mod else "__init__"
    return next(i for i, names in enumerate(LAYERS) if part in names)


def test_every_module_has_a_layer():
    for mod in _graph():
        _layer(mod)  # StopIteration names a module missing from LAYERS


def test_imports_point_down_the_layers():
    bad = sorted(
        f"{a} -> {b}"
        for a, outs in _graph().items()
        for b in outs
        if _layer(b) > _layer(a) and (a, b) not in ALLOWED
    )
    assert not bad, "imports that point up the layers:\n" + "\n".join(bad)


def test_no_import_cycles():
    graph, index, low, stack, on, cycles = _graph(), {}, {}, [], set(), []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while not comp or comp[-1] != v:
                comp.append(stack.pop())
                on.discard(comp[-1])
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_spec_layer_and_report_import_no_torch():
    code = (
        "import sys, importlib, pkgutil, ebpo_bench.config as c\n"
        "for m in pkgutil.iter_modules(c.__path__): importlib.import_module(f'ebpo_bench.config.{m.name}')\n"
        "import ebpo_bench.report, ebpo_bench.catalog\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


def test_every_spec_union_member_has_its_registered_implementation_and_back():
    """The spec's discriminated unions and the registries they dispatch to name the same things, so a
    spec that validates always finds its implementation and no implementation is unreachable."""
    import typing

    import ebpo_bench.rollout.hf  # noqa: F401  (registers the engines)
    import ebpo_bench.rollout.vllm  # noqa: F401
    from ebpo_bench.config.losses import SURROGATE_CONFIGS
    from ebpo_bench.config.rollout import ENGINE_CONFIGS
    from ebpo_bench.config.tasks import TaskConfig
    from ebpo_bench.data.tasks import TASKS
    from ebpo_bench.rollout import BACKENDS
    from ebpo_bench.train.surrogates import SURROGATES

    assert sorted(SURROGATE_CONFIGS) == sorted(SURROGATES.names())
    for name, cfg in SURROGATE_CONFIGS.items():
        assert cfg().type == name
    ours = {n for n in BACKENDS.names() if BACKENDS.get(n).__module__.startswith("ebpo_bench.")}
    assert sorted(ENGINE_CONFIGS) == sorted(ours)  # (test doubles register engines of their own)
    for name, cfg in ENGINE_CONFIGS.items():
        assert cfg().type == name
    union = typing.get_args(typing.get_args(TaskConfig)[0])
    assert sorted(c.model_fields["type"].default for c in union) == sorted(TASKS.names())
