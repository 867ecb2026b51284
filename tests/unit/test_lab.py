"""The estimator lab: closed forms, implied baselines, registry coverage, spec errors, torch-free report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ebpo_bench import estimators as advantages
from ebpo_bench.config.load import SpecError
from ebpo_bench.estimators.base import ESTIMATORS
from ebpo_bench.lab import simulate as sim
from ebpo_bench.lab.policy import initial_logits, train_policy
from ebpo_bench.lab.report import build_lab_report, is_lab_dir
from ebpo_bench.lab.runlab import run_lab
from ebpo_bench.lab.spec import PolicyConfig, load_lab_spec, read_pass_rates

ROOT = Path(__file__).resolve().parents[2]
OFF = {"enabled": False}


def lab_spec(**over) -> dict:
    """A small spec: stats only unless a test turns the other sweeps on."""
    base = {
        "name": "t",
        "kind": "simulation",
        "distributions": {"beta": {"type": "beta", "a": 2.0, "b": 2.0}},
        "stats": {
            "group_sizes": [2],
            "prompts_per_batch": 16,
            "pool_size": 32,
            "batches": 2,
            "seeds": 1,
            "orders": ["shuffled"],
        },
        "penalty": OFF,
        "policy": OFF,
    }
    return {**base, **over}


def stats(folder: Path) -> pd.DataFrame:
    df = pd.read_csv(folder / "estimator_stats.csv")
    return df.groupby(["estimator", "distribution", "order", "G", "metric"]).value.mean()


class OracleEB:
    """A test-only estimator: shrinkage toward a KNOWN Gaussian prior, A = r - V (Thm 3.3's ideal)."""

    name = "oracle_eb"

    def __init__(self, mu: float = 0.5, tau2: float = 0.09, sigma2: float = 0.36) -> None:
        self.mu, self.tau2, self.sigma2 = mu, tau2, sigma2

    def __call__(self, rewards, *, prompt_ids=None, lengths=None):
        G = rewards.shape[1]
        S = (self.sigma2 / G) / (self.sigma2 / G + self.tau2)
        V = (1 - S) * rewards.mean(1, keepdim=True) + S * self.mu
        return rewards - V, {"oracle_eb/shrinkage": S}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


@pytest.fixture
def oracle_registered(monkeypatch):
    monkeypatch.setitem(ESTIMATORS._items, "oracle_eb", OracleEB)
    assert "oracle_eb" in advantages.available()


# ---------------------------------------------------------------- closed forms
@pytest.mark.parametrize("scale,factor", [("zero_one", 1.0), ("plus_minus_one", 4.0)])
def test_group_mean_mse_is_p_one_minus_p_over_g(tmp_path, scale, factor):
    # Beta(2, 2): E[p(1 - p)] = ab / ((a + b)(a + b + 1)) = 4 / 20 = 0.2; on +-1 rewards the variance is 4x
    spec = lab_spec(
        reward_scale=scale,
        estimators={"registered": False, "variants": {"gm": {"type": "grpo"}}},
        stats={
            "group_sizes": [2, 8],
            "prompts_per_batch": 256,
            "pool_size": 512,
            "batches": 20,
            "seeds": 2,
            "orders": ["shuffled"],
        },
    )
    out = run_lab(load_lab_spec(spec), tmp_path, quiet=True)
    s = stats(out)
    ref = pd.read_csv(out / "reference.csv").groupby(["G", "metric"]).value.mean()
    for G in (2, 8):
        want = factor * 0.2 / G
        assert s[("gm", "beta", "shuffled", G, "mse")] == pytest.approx(want, rel=0.05)
        assert abs(s[("gm", "beta", "shuffled", G, "bias")]) < 0.01 * np.sqrt(factor)
        assert ref[(G, "group_mean_mse_closed")] == pytest.approx(want, rel=0.03)
        assert ref[(G, "group_mean_mse")] == pytest.approx(s[("gm", "beta", "shuffled", G, "mse")], rel=1e-9)


def test_gaussian_shrinkage_mse_matches_closed_forms(tmp_path, oracle_registered):
    # theta ~ N(0.5, 0.3^2), r ~ N(theta, 0.6^2): sigma2 = 0.36, tau2 = 0.09
    sigma2, tau2 = 0.36, 0.09
    spec = lab_spec(
        distributions={"g": {"type": "gaussian", "mu": 0.5, "tau": 0.3, "sigma": 0.6}},
        stats={
            "group_sizes": [2, 8],
            "prompts_per_batch": 1024,
            "pool_size": 2048,
            "batches": 4,
            "seeds": 2,
            "orders": ["shuffled"],
        },
    )
    out = run_lab(load_lab_spec(spec), tmp_path, quiet=True)
    s = stats(out)
    for G in (2, 8):
        s_star = (sigma2 / G) / (sigma2 / G + tau2)  # Thm 3.3: MSE (1 - S*) sigma2 / G at the oracle S*
        assert s[("oracle_eb", "g", "shuffled", G, "mse")] == pytest.approx(
            (1 - s_star) * sigma2 / G, rel=0.06
        )
        assert s[("grpo", "g", "shuffled", G, "mse")] == pytest.approx(sigma2 / G, rel=0.06)
        # EBPO's default plug-in: sigma^2 -> sigma2 + tau2 (pooled total), tau^2 -> tau2 + sigma2 / G
        S = ((sigma2 + tau2) / G) / ((sigma2 + tau2) / G + tau2 + sigma2 / G)
        assert s[("ebpo", "g", "shuffled", G, "shrinkage")] == pytest.approx(S, abs=0.02)
        assert s[("ebpo", "g", "shuffled", G, "mse")] == pytest.approx(
            (1 - S) ** 2 * sigma2 / G + S**2 * tau2, rel=0.08
        )
        assert s[("oracle_eb", "g", "shuffled", G, "mse")] < s[("ebpo", "g", "shuffled", G, "mse")]


# ---------------------------------------------------------------- implied baseline and metrics
R = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)


