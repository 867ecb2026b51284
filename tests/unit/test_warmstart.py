"""The warm start is cached by content hash: every arm and seed loads the very same weights."""

from __future__ import annotations

import torch

from ebpo_bench.config.spec import ModelConfig, SyntheticTaskConfig
from ebpo_bench.models import loading as modeling


def _cfg(steps: int = 3) -> ModelConfig:
    return ModelConfig(
        tiny={"layers": 1, "hidden": 32, "heads": 2, "intermediate": 64},
        warm_start={"steps": steps, "batch_size": 8, "levels": [1]},
    )


def test_warm_start_is_trained_once_and_shared(cache_dir, monkeypatch):
    task = SyntheticTaskConfig(topics=["add"])
    m1, _ = modeling.load_policy(_cfg(), task, log=lambda s: None)
    calls = []
    monkeypatch.setattr(
        modeling, "train_warm_start", lambda *a, **k: calls.append(1) or (_ for _ in ()).throw(AssertionError)
    )
    m2, _ = modeling.load_policy(_cfg(), task, log=lambda s: None)
    assert not calls, "a cached warm start must not be retrained"
    s1, s2 = m1.state_dict(), m2.state_dict()
    assert s1.keys() == s2.keys() and all(torch.equal(s1[k], s2[k]) for k in s1)
    # the warm start changed the random initialisation
    from ebpo_bench.models import tiny as tinymodel

    fresh = tinymodel.build_model(
        tinymodel.build_tokenizer(), layers=1, hidden=32, heads=2, intermediate=64, seed=0
    )
    assert any(not torch.equal(fresh.state_dict()[k], s1[k]) for k in s1)
    assert len(list((cache_dir / "warm_start").iterdir())) == 1


def test_cache_key_depends_on_what_determines_the_weights():
    task = SyntheticTaskConfig(topics=["add"])
    k = modeling.warm_start_key(_cfg(3), task)
    assert k == modeling.warm_start_key(_cfg(3), task)
    assert k != modeling.warm_start_key(_cfg(4), task)
    assert k != modeling.warm_start_key(_cfg(3), SyntheticTaskConfig(topics=["add", "sub"]))
