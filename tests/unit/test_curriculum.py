"""Data orderings (ebpo_bench/data/orderings.py, datastream.PromptSource): order, strata, topics,
pre-pass cache."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ebpo_bench.config.spec import DataConfig, FileTaskConfig, SyntheticTaskConfig
from ebpo_bench.data.orderings import (
    difficulty_order,
    hashed_ngrams,
    kmeans,
    read_pass_rates,
    strata_of,
    stratum_histogram,
    topic_order,
)
from ebpo_bench.data.stream import PromptSource, task_pool
from ebpo_bench.data.tasks import Example
from ebpo_bench.eval.prepass import run_prepass
from ebpo_bench.rollout import RolloutBatch


def test_difficulty_order_is_a_stable_descending_sort():
    # pass rates 0.2, 0.9, 0.5, 0.9 -> easiest first; the tie (1, 3) keeps pool order
    assert difficulty_order([0.2, 0.9, 0.5, 0.9]) == [1, 3, 2, 0]


def test_strata_are_quantile_bins_of_the_rank():
    rates = np.array([0.1, 0.8, 0.3, 0.6, 0.0, 0.9, 0.5, 0.2])
    # easy -> hard rank: 0.9(5) 0.8(1) 0.6(3) 0.5(6) 0.3(2) 0.2(7) 0.1(0) 0.0(4); 4 bins of 2
    assert strata_of(rates, 4).tolist() == [3, 0, 2, 1, 3, 0, 1, 2]


def test_stratified_order_goes_easy_to_hard_and_shuffles_inside_bins():
    rates = np.linspace(1.0, 0.0, 40)[np.random.default_rng(0).permutation(40)]
    orders = [difficulty_order(rates, strata=4, seed=s) for s in (0, 1)]
    for order in orders:
        assert sorted(order) == list(range(40))
        bins = [rates[order[i : i + 10]] for i in range(0, 40, 10)]
        for easier, harder in zip(bins, bins[1:]):
            assert easier.min() > harder.max()
    assert orders[0] != orders[1]  # the seed shuffles inside a bin...
    assert set(orders[0][:10]) == set(orders[1][:10])  # ...not across bins


def test_topic_order_makes_labels_contiguous():
    labels = ["b", "a", "c", "a", "b", "c", "a", "b"]
    for seed in range(5):
        order = topic_order(labels, seed)
        assert sorted(order) == list(range(8))
        seq = [labels[i] for i in order]
        blocks = [k for i, k in enumerate(seq) if i == 0 or seq[i - 1] != k]
        assert sorted(blocks) == ["a", "b", "c"]  # each label forms exactly one block


def test_kmeans_on_hashed_ngrams_separates_two_obvious_topics():
    texts = [
        "integral of x squared dx",
        "integral of sin x dx",
        "integral of cos x dx",
        "triangle angle sum degrees",
        "triangle side lengths angle",
        "isosceles triangle angle",
    ]
    ids = kmeans(hashed_ngrams(texts), 2, seed=0)
    assert len(set(ids[:3])) == 1 and len(set(ids[3:])) == 1 and ids[0] != ids[3]


def test_stratum_histogram_counts_by_hand():
    hist = stratum_histogram([1.0, 0.75, 0.5, 0.0], strata=2, bins=4)
    assert hist[0]["prompts"] == 2 and hist[0]["mean_pass_rate"] == pytest.approx(0.875)
    assert hist[0]["histogram"] == [0, 0, 0, 2]  # 0.75 and 1.0 fall in [0.75, 1.0]
    assert hist[1]["histogram"] == [1, 0, 1, 0]


class _Scripted:
    """A rollout backend whose k-th sample of a prompt answers correctly iff k < that prompt's quota."""

    calls: list[int] = []

    def __init__(self, quota):
        self.quota = quota

    def generate(self, prompts, params, *, seed=None):
        _Scripted.calls.append(len(prompts))
        texts = [
            f"\\boxed{{{self.quota[tuple(p)][1] if k < self.quota[tuple(p)][0] else 'x'}}}"
            for p in prompts
            for k in range(params.n)
        ]
        return RolloutBatch(None, None, None, None, None, None, None, texts)


class _Tok:
    def __call__(self, text, add_special_tokens=False):  # one text or a batch, as a transformers tokenizer
        if isinstance(text, list):
            return {"input_ids": [[ord(c) for c in t] for t in text]}
        return {"input_ids": [ord(c) for c in text]}


class _Model:
    def eval(self):
        return self