def test_ebpo_raw_baseline_and_all_fail_penalty_by_hand():
    # group means 0, 1/2, 1: mu_glob = 1/2, tau2 = 1/6; all rewards: sigma2 = 1/4;
    # G = 2: S = (1/8)/(1/8 + 1/6) = 3/7
    adv, m = advantages.make("ebpo", adv_norm="none")(R)
    assert m["ebpo/shrinkage"] == pytest.approx(3 / 7)
    b = sim.implied_baseline(R, adv)
    torch.testing.assert_close(b, torch.tensor([3 / 14, 1 / 2, 11 / 14], dtype=torch.float64))
    met = {"ebpo/mu_glob": torch.full((1, 1), 0.5), "ebpo/shrinkage": torch.full((1, 1), 3 / 7)}
    out = sim.batch_metrics(
        R[None, None], adv[None, None], torch.tensor([[[0.1, 0.5, 0.9]]]), 0.0, 1.0, met, "ebpo"
    )
    agg = sim.aggregate(out)
    assert agg["fail_adv"][0] == pytest.approx(-3 / 14)  # Thm 3.2: -S mu_glob
    assert agg["fail_adv_pred"][0] == pytest.approx(-3 / 14)
    assert agg["success_adv"][0] == pytest.approx(3 / 14)  # +S (1 - mu_glob): the all-success side
    assert agg["mse"][0] == pytest.approx(((3 / 14 - 0.1) ** 2 + 0 + (11 / 14 - 0.9) ** 2) / 3)
    assert agg["zero_frac"][0] == 0.0


@pytest.mark.parametrize("name", ["grpo", "grpo_bn", "rloo", "opo", "reinforce_pp_baseline"])
def test_group_relative_baselines_are_the_group_mean(name):
    r = torch.tensor(
        [[1.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0]],
        dtype=torch.float64,
    )
    adv, _ = advantages.make(name)(r)
    torch.testing.assert_close(sim.implied_baseline(r, adv), r.mean(1))


