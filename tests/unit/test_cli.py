"""The CLI as a user runs it: exit codes, one-line errors, and no torch import on fast paths."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ebpo_bench", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


NO_TORCH = (
    "import sys; from ebpo_bench.cli import main\n"
    "try:\n    main({args!r})\nexcept SystemExit as e:\n    code = e.code\nelse:\n    code = 0\n"
    "assert 'torch' not in sys.modules, 'torch was imported'\n"
    "assert 'transformers' not in sys.modules\n"
    "print('EXIT', code)\n"
)


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["validate", "specs/quickstart.yaml", "specs/group_size_sweep.yaml"],
        ["ls"],
        ["ls", "estimators"],
        ["run", "specs/quickstart.yaml", "--dry-run"],
        ["run", "--help"],
        ["report", "--help"],
    ],
)
def test_fast_commands_do_not_import_torch(args):
    p = subprocess.run(
        [sys.executable, "-c", NO_TORCH.format(args=args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    assert "EXIT 0" in p.stdout


def test_help_ends_with_examples():
    p = cli("--help")
    assert p.returncode == 0
    assert "Examples:" in p.stdout and "ebpo-bench run specs/quickstart.yaml" in p.stdout


def test_validate_ok_and_dry_run_prints_runs_and_resolved_spec():
    p = cli("validate", *[str(s) for s in sorted((ROOT / "specs").glob("*.yaml"))])
    assert p.returncode == 0, p.stderr
    p = cli("run", "specs/group_size_sweep.yaml", "--dry-run", "--arm", "ebpo")
    assert p.returncode == 0, p.stderr
    assert (
        "ebpo/G2/seed1" in p.stdout
        and "ebpo/G32/seed3" in p.stdout
        and "dapo/" not in p.stdout.split("# resolved")[0]
    )
    assert "prior_scope: batch" in p.stdout


def test_malformed_spec_exits_2_with_one_message(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nadvantage: {type: ebpo, prior_scop: batch}\n")
    p = cli("validate", str(bad))
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0, p.stderr
    assert "advantage.prior_scop" in p.stderr and "prior_scope" in p.stderr and "Traceback" not in p.stderr
    p = cli("run", str(bad))
    assert p.returncode == 2 and "Traceback" not in p.stderr


@pytest.mark.parametrize(
    "args,needle",
    [
        (["run", "specs/quickstart.yaml", "--arm", "ebp", "--dry-run"], "Did you mean 'ebpo'"),
        (["run", "specs/quickstart.yaml", "--seed", "9", "--dry-run"], "seed 9"),
        (["ls", "estimatrs"], "Did you mean 'estimators'"),
        (["validate", "missing.yaml"], "no such file"),
    ],
)
def test_bad_arguments_exit_2(args, needle):
    p = cli(*args)
    assert p.returncode == 2
    assert needle in p.stderr and "Traceback" not in p.stderr


def test_ci_runs_the_readme_test_command_verbatim():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    command = [line for line in ci if line.startswith("python3 -m venv")]
    assert len(command) == 1
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    blocks = [b.split("```", 1)[0].strip() for b in quick.split("```bash")[1:]]
    assert len(blocks) == 2, "the Quickstart has exactly two commands"
    assert blocks[1] == command[0]
    assert "ebpo-bench run specs/quickstart.yaml" in blocks[0]
