"""Data orderings of ``data.order``: difficulty curricula (with a cached pre-pass) and topic blocks.

- ``difficulty``: each training prompt's pass rate under the *base* model over ``n_samples``
  samples (the paper's EBPO-diff: 16 samples at T = 1.0), then easy -> hard (descending pass
  rate). With ``strata = k > 1`` the prompts are cut into k quantile bins of pass rate, the bins go
  easy -> hard and prompts are shuffled (per seed) inside a bin; with k = 1 the order is a strict
  sort, ties kept in pool order. The pre-pass runs through the rollout backend and the math
  verifier, is appended chunk by chunk to ``<results>/<exp>/_prepass/<key>.jsonl`` (resumable:
  done ids are skipped) and is reused by every run with the same model, task and pre-pass settings.
- ``difficulty`` with ``estimator: level`` uses the task's own level label instead (synthetic task
  only). This is a cheap proxy for CPU checks, *not* the paper's method.
- ``topic``: topic-contiguous batches. Labels come from the data (``Example.topic`` or a record
  field of a file task); without labels the prompts are clustered. The default features are hashed
  character 3-grams + k-means (offline, deterministic). The paper used GPT-4.1 labels (9 domains)
  and the authors' later code BERTopic over all-MiniLM-L6-v2 embeddings; neither is reproduced
  here exactly (``embedding: sentence_transformers`` uses the same embedding model when installed,
  but k-means without UMAP). Block order and order inside a block are shuffled per seed and epoch.

The pre-pass needs the policy model, which ``PromptSource`` does not have; ``cli run`` therefore
computes every needed pre-pass before training and registers the files here (``register``), and
``PromptSource`` looks them up by (task, data) config (``lookup``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ebpo_bench.data.tasks import Example


# ---------------------------------------------------------------- keys
def _blob(obj: Any) -> str:
    dump = obj.model_dump(mode="json") if hasattr(obj, "model_dump") else obj
    return json.dumps(dump, sort_keys=True, separators=(",", ":"))


def source_key(task_cfg: Any, data_cfg: Any) -> str:
    """Key of a prompt source (task + data config), 16 hex digits."""
    return hashlib.sha256((_blob(task_cfg) + _blob(data_cfg)).encode()).hexdigest()[:16]


def prepass_key(model_cfg: Any, task_cfg: Any, data_cfg: Any, reward_cfg: Any, max_new_tokens: int) -> str:
    """Key of a pre-pass: everything that changes a pass rate (model, task, pre-pass knobs, grading)."""
    diff = data_cfg.difficulty.model_dump(mode="json")
    diff.pop("strata")  # strata only re-bins the same pass rates: the cache is shared across them
    parts = [
        _blob(model_cfg),
        _blob(task_cfg),
        _blob(diff),
        _blob(reward_cfg),
        str(max_new_tokens),
        str(data_cfg.pool_size),
    ]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


# ---------------------------------------------------------------- pre-pass
def prepass_file(exp_dir: Path, run: Any) -> Path:
    """Where the difficulty pre-pass of ``run`` lives: ``<exp_dir>/_prepass/<prepass_key>.jsonl``."""
    d = run.data
    max_new = d.difficulty.max_new_tokens or run.rollout.max_new_tokens
    return Path(exp_dir) / "_prepass" / f"{prepass_key(run.model, run.task, d, run.reward, max_new)}.jsonl"


def read_pass_rates(path: Path) -> dict[str, float]:
    """id -> pass rate from a pre-pass file (a truncated last line from a kill is ignored)."""
    out: dict[str, float] = {}
    if not Path(path).exists():
        return out
    for line in Path(path).read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        out[str(row["id"])] = float(row["pass_rate"])
    return out


def strata_of(rates: np.ndarray, strata: int) -> np.ndarray:
    """Stratum (0 = easiest) of each prompt: quantile bins of the easy -> hard rank.

    Args:
        rates: (N,) pass rates.
        strata: number of bins k; bin sizes differ by at most one.

    Returns:
        (N,) ints in [0, k).
    """
    n = len(rates)
    rank = np.empty(n, dtype=np.int64)
    rank[np.argsort(-rates, kind="stable")] = np.arange(n)
    return (rank * strata) // max(n, 1)


def difficulty_order(rates: Sequence[float], strata: int = 1, seed: int = 0) -> list[int]:
    """Easy -> hard permutation of a pool from its pass rates.

    Args:
        rates: (N,) pass rates in pool order.
        strata: 1 = strict descending sort (stable); k > 1 = k quantile bins easy -> hard, shuffled
            inside each bin with ``seed``.
        seed: shuffle seed (ignored when strata = 1).

    Returns:
        Pool indices in training order.
    """
    r = np.asarray(rates, dtype=float)
    if strata <= 1:
        return np.argsort(-r, kind="stable").tolist()
    tie = np.random.default_rng(seed).permutation(len(r))  # random position inside a bin
    return np.lexsort((tie, strata_of(r, strata))).tolist()


def topic_order(labels: Sequence[Any], seed: int = 0) -> list[int]:
    """Topic-contiguous permutation: blocks in a seeded order, a seeded order inside each block.

    Args:
        labels: (N,) topic label per pool entry (any hashable).
        seed: shuffle seed (callers pass a new one per epoch).

    Returns:
        Pool indices in training order; equal labels are contiguous.
    """
    rng = np.random.default_rng(seed)
    names = sorted({str(x) for x in labels})
    block_rank = {name: i for i, name in enumerate(rng.permutation(len(names)).tolist())}
    pos = {name: i for i, name in enumerate(names)}
    block = np.array([block_rank[pos[str(x)]] for x in labels], dtype=np.int64)
    return np.lexsort((rng.permutation(len(labels)), block)).tolist()


def hashed_ngrams(texts: Sequence[str], dim: int = 512, n: int = 3) -> np.ndarray:
    """(N, dim) L2-normalised counts of hashed character n-grams: offline text features."""
    feats = np.zeros((len(texts), dim))
    for i, t in enumerate(texts):
        t = f" {t.lower()} "
        idx = [
            int(hashlib.md5(t[j : j + n].encode()).hexdigest()[:8], 16) % dim for j in range(len(t) - n + 1)
        ]
        np.add.at(feats[i], idx, 1.0)
    return feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)


def _sq_dist(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    """(N, K) squared distances via |x|^2 - 2 x.c + |c|^2 (no (N, K, D) temporary for 17k prompts)."""
    return np.maximum((x * x).sum(1)[:, None] - 2 * x @ c.T + (c * c).sum(1)[None], 0.0)


def kmeans(x: np.ndarray, k: int, seed: int = 0, iters: int = 50) -> np.ndarray:
    """(N,) cluster ids of the rows of ``x`` (N, D): k-means++ seeding, Lloyd iterations."""
    rng = np.random.default_rng(seed)
    k = min(k, len(x))
    c = x[[rng.integers(len(x))]]
    while len(c) < k:
        d2 = _sq_dist(x, c).min(1)
        pick = rng.choice(len(x), p=d2 / d2.sum()) if d2.sum() > 0 else rng.integers(len(x))
        c = np.vstack([c, x[pick]])
    for _ in range(iters):
        assign = _sq_dist(x, c).argmin(1)
        onehot = np.eye(k)[assign]  # (N, K): centroid update as one matrix product
        counts = onehot.sum(0)[:, None]
        new = np.where(counts > 0, onehot.T @ x / np.maximum(counts, 1), c)
        if np.allclose(new, c):
            break
        c = new
    return _sq_dist(x, c).argmin(1)


def embed(texts: Sequence[str], kind: str) -> np.ndarray:
    """Text features for clustering: ``hashed_ngrams`` or ``sentence_transformers`` (MiniLM)."""
    if kind == "sentence_transformers":
        from sentence_transformers import SentenceTransformer  # optional; weights must be local

        return np.asarray(
            SentenceTransformer("all-MiniLM-L6-v2").encode(list(texts), normalize_embeddings=True)
        )
    return hashed_ngrams(texts)


def topic_labels(pool: Sequence[Example], topic_cfg: Any, task_cfg: Any) -> list[str]:
    """A topic label per pool entry: from the data when it has them, else k-means clusters."""
    field = topic_cfg.field
    if field == "topic" and pool and all(e.topic is not None for e in pool):
        return [str(e.topic) for e in pool]
    if field and getattr(task_cfg, "type", None) == "file":
        from ebpo_bench.data.tasks.files import load_records

        recs = load_records(task_cfg.path)
        key = task_cfg.id_field
        by_id = {str(r.get(key) if key else i): r for i, r in enumerate(recs)}
        labels = [by_id.get(e.id, {}).get(field) for e in pool]
        if all(x is not None for x in labels):
            return [str(x) for x in labels]
    ids = kmeans(embed([e.prompt for e in pool], topic_cfg.embedding), topic_cfg.n_clusters)
    return [f"cluster{int(i)}" for i in ids]


# ---------------------------------------------------------------- summaries
def stratum_histogram(rates: Sequence[float], strata: int, bins: int = 10) -> list[dict]:
    """Per stratum: prompt count, mean pass rate and a histogram over ``bins`` equal bins of [0, 1]."""
    r = np.asarray(rates, dtype=float)
    s = strata_of(r, max(strata, 1))
    out = []
    for k in range(max(strata, 1)):
        sub = r[s == k]
        counts, _ = np.histogram(sub, bins=bins, range=(0.0, 1.0))
        out.append(
            {
                "stratum": k,
                "prompts": int(sub.size),
                "mean_pass_rate": float(sub.mean()) if sub.size else None,
                "histogram": counts.tolist(),
            }
        )
    return out


def histogram_markdown(hist: list[dict], bins: int = 10) -> str:
    """A markdown table of ``stratum_histogram`` (columns are pass-rate bins)."""
    edges = [f"{i / bins:.1f}-{(i + 1) / bins:.1f}" for i in range(bins)]
    lines = ["| stratum | prompts | mean pass rate | " + " | ".join(edges) + " |", "|---" * (bins + 3) + "|"]
    for h in hist:
        mean = "" if h["mean_pass_rate"] is None else f"{h['mean_pass_rate']:.3f}"
        lines.append(
            f"| {h['stratum']} | {h['prompts']} | {mean} | " + " | ".join(map(str, h["histogram"])) + " |"
        )
    return "\n".join(lines)


def write_summary(cache: Path, rates: Sequence[float], strata: int) -> Path:
    """``<cache>.summary.json`` and ``.md`` beside the pre-pass file (pass-rate histogram per stratum)."""
    hist = stratum_histogram(rates, strata)
    base = Path(cache).with_suffix("")
    Path(f"{base}.summary.json").write_text(
        json.dumps({"strata": strata, "prompts": len(rates), "per_stratum": hist}, indent=1)
    )
    md = Path(f"{base}.summary.md")
    md.write_text(f"# Difficulty pre-pass: pass rate per stratum (easy = 0)\n\n{histogram_markdown(hist)}\n")
    return md
