"""Tests of the task layer: the synthetic arithmetic family and local-file loading (torch-free)."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import pytest

from ebpo_bench.data.tasks import TASKS, Example, SyntheticTask, files, task_names
from ebpo_bench.data.tasks import synthetic as syn


def _py_value(prompt: str) -> int:
    assert prompt.endswith("=")
    expr = prompt[:-1]
    assert set(expr) <= set("0123456789+-*"), expr  # only then is eval safe
    return eval(expr)  # noqa: S307  (an independent reference for the answers)


# ------------------------------------------------------------------ registry
def test_registry_lists_synthetic():
    assert "synthetic" in task_names()
    assert TASKS.get("synthetic").__name__ == "SyntheticFamily" and set(task_names()) == {
        "synthetic",
        "file",
        "hf",
    }
    with pytest.raises(KeyError, match="Did you mean 'synthetic'"):
        TASKS.get("synthetc")


def test_unknown_topic_and_level_are_rejected():
    with pytest.raises(ValueError, match="Did you mean 'mul'"):
        SyntheticTask(topics=("mull",))
    with pytest.raises(ValueError, match="level 6"):
        SyntheticTask().train_examples(2, levels=[6], rng_seed=0)


def test_task_layer_is_torch_free():
    code = (
        "import sys, ebpo_bench.data.tasks, ebpo_bench.data.tasks.files; "
        "print(sorted(m for m in ('torch', 'transformers', 'pandas', 'datasets') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------ synthetic: content
def test_known_problems_by_hand():
    assert syn.make_example("add", 2, "3+5+2") == Example("add/L2/3+5+2", "3+5+2=", "10", 2, "add")
    assert syn.make_example("sub", 2, "3-5-2").answer == "-4"
    assert syn.make_example("mul", 3, "12*34").answer == "408"
    assert SyntheticTask.sft_target(syn.make_example("sub", 1, "1-9")) == "\\boxed{-8}"


def test_answers_match_python_eval_and_ids_are_stable():
    task = SyntheticTask(seed=3)
    for ex in task.train_examples(300, rng_seed=1):
        assert int(ex.answer) == _py_value(ex.prompt)
        assert ex.id == f"{ex.topic}/L{ex.level}/{ex.prompt[:-1]}"
        assert task.sft_target(ex) == "\\boxed{" + ex.answer + "}"


@pytest.mark.parametrize("level", [1, 2, 3, 4, 5])
def test_level_shapes(level):
    task = SyntheticTask(seed=0)
    exs = task.train_examples(60, levels=[level], rng_seed=level)
    da, db = {1: (1, 1), 2: (2, 1), 3: (2, 2), 4: (3, 2), 5: (3, 3)}[level]
    for ex in exs:
        expr = ex.prompt[:-1]
        assert ex.level == level
        if ex.topic in ("add", "sub"):
            terms = expr.replace("-", "+").split("+")
            assert len(terms) == level + 1 and all(len(t) == 1 for t in terms)
            assert ("-" in expr) == (ex.topic == "sub")
        else:
            a, b = expr.split("*")
            assert (len(a), len(b)) == (da, db)


def test_space_sizes_by_hand():
    assert syn.space_size("add", 1) == 100
    assert syn.space_size("sub", 2) == 1000 * 3  # 3 of the 4 operator strings contain a '-'
    assert syn.space_size("mul", 2) == 90 * 10
    assert len(set(syn.enumerate_problems("sub", 1))) == 100


def test_topics_and_levels_all_appear():
    exs = SyntheticTask(seed=0).train_examples(600, rng_seed=0)
    seen = {(e.topic, e.level) for e in exs}
    assert seen == {(t, lv) for t in ("add", "sub", "mul") for lv in range(1, 6)}


# ------------------------------------------------------------------ synthetic: determinism
def test_same_seed_same_examples_and_step_changes_batch():
    a, b = SyntheticTask(seed=7), SyntheticTask(seed=7)
    assert a.train_examples(20, rng_seed=5) == b.train_examples(20, rng_seed=5)
    assert a.train_examples(20, rng_seed=5) != a.train_examples(20, rng_seed=6)
    assert a.batch(4, 16, seed=1, levels=[3, 4]) == b.batch(4, 16, seed=1, levels=[3, 4])
    assert a.batch(4, 16, seed=1) != a.batch(5, 16, seed=1)
    assert a.batch(4, 16, seed=1) != a.batch(4, 16, seed=2)
    assert a.batch(4, 16, seed=1) != SyntheticTask(seed=8).batch(4, 16, seed=1)


def test_batch_is_independent_of_global_random_state():
    task = SyntheticTask(seed=0)
    first = task.batch(0, 8, seed=0)
    random.seed(123)
    random.random()
    assert task.batch(0, 8, seed=0) == first


def test_eval_split_is_fixed_across_task_seeds_and_prefix_stable():
    a = SyntheticTask(topics=("add", "sub"), seed=0).eval_split(3, 50)
    b = SyntheticTask(topics=("add", "sub"), seed=99).eval_split(3, 50)
    assert a == b and len(a) == 50 and len({e.id for e in a}) == 50
    assert [e.topic for e in a[:4]] == ["add", "sub", "add", "sub"]  # round-robin
    assert SyntheticTask(topics=("add", "sub")).eval_split(3, 20) == a[:20]


def test_small_level_returns_every_heldout_problem_once():
    # level 1 held-out sizes (documented): add 24, sub 22, mul 14 of 100 problems each
    exs = SyntheticTask().eval_split(1, 1000)
    assert len(exs) == 24 + 22 + 14 == len({e.id for e in exs})
    assert len(SyntheticTask().eval_split(1, 1000, topic="add")) == 24


# ------------------------------------------------------------------ synthetic: held-out disjointness
@pytest.mark.parametrize("topic", ["add", "sub", "mul"])
@pytest.mark.parametrize("level", [1, 2, 3, 4, 5])
def test_heldout_disjoint_from_training(topic, level):
    task = SyntheticTask(topics=(topic,), seed=11)
    held = {e.prompt for e in task.eval_split(level, 200, topic=topic)}
    assert held and all(syn.is_heldout(p[:-1]) for p in held)
    train = {e.prompt for s in range(3) for e in task.batch(s, 300, seed=0, levels=[level])}
    assert not held & train
    assert not any(syn.is_heldout(p[:-1]) for p in train)
    if syn.space_size(topic, level) <= syn.ENUMERATE_LIMIT:
        everything = list(syn.enumerate_problems(topic, level))
        n_held = sum(map(syn.is_heldout, everything))
        assert 0 < n_held < len(everything)
        assert len(task.eval_split(level, 10**6, topic=topic)) == n_held


# ------------------------------------------------------------------ files
def test_templates_have_the_documented_wording():
    dapo = files.DAPO_TEMPLATE.format(problem="P?")
    assert dapo.startswith("Solve the following math problem step by step. The last line of your response")
    assert "\n\nP?\n\n" in dapo and dapo.endswith('on its own line after "Answer:".')
    assert files.BOXED_TEMPLATE.format(problem="P?") == (
        "P?\nPlease reason step by step, and put your final answer within \\boxed{}."
    )


def test_jsonl_json_and_template_mapping(tmp_path):
    rows = [{"q": "1+1?", "a": 2, "k": "x1", "src": "s"}, {"q": "Is {x}?", "a": ["7"], "k": "x2", "src": "t"}]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    (tmp_path / "d.json").write_text(json.dumps(rows))
    for name in ("d.jsonl", "d.json"):
        exs = files.load_examples(
            tmp_path / name, prompt_field="q", answer_field="a", id_field="k", template="[{src}] {problem}"
        )
        assert exs == [Example("x1", "[s] 1+1?", "2"), Example("x2", "[t] Is {x}?", "7")]
    exs = files.load_examples(tmp_path / "d.jsonl", prompt_field="q", answer_field="a", max_examples=1)
    assert exs == [Example("0", "1+1?", "2")]


def test_parquet(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    pd.DataFrame({"problem": ["p0", "p1"], "answer": ["1", "2"]}).to_parquet(tmp_path / "d.parquet")
    exs = files.load_examples(tmp_path / "d.parquet", prompt_field="problem", answer_field="answer")
    assert [(e.id, e.prompt, e.answer) for e in exs] == [("0", "p0", "1"), ("1", "p1", "2")]


def test_missing_file_error(tmp_path):
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(FileNotFoundError, match="nope.jsonl") as e:
        files.load_examples(missing, prompt_field="problem", answer_field="answer")
    assert "\n" not in str(e.value)


def test_missing_field_error(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text(json.dumps({"problem": "x", "answer": "1"}) + "\n")
    with pytest.raises(KeyError) as e:
        files.load_examples(p, prompt_field="question", answer_field="answer")
    msg = str(e.value)
    assert "'question'" in msg and str(p) in msg and "problem, answer" in msg
    with pytest.raises(KeyError, match="'level'"):
        files.load_examples(p, prompt_field="problem", answer_field="answer", template="{level}: {problem}")


def test_bad_formats(tmp_path):
    (tmp_path / "d.csv").write_text("a,b\n")
    with pytest.raises(ValueError, match="unsupported data format"):
        files.load_records(tmp_path / "d.csv")
    (tmp_path / "d.json").write_text('{"a": 1}')
    with pytest.raises(ValueError, match="list of objects"):
        files.load_records(tmp_path / "d.json")
    (tmp_path / "b.jsonl").write_text('{"a": 1}\n{oops\n')
    with pytest.raises(ValueError, match="b.jsonl:2"):
        files.load_records(tmp_path / "b.jsonl")


# ------------------------------------------------------------------ files: shipped data
def test_aime24_jsonl(shared_data):
    exs = files.load_examples(
        shared_data / "aime24" / "test.jsonl",
        prompt_field="problem",
        answer_field="answer",
        id_field="id",
        template=files.BOXED_TEMPLATE,
    )
    assert len(exs) == 30
    assert exs[0].id == "60" and exs[0].answer == "204"
    assert exs[0].prompt.startswith("Every morning Aya goes for a $9$-kilometer-long walk")
    assert exs[0].prompt.endswith("put your final answer within \\boxed{}.")


def test_math8k_json_list(shared_data):
    exs = files.load_examples(
        shared_data / "math8k" / "math.8k.json",
        prompt_field="prompt",
        answer_field="answer",
        id_field="id",
        template=files.DAPO_TEMPLATE,
    )
    assert len(exs) == 8523
    assert exs[0].id == "d10e806e-da93-43fd-a9dd-c5018f143037" and exs[0].answer == "118"
    assert "\n\nLet $a$ and $b$ be the two real values" in exs[0].prompt


def test_limr_save_to_disk(shared_data):
    pytest.importorskip("datasets")
    limr = shared_data / "limr"
    train = files.load_examples(
        limr, split="train", prompt_field="context", answer_field="answer", id_field="id"
    )
    assert len(train) == 1389
    assert train[0].prompt.startswith("For how many integer values of $x$") and train[0].answer == "5"
    assert len(files.load_records(limr / "test")) == 272  # a split's own folder works directly
    with pytest.raises(ValueError, match="splits"):
        files.load_records(limr)
