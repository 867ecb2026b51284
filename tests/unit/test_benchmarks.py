"""Benchmark registry, data-dir resolution, gold normalisation, the scripted stand-in through the native
grading path (on a sample of every benchmark), sampling presets and the generated lm-eval task files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from doubles import scripted as S

from ebpo_bench.data.answers import canonical_gold, score_one, verify_answer
from ebpo_bench.data.rewards import MathVerifier
from ebpo_bench.eval import benchmarks as B
from ebpo_bench.eval.command import resolve_settings
from ebpo_bench.eval.metrics import summarize
from ebpo_bench.eval.sampling import evaluate

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
SAMPLE = 30  # problems per benchmark in the unit tests; the integration test checks every record
COUNTS = {
    "aime24": 30,
    "aime25": 30,
    "amc23": 40,
    "math500": 500,
    "olympiadbench": 675,
    "minerva_math": 272,
    "gsm8k": 1319,
}


@pytest.fixture(scope="module")
def verifier():
    with MathVerifier(workers=2) as v:
        yield v


@pytest.fixture(scope="module")
def samples():
    if not SHARED_DATA.exists():
        pytest.skip("../shared/data is not present")
    return {name: B.load_benchmark(name, SHARED_DATA, limit=SAMPLE) for name in COUNTS}


def test_registry_lists_every_benchmark():
    assert B.BENCHMARKS.names() == sorted(COUNTS)
    assert B.get_benchmark("olympiadbench").paper_n == 4
    assert {B.get_benchmark(n).paper_n for n in B.PAPER_BENCHMARKS if n != "olympiadbench"} == {16}


def test_unknown_benchmark_suggests_the_closest_name():
    with pytest.raises(KeyError, match="Did you mean 'aime24'"):
        B.load_benchmark("aime2024")


def test_missing_file_names_the_benchmark_and_the_path(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        B.load_benchmark("math500", data_dir=tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and "'math500'" in msg and str(tmp_path / "math500" / "test.jsonl") in msg


def test_data_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv(B.DATA_ENV, str(tmp_path / "env"))
    assert B.data_dir_candidates(tmp_path / "arg") == [tmp_path / "arg"]
    assert B.data_dir_candidates() == [tmp_path / "env"]
    monkeypatch.delenv(B.DATA_ENV)
    assert B.data_dir_candidates()[0] == Path.cwd().parent / "shared" / "data"


def test_record_counts_and_ids(shared_data):
    for name, count in COUNTS.items():
        examples = B.load_benchmark(name, shared_data)
        assert len(examples) == count, name
        assert len({e.id for e in examples}) == count, f"{name}: problem ids are not unique"
    assert len(B.load_benchmark("math500", shared_data, limit=7)) == 7


def test_aime_zero_padded_gold_equals_the_integer(shared_data):
    aime = B.load_benchmark("aime24", shared_data)
    assert aime[7].answer == "25"  # the file says "025"
    assert score_one("so \\boxed{25}", "025") and score_one("\\boxed{025}", "25")
    assert not score_one("\\boxed{250}", "025")


@pytest.mark.parametrize(
    "raw,gold",
    [
        ("025", "25"),
        ("073", "73"),
        ("0", "0"),
        (27.0, "27"),
        ("-007", "-7"),
        ("3.5", "3.5"),
        ("\\frac{1}{2}", "\\frac{1}{2}"),
    ],
)
def test_integer_gold(raw, gold):
    assert B.integer_gold(raw) == gold


def test_olympiad_gold_and_context():
    assert B.olympiad_gold("['2']") == "2"
    assert B.olympiad_gold(["$\\frac{1}{2 n+2}$"]) == "\\frac{1}{2 n+2}"
    assert B.olympiad_gold(["$f(n)=n$, $g(n)=1$"]) == "f(n)=n, g(n)=1"
    assert B.olympiad_gold("['$3$', '$5$']") == "3, 5"
    bench = B.get_benchmark("olympiadbench")
    rec = {"id": 9, "context": "A sequence is given.", "question": "Find $a_2$.", "final_answer": ["$4$"]}
    ex = B.to_example(bench, rec, 0)
    assert ex.id == "9" and ex.answer == "4"
    assert ex.prompt.startswith("A sequence is given.\n\nFind $a_2$.")
    assert B.to_example(bench, dict(rec, context=None), 0).prompt.startswith("Find $a_2$.")


def test_minerva_and_gsm8k_golds(shared_data):
    assert B.minerva_gold("so $s=\\boxed{1.6} \\mathrm{~cm}$ and \\boxed{\\frac{a}{b}}") == "\\frac{a}{b}"
    assert B.gsm8k_gold("Thus 2,000 + 125\n#### 2,125") == "2125"
    assert B.load_benchmark("minerva_math", shared_data, limit=1)[0].answer == "1.6"
    assert B.load_benchmark("gsm8k", shared_data, limit=1)[0].answer == "18"


def test_templates(shared_data):
    boxed = B.load_benchmark("aime25", shared_data, limit=1)[0].prompt
    dapo = B.load_benchmark("aime25", shared_data, limit=1, template="dapo")[0].prompt
    problem = "Find the sum of all integer bases $b>9$ for which $17_b$ is a divisor of $97_b.$"
    assert problem in boxed and problem in dapo
    assert "\\boxed{}" in boxed and "Answer:" in dapo
    with pytest.raises(ValueError, match="template"):
        B.load_benchmark("aime25", shared_data, template="chat")


def test_wrong_answer_matches_no_gold(shared_data):
    for name in COUNTS:
        assert all(e.answer != S.WRONG_ANSWER for e in B.load_benchmark(name, shared_data))


def _scripted_avg(examples, correct, verifier, style="boxed") -> float:
    model, tok = S.ScriptedModel(S.script(examples, correct, style)), S.ScriptedTokenizer()
    rows = evaluate(
        model,
        tok,
        {"b": examples},
        verifier=verifier,
        n=2,
        temperature=1.0,
        top_p=1.0,
        max_new_tokens=8,
        seed=0,
        chat_template=False,
        keep_text=True,
        step=0,
        backend="scripted",
    )
    assert len(rows) == 2 * len(examples)
    return summarize(rows)["b"]["avg@2"]


def test_scripted_model_scores_half_and_all_on_every_benchmark(samples, verifier):
    for name, examples in samples.items():
        assert _scripted_avg(examples, S.even_index, verifier) == pytest.approx(15 / 30), name
        assert _scripted_avg(examples, lambda i, e: True, verifier) == 1.0, name
        assert _scripted_avg(examples, lambda i, e: False, verifier) == 0.0, name


def test_scripted_answer_line_style_is_graded_by_the_dapo_format(shared_data):
    examples = B.load_benchmark("math500", shared_data, limit=10, template="dapo")
    with MathVerifier(fmt=B.GRADE_FORMAT["dapo"]) as ver:
        assert _scripted_avg(examples, S.even_index, ver, style="answer_line") == 0.5


def test_gold_self_verification_sample(samples, shared_data):
    """A sample of golds verifies against itself through math-verify itself (no fast path); OlympiadBench id
    1970 (an interval with a trailing period) is included on purpose. Every record: integration test."""
    olympiad = B.load_benchmark("olympiadbench", shared_data)
    extra = [e for e in olympiad if e.id == "1970"]
    for name, examples in samples.items():
        for e in examples + (extra if name == "olympiadbench" else []):
            gold = canonical_gold(e.answer)
            assert verify_answer(gold, gold), f"{name} {e.id}: {e.answer!r}"


def test_presets_and_explicit_overrides():
    benches = ["aime24", "olympiadbench"]
    paper = resolve_settings(benches, preset="paper")
    assert paper["n"] == {"aime24": 16, "olympiadbench": 4}
    assert (paper["temperature"], paper["top_p"], paper["template"]) == (1.0, 1.0, "dapo_eval")
    assert paper["grader"] == "paper_exact"  # the authors' eval prompt and grading rule
    assert resolve_settings(benches, preset="paper", template="boxed")["template"] == "boxed"
    assert resolve_settings(benches, preset="paper", grader="math_verify")["grader"] == "math_verify"
    with pytest.raises(ValueError, match="grader"):
        resolve_settings(benches, grader="exact")
    mixed = resolve_settings(benches, preset="qwen_eval", n=4, max_new_tokens=32)
    assert mixed["n"] == {"aime24": 4, "olympiadbench": 4}
    assert (mixed["temperature"], mixed["top_p"], mixed["max_new_tokens"]) == (0.6, 0.95, 32)
    default = resolve_settings(benches)
    assert default["n"] == {"aime24": 1, "olympiadbench": 1} and default["temperature"] == 0.0
    assert default["template"] == "boxed" and default["grader"] == "math_verify"
    with pytest.raises(KeyError, match="Did you mean 'paper'"):
        resolve_settings(benches, preset="papre")


def test_parse_names():
    assert B.parse_names("aime24, math500") == ["aime24", "math500"]
    assert B.parse_names("all") == list(B.PAPER_BENCHMARKS)
    with pytest.raises(KeyError):
        B.parse_names("aime24,gsm9k")


def test_ls_lines_mark_missing_files(tmp_path, shared_data):
    lines = B.ls_lines(tmp_path)
    assert len(lines) == len(COUNTS) and all("(missing)" in line for line in lines)
    assert all("(present)" in line for line in B.ls_lines(shared_data))


def test_generated_lmeval_tasks(tmp_path, shared_data):
    from ebpo_bench.eval import lmeval

    names = lmeval.write_tasks(
        ["aime24", "olympiadbench"],
        tmp_path,
        data_dir=shared_data,
        n={"aime24": 3, "olympiadbench": 1},
        temperature=0.6,
        top_p=0.95,
        max_gen_toks=64,
    )
    assert names == {"aime24": "ebpo_aime24", "olympiadbench": "ebpo_olympiadbench"}
    text = (tmp_path / "ebpo_aime24.yaml").read_text()
    assert f"test: {shared_data.resolve() / 'aime24' / 'test.jsonl'}" in text
    assert "repeats: 3" in text and "k: 3" in text and "do_sample: true" in text and "top_p: 0.95" in text
    assert "process_results: !function ebpo_utils.process_results_with_exact_match" in text
    assert "exact_match" not in (tmp_path / "ebpo_olympiadbench.yaml").read_text().split("process_docs")[0]
    assert (
        "docs_olympiadbench = make_process_docs('olympiadbench', 'boxed')"
        in (tmp_path / "ebpo_utils.py").read_text()
    )


def test_lmeval_docs_match_native_examples(shared_data):
    """process_docs gives lm-eval the very prompts and golds of the native harness."""
    import datasets

    from ebpo_bench.eval import lmeval

    path = shared_data / "amc23" / "test.jsonl"
    raw = datasets.Dataset.from_list([json.loads(line) for line in path.read_text().splitlines()[:5]])
    docs = lmeval.make_process_docs("amc23", "boxed")(raw)
    native = B.load_benchmark("amc23", shared_data, limit=5)
    assert [(d["id"], d["prompt"], d["answer"]) for d in docs] == [(e.id, e.prompt, e.answer) for e in native]
    assert docs[0]["raw_answer"] == "27.0" and docs[0]["answer"] == "27"


def test_lmeval_metrics_show_the_string_comparison_difference():
    from ebpo_bench.eval import lmeval

    doc = {"answer": "25", "raw_answer": "025", "grade_format": "auto"}
    right, wrong = S.respond("25"), S.respond("26")
    out = lmeval.process_results_with_exact_match(doc, [[right, wrong]])
    assert out == {"math_verify": 0.5, "exact_match": 0.0}  # lm-eval compares "25" with "025" as strings
    assert lmeval.process_results_with_exact_match(dict(doc, raw_answer="25"), [right])["exact_match"] == 1.0
