"""Issue 17, fast paths: every spec error in one pass, profiles validated, --set, --version, -h, the
greedy-n refusal, plain progress lines, stop requests, and file modes that follow the umask."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ebpo_bench", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def write(tmp: Path, spec: dict, name: str = "s.yaml") -> Path:
    p = tmp / name
    p.write_text(yaml.safe_dump(spec))
    return p


BASE = {"name": "x", "seeds": [1], "arms": {"ebpo": {"advantage": {"type": "ebpo"}}, "grpo": {}}}


def test_version_and_short_help():
    p = cli("--version")
    assert p.returncode == 0 and p.stdout.strip() == "ebpo-bench 0.1.0"
    for args in (["-h"], ["run", "-h"], ["validate", "-h"]):
        p = cli(*args)
        assert p.returncode == 0 and "Usage:" in p.stdout, args
    assert "--set" in cli("run", "-h").stdout and "--eval-only" in cli("run", "-h").stdout


def test_validate_reports_every_error_in_one_pass_including_profiles(tmp_path):
    spec = {
        **BASE,
        "train": {"lrr": 1e-4, "steps": 0},
        "rollout": {"group_siz": 4},
        "arms": {"ebpo": {"advantage": {"type": "ebpo", "prior_scop": "batch"}}, "grpo": {}},
        "profiles": {"tiny": {"trian": {"steps": 2}}, "small": {"eval": {"n_samples": 0}}},
    }
    p = cli("validate", str(write(tmp_path, spec)))
    assert p.returncode == 2 and "Traceback" not in p.stderr
    lines = p.stderr.strip().splitlines()
    assert all(x.startswith("error: ") for x in lines)
    text = p.stderr
    for expected in (
        "train.lrr: unknown field. Did you mean 'lr'?",
        "train.steps:",
        "rollout.group_siz: unknown field. Did you mean 'group_size'?",
        "arms.ebpo.advantage.prior_scop: unknown field. Did you mean 'prior_scope'?",
        "[profile tiny]: trian: unknown field",
        "[profile small]: eval.n_samples:",
    ):
        assert expected in text, (expected, text)
    assert len(lines) == len(set(lines)) == 6, lines  # base errors are not repeated per arm or run
    # the selected profile is named in its errors too
    p = cli(
        "run",
        str(write(tmp_path, {**BASE, "profiles": {"tiny": {"train": {"stepz": 1}}}})),
        "--profile",
        "tiny",
    )
    assert p.returncode == 2 and "[profile tiny]: train.stepz: unknown field" in p.stderr, p.stderr


def test_error_list_is_capped(tmp_path):
    spec = {**BASE, **{f"field{i}": 1 for i in range(30)}}
    p = cli("validate", str(write(tmp_path, spec)))
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 21 and lines[-1] == "error: ... and 10 more errors"


def test_set_overrides_are_typed_by_the_schema_and_shown_in_the_resolved_spec(tmp_path):
    spec = write(tmp_path, {**BASE, "arms": {"a": {"train": {"lr": 3e-4}}, "b": {}}})
    p = cli(
        "run", str(spec), "--dry-run", "--set", "train.lr=1e-5", "--set", "seeds=[7]", "--set", "eval.limit=3"
    )
    assert p.returncode == 0, p.stderr
    docs = [
        yaml.safe_load(d.split("\n", 1)[1].split("\nruns: ")[0])
        for d in p.stdout.split("# resolved spec of ")[1:]
    ]
    assert len(docs) == 2 and all(d["train"]["lr"] == 1e-5 and d["seed"] == 7 for d in docs)  # arm 'a' too
    assert all(d["eval"]["limit"] == 3 for d in docs)
    p = cli("validate", str(spec), "--set", "train.lrr=1")
    assert (
        p.returncode == 2 and "--set train.lrr: 'lrr' is not a field of train. Did you mean 'lr'?" in p.stderr
    )
    p = cli("validate", str(spec), "--set", "train.steps=many")
    assert p.returncode == 2 and "train.steps" in p.stderr and "many" in p.stderr
    p = cli("validate", str(spec), "--set", "train.lr")
    assert p.returncode == 2 and "expected key.path=value" in p.stderr
    p = cli(
        "validate", str(ROOT / "specs/quickstart.yaml"), "--set", "arms.ebpo.advantage.sigma2=mean_within"
    )
    assert p.returncode == 0, p.stderr


def test_eval_refuses_several_greedy_samples_in_one_line():
    p = cli("eval", "--model", "tiny", "--benchmarks", "math500", "--n", "4", "--limit", "2")
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [
        "error: --n 4 with temperature 0 (greedy) gives 4 identical samples per problem; pass --temperature "
        "(e.g. 0.6), a sampling --preset (qwen_eval, paper), or --n 1"
    ]
    p = cli("validate", str(ROOT / "specs/quickstart.yaml"), "--set", "eval.temperature=0")
    assert p.returncode == 2 and "eval: n_samples=4 with temperature 0" in p.stderr  # n_samples > 1 in a spec


@pytest.mark.parametrize(
    "args", [["--version"], ["-h"], ["validate", "specs/quickstart.yaml", "--set", "train.lr=1e-5"]]
)
def test_new_fast_paths_do_not_import_torch(args):
    code = (
        "import sys\nfrom ebpo_bench.cli import main\n"
        f"try:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules\n"
    )
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr


def test_plain_progress_lines_without_a_terminal():
    from ebpo_bench.progress import progress_bar

    out = io.StringIO()
    with progress_bar("run", 25, 0, every=10, stream=out) as bar:
        for step in range(1, 26):
            bar(step, reward=0.5, loss=0.25)
    lines = out.getvalue().splitlines()
    assert [x.split()[1] for x in lines] == ["1/25", "10/25", "20/25", "25/25"]
    assert all("reward=0.500 loss=0.250" in x and " s/step eta " in x for x in lines)


def test_stop_request_is_deferred_at_safe_points_and_immediate_elsewhere():
    from ebpo_bench.interrupt import Interrupted, catch_signals

    with catch_signals() as stop:
        with stop.deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            assert stop.requested and stop.signum == signal.SIGTERM
        with pytest.raises(Interrupted) as e:
            os.kill(os.getpid(), signal.SIGINT)  # outside a safe region (and a repeat): at once
    assert e.value.exit_code == 130
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_result_files_follow_the_umask(tmp_path, umask, mode):
    code = (
        f"import os; os.umask({umask})\nfrom pathlib import Path\n"
        "from ebpo_bench.results import atomic_write_json\n"
        f"atomic_write_json(Path({str(tmp_path / 'r.json')!r}), {{'a': 1}})\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == mode