def test_batch_normalised_ebpo_baseline_is_v_plus_the_centring_shift():
    # cumulative prior: the second batch's mean raw advantage is not 0, and the z-score keeps that shift
    raw_est, std_est = (
        advantages.make("ebpo", prior_scope="cumulative", adv_norm=n) for n in ("none", "batch_std")
    )
    for r in (R, torch.tensor([[1.0, 1.0], [1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)):
        raw, _ = raw_est(r)
        adv, _ = std_est(r)
    V = (r - raw)[:, 0]
    assert abs(raw.mean().item()) > 0.05
    torch.testing.assert_close(sim.implied_baseline(r, adv), V + raw.mean())


# ---------------------------------------------------------------- registry coverage and skips
def test_every_registered_estimator_appears_and_refusals_are_recorded(tmp_path, oracle_registered):
    spec = lab_spec(
        stats={
            "group_sizes": [1, 2],
            "prompts_per_batch": 8,
            "pool_size": 16,
            "batches": 2,
            "seeds": 2,
            "orders": ["shuffled"],
        },
        penalty={"means": [0.3, 0.7], "group_size": 2, "prompts_per_batch": 8, "batches": 1, "seeds": 1},
        policy={
            "group_sizes": [2],
            "prompts_per_batch": 4,
            "pool_size": 8,
            "steps": 3,
            "seeds": 2,
            "log_every": 1,
        },
    )
    out = run_lab(load_lab_spec(spec), tmp_path, quiet=True)
    names = set(advantages.available())
    assert "oracle_eb" in names
    for f in ("estimator_stats", "penalty", "learning"):
        assert set(pd.read_csv(out / f"{f}.csv").estimator) == names, f
    rec = json.loads((out / "lab.json").read_text())
    assert rec["kind"] == "simulation" and rec["status"] == "completed" and set(rec["estimators"]) == names
    skipped = pd.read_csv(out / "skipped.csv")
    refused = set(skipped[(skipped.part == "stats") & (skipped.G.astype(str) == "1")].estimator)
    # one G = 1 rule for spec and estimator: only ebpo and spo are defined there
    assert refused == {"grpo", "grpo_bn", "rloo", "jspo", "opo", "reinforce_pp_baseline"}
    assert skipped.reason.str.contains("G >= 2").any()
    st = pd.read_csv(out / "estimator_stats.csv")
    assert set(st[st.G == 1].estimator) == names - refused
    # one sample cannot separate baseline from scale: no MSE at G = 1 for a normalised estimator
    g1 = st[(st.G == 1) & (st.metric == "mse")].set_index(["estimator", "seed"]).value
    assert g1["ebpo"].isna().all()
    assert st[(st.G == 1) & (st.metric == "zero_frac")].value.notna().all()
    report = build_lab_report(out, tmp_path / "reports")
    assert "oracle_eb" in report.read_text()


# ---------------------------------------------------------------- pools, orders, fitted distributions, policy
def test_clustered_order_keeps_topics_contiguous():
    topic = np.repeat(np.arange(3), 10)[None, :]
    rng = np.random.default_rng(0)
    idx = sim.batch_indices(topic, 5, 6, "clustered", rng)  # one epoch of 30
    seq = topic[0, idx[0].reshape(-1)]
    assert sorted(idx[0].reshape(-1).tolist()) == list(range(30))
    assert int((np.diff(seq) != 0).sum()) == 2
    shuffled = topic[0, sim.batch_indices(topic, 5, 6, "shuffled", rng)[0].reshape(-1)]
    assert int((np.diff(shuffled) != 0).sum()) > 2


def test_fitted_distribution_removes_binomial_noise(tmp_path):
    rng = np.random.default_rng(1)
    p = rng.beta(2.0, 6.0, 4000)  # mean 0.25, a + b = 8
    n = np.full(p.shape, 8)
    pd.DataFrame({"correct": rng.binomial(n, p), "n": n}).to_csv(tmp_path / "rates.csv", index=False)
    rate, cnt, _ = read_pass_rates(tmp_path / "rates.csv")
    a, b = sim.fit_beta(rate, cnt)
    assert a / (a + b) == pytest.approx(0.25, abs=0.01)
    assert a + b == pytest.approx(8.0, rel=0.15)  # the raw rates' variance alone would give about 4


def test_fitted_distribution_reads_eval_jsonl(tmp_path):
    rows = [
        {"step": s, "benchmark": bm, "problem_id": pid, "sample": i, "score_correct": ok}
        for s in (1, 2)
        for bm, pid, oks in (("aime", "p1", [1, 0, 0, 0]), ("math", "p2", [1, 1, 1, 0]))
        for i, ok in enumerate(oks if s == 2 else [0, 0, 0, 0])
    ]
    (tmp_path / "eval.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    rate, n, topic = read_pass_rates(tmp_path)  # a run folder holding eval.jsonl; the last step
    assert rate.tolist() == [0.25, 0.75] and n.tolist() == [4, 4] and topic.tolist() == ["aime", "math"]
    spec = lab_spec(distributions={"fit": {"type": "fitted", "path": str(tmp_path), "fit": "empirical"}})
    values, topics = sim.draw_pool(load_lab_spec(spec).distributions["fit"], 2, 50, np.random.default_rng(0))
    assert set(np.unique(values)) <= {0.25, 0.75} and set(np.unique(topics)) == {0, 1}


def test_policy_starts_at_p0_and_learns():
    p0 = np.array([[0.2, 0.5, 0.9], [0.3, 0.3, 0.3]])
    logits = initial_logits(p0, 4, 1.0, np.random.default_rng(0))
    torch.testing.assert_close(logits.softmax(-1)[..., 0], torch.from_numpy(p0))
    cfg = PolicyConfig(
        prompts_per_batch=3, pool_size=3, steps=30, lr=20.0, seeds=2, log_every=10, group_sizes=[8]
    )
    for param in ("per_prompt", "skill"):
        cur = train_policy(
            lambda: advantages.make("grpo"),
            cfg.model_copy(update={"parameterisation": param}),
            p0,
            np.zeros((2, 3), dtype=int),
            8,
            "zero_one",
            np.random.default_rng(0),
        )
        assert cur.steps.tolist() == [0, 10, 20, 30]
        assert cur.success[:, 0] == pytest.approx(p0.mean(1))
        assert (cur.success[:, -1] > cur.success[:, 0] + 0.05).all(), param


# ---------------------------------------------------------------- spec validation
@pytest.mark.parametrize(
    "over,needles",
    [
        ({"kind": "train"}, ["kind", "simulation"]),
        ({"estimator": {}}, ["estimator: unknown field", "Did you mean 'estimators'"]),
        ({"distributions": {"b": {"type": "beta", "aa": 1.0}}}, ["distributions.b.aa", "Did you mean 'a'"]),
        ({"distributions": {"b": {"type": "betta"}}}, ["distributions.b.type", "Did you mean 'beta'"]),
        (
            {"estimators": {"variants": {"e2": {"type": "ebpo", "prior_scop": "batch"}}}},
            ["estimators.variants.e2.prior_scop", "prior_scope"],
        ),
        (
            {"estimators": {"variants": {"e2": {"type": "ebpo", "prior_scope": "global"}}}},
            ["prior_scope", "cumulative"],
        ),
        ({"estimators": {"variants": {"ebpo": {"type": "ebpo"}}}}, ["shadow"]),
        ({"policy": {"distribution": "bta"}}, ["policy.distribution 'bta'", "Did you mean 'beta'"]),
        ({"policy": {}, "distributions": {"g": {"type": "gaussian"}}}, ["Bernoulli"]),
        ({"distributions": {"f": {"type": "fitted", "path": "/nonexistent/eval.jsonl"}}}, ["no file"]),
        ({"stats": {"pool_size": 8, "prompts_per_batch": 16}}, ["stats", "pool_size=8"]),
    ],
)
def test_bad_specs_raise_one_clear_message(over, needles):
    with pytest.raises(SpecError) as e:
        load_lab_spec(lab_spec(**over), source="bad.yaml")
    msg = str(e.value)
    assert msg.startswith("bad.yaml: ") and "\n" not in msg, msg
    for n in needles:
        assert n in msg, msg


def test_shipped_spec_declares_every_default_and_loads_without_torch():
    code = (
        "import sys; from ebpo_bench.lab.spec import load_lab_spec; "
        "s = load_lab_spec('specs/estimator_lab.yaml');"
        "assert 'torch' not in sys.modules; print(s.kind, len(s.distributions), s.policy.seeds)"
    )
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    kind, n_dist, seeds = p.stdout.split()
    assert kind == "simulation" and int(n_dist) >= 3 and int(seeds) >= 20
    spec = load_lab_spec(ROOT / "specs" / "estimator_lab.yaml")
    assert spec.stats.group_sizes == [2, 4, 8, 16, 32] and "clustered" in spec.stats.orders


# ---------------------------------------------------------------- report
REPORT = (
    "import sys; from pathlib import Path; from ebpo_bench.lab.report import build_lab_report;"
    "p = build_lab_report(Path(sys.argv[1]), Path(sys.argv[2])); assert 'torch' not in sys.modules, 'torch';"
    "print(p)"
)


def test_report_is_torch_free_with_claims_and_real_figures(tmp_path):
    spec = lab_spec(
        distributions={"topics": {"type": "topic_mixture", "topics": [{"mean": 0.2}, {"mean": 0.8}]}},
        estimators={
            "registered": False,
            "variants": {
                "eb": {"type": "ebpo"},
                "gr": {"type": "grpo"},
                "eb_raw": {"type": "ebpo", "adv_norm": "none"},
            },
        },
        stats={"group_sizes": [2, 4], "prompts_per_batch": 16, "pool_size": 32, "batches": 3, "seeds": 2},
        penalty={
            "means": [0.2, 0.5, 0.8],
            "group_size": 4,
            "prompts_per_batch": 16,
            "batches": 1,
            "seeds": 2,
        },
        policy={
            "group_sizes": [4],
            "prompts_per_batch": 8,
            "pool_size": 16,
            "steps": 6,
            "seeds": 3,
            "log_every": 2,
        },
    )
    out = run_lab(load_lab_spec(spec), tmp_path / "results", quiet=True)
    assert is_lab_dir(out) and not is_lab_dir(tmp_path)
    p = subprocess.run(
        [sys.executable, "-c", REPORT, str(out), str(tmp_path / "reports")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    report = Path(p.stdout.strip())
    text = report.read_text()
    for needle in (
        "## Claims",
        "Thm 3.3",
        "Thm 3.2",
        "Cor 3.5",
        "Prop 3.6",
        "Prop 3.8",
        "all-success",
        "implied baseline",
    ):
        assert needle in text, needle
    import matplotlib.image as mpimg

    figs = report.parent / "figures"
    for name in (
        "mse_vs_group_size",
        "zero_signal_vs_group_size",
        "failure_penalty",
        "learning_success",
        "learning_entropy",
        "prior_error",
    ):
        assert (figs / f"{name}.svg").stat().st_size > 5000, name
        img = mpimg.imread(figs / f"{name}.png")
        ink = (img[..., :3].mean(-1) < 0.9).mean()  # share of non-white pixels
        assert img.shape[0] > 200 and 0.01 < ink < 0.9, (name, ink)
    claims = pd.read_csv(report.parent / "tables" / "claims.csv")
    assert len(claims) == 7 and set(claims.verdict) <= {
        "supported",
        "partly supported",
        "not supported",
        "not tested",
        "observed",
        "not observed",
    }