def test_prepass_pass_rates_cache_and_resume(tmp_path, monkeypatch):
    pool = [Example(id=str(i), prompt=f"q{i}=", answer=str(i)) for i in range(5)]
    quota = {tuple(ord(c) for c in e.prompt): (k, e.answer) for e, k in zip(pool, [0, 1, 2, 3, 4])}
    monkeypatch.setattr("ebpo_bench.rollout.make_backend", lambda name, m, t: _Scripted(quota))
    _Scripted.calls = []
    cache = tmp_path / "p.jsonl"
    kw = dict(
        n_samples=4,
        temperature=1.0,
        max_new_tokens=8,
        fmt="boxed",
        scale="zero_one",
        chunk=2,
        log=lambda m: None,
    )
    rates = run_prepass(pool, _Model(), _Tok(), cache, **kw)
    assert rates == {"0": 0.0, "1": 0.25, "2": 0.5, "3": 0.75, "4": 1.0}
    assert _Scripted.calls == [2, 2, 1]  # chunks of 2 prompts
    assert run_prepass(pool, _Model(), _Tok(), cache, **kw) == rates
    assert _Scripted.calls == [2, 2, 1]  # reused: nothing generated again
    lines = cache.read_text().splitlines()
    cache.write_text("\n".join(lines[:2]) + "\n" + lines[2][:7])  # killed mid-write of the 3rd row
    assert run_prepass(pool, _Model(), _Tok(), cache, **kw) == rates
    assert _Scripted.calls == [2, 2, 1, 2, 1]  # only prompts 2, 3, 4 again
    assert json.loads(cache.read_text().splitlines()[-1])["correct"] == 4


def test_prepass_runs_on_the_real_tiny_model(tmp_path):
    from ebpo_bench.models import tiny as tinymodel

    tok = tinymodel.build_tokenizer()
    model = tinymodel.build_model(tok, layers=1, hidden=16, heads=2, intermediate=32, seed=0)
    pool = task_pool(SyntheticTaskConfig(topics=["add"], train_levels=[1]), DataConfig(pool_size=6))
    rates = run_prepass(
        pool,
        model,
        tok,
        tmp_path / "p.jsonl",
        n_samples=2,
        temperature=1.0,
        max_new_tokens=4,
        fmt="boxed",
        scale="zero_one",
        chunk=4,
        log=lambda m: None,
    )
    assert set(rates) == {e.id for e in pool} and all(r in (0.0, 0.5, 1.0) for r in rates.values())
    assert len(read_pass_rates(tmp_path / "p.jsonl")) == len(pool)


def _drain(src: PromptSource, n: int) -> list[Example]:
    return [e for _ in range(n) for e in src.next(4)]


def test_prompt_source_difficulty_order_from_given_pass_rates():
    task = SyntheticTaskConfig(topics=["add"], train_levels=[1, 2, 3])
    data = DataConfig(order="difficulty", pool_size=24)
    pool = task_pool(task, data)
    rates = {e.id: (hash(e.id) % 97) / 96 for e in pool}
    src = PromptSource(task, data, seed=1, pass_rates=rates)
    got = [rates[e.id] for e in _drain(src, len(pool) // 4)]
    assert got == sorted(got, reverse=True)
    resumed = PromptSource(task, data, seed=1, pass_rates=rates)
    resumed.load_state_dict({"cursor": 8})
    assert [e.id for e in resumed.next(4)] == [
        e.id for e in _drain(PromptSource(task, data, 1, pass_rates=rates), 3)
    ][8:]


def test_prompt_source_level_proxy_and_topic_blocks():
    task = SyntheticTaskConfig(topics=["add", "sub", "mul"], train_levels=[1, 2, 3])
    lv = PromptSource(
        task, DataConfig(order="difficulty", pool_size=60, difficulty={"estimator": "level"}), seed=0
    )
    levels = [e.level for e in _drain(lv, 5)]
    assert levels == sorted(levels)
    tp = PromptSource(task, DataConfig(order="topic", pool_size=60), seed=0)
    seq = [e.topic for e in _drain(tp, len(tp.pool) // 4)]
    assert sum(1 for i in range(1, len(seq)) if seq[i] != seq[i - 1]) == 2  # three contiguous blocks


def test_topic_labels_from_a_file_field(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(
        "".join(
            json.dumps({"problem": f"p{i}", "answer": str(i), "dom": "ab"[i % 2]}) + "\n" for i in range(6)
        )
    )
    task = FileTaskConfig(path=str(path), template="raw")
    src = PromptSource(task, DataConfig(order="topic", topic={"field": "dom"}), seed=0)
    seq = [int(e.answer) % 2 for e in src.next(6)]
    assert seq in ([0, 0, 0, 1, 1, 1], [1, 1, 1, 0, 0, 0])


def test_difficulty_without_prepass_says_what_to_do():
    task = SyntheticTaskConfig(topics=["add"], train_levels=[1])
    with pytest.raises(ValueError, match="pre-pass"):
        PromptSource(task, DataConfig(order="difficulty", pool_size=8), seed=0).next(2)
