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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ebpo_bench.data.tasks import Example

#: (task json, data json) -> pass-rate file, filled by ``cli run`` before training
_REGISTRY: dict[str, Path] = {}


# ---------------------------------------------------------------- keys and registry
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


def register(task_cfg: Any, data_cfg: Any, path: Path) -> None:
    """Make a pass-rate file the one ``PromptSource`` uses for this (task, data) config."""
    key = source_key(task_cfg, data_cfg)
    if key in _REGISTRY and Path(_REGISTRY[key]) != Path(path):
        raise ValueError(
            "two runs share task and data settings but have different base models; "
            "difficulty orders need one base model per spec (use sibling specs)"
        )
    _REGISTRY[key] = Path(path)


def lookup(task_cfg: Any, data_cfg: Any) -> Path | None:
    return _REGISTRY.get(source_key(task_cfg, data_cfg))


# ---------------------------------------------------------------- pre-pass
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


def _drop_partial_line(path: Path) -> None:
    """Cut a half-written last row (a kill mid-append) so the next append starts on a fresh line."""
    if path.exists():
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            path.write_bytes(data[: data.rfind(b"\n") + 1])


def run_prepass(
    examples: Sequence[Example],
    model: Any,
    tok: Any,
    cache: Path,
    *,
    n_samples: int,
    temperature: float,
    max_new_tokens: int,
    fmt: str,
    scale: str,
    chunk: int = 64,
    seed: int = 0,
    chat_template: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, float]:
    """Estimate each example's pass rate with ``model`` over ``n_samples`` samples; cached, resumable.

    Args:
        examples: the prompt pool (ids must be unique).
        model, tok: the base policy and its tokenizer (sampling via the 'hf' rollout backend).
        cache: JSONL file; one row per prompt ``{id, n, correct, pass_rate, level, topic}``,
            appended after every chunk, so a killed pre-pass resumes where it stopped.
        n_samples, temperature, max_new_tokens: sampling of the pre-pass.
        fmt, scale: answer format and reward scale of the verifier (correct = ``RewardResult.correct``).
        chunk: prompts per generation call and per append.
        seed: sampling seed; chunk c uses ``seed + c`` so a resumed pre-pass draws the same samples.

    Returns:
        id -> pass rate in [0, 1] for every example.
    """
    from ebpo_bench.data.rewards import MathVerifier
    from ebpo_bench.rollout import SamplingParams, encode_prompts, make_backend

    cache = Path(cache)
    cache.parent.mkdir(parents=True, exist_ok=True)
    _drop_partial_line(cache)
    done = read_pass_rates(cache)
    todo = [(i, e) for i, e in enumerate(examples) if e.id not in done]
    if todo:
        log(f"difficulty pre-pass: {len(todo)} of {len(examples)} prompts x {n_samples} samples -> {cache}")
    backend = make_backend("hf", model, tok)
    params = SamplingParams(
        n=n_samples, temperature=temperature, top_p=1.0, max_new_tokens=max_new_tokens, logprobs=False
    )
    model.eval()
    with MathVerifier(fmt=fmt, scale=scale) as ver:
        for c in range(0, len(todo), chunk):
            part = [e for _, e in todo[c : c + chunk]]
            ids = encode_prompts(tok, [e.prompt for e in part], chat_template)
            out = backend.generate(ids, params, seed=seed + todo[c][0])
            golds = [e.answer for e in part for _ in range(n_samples)]
            correct = np.array([r.correct for r in ver.score(out.texts, golds)], dtype=float)
            correct = correct.reshape(len(part), n_samples).sum(1)  # rows are prompt-major (P, n)
            rows = [
                {
                    "id": e.id,
                    "n": n_samples,
                    "correct": int(k),
                    "pass_rate": k / n_samples,
                    "level": e.level,
                    "topic": e.topic,
                }
                for e, k in zip(part, correct)
            ]
            with cache.open("a") as f:  # one write per chunk: a kill loses at most this chunk
                f.write("".join(json.dumps(r) + "\n" for r in rows))
                f.flush()
    return read_pass_rates(cache)


# ---------------------------------------------------------------- orderings
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


# ---------------------------------------------------------------- driver (cli run)
def prepare_orderings(runs: Sequence[Any], root: Path, log: Callable[[str], None] = print) -> list[Path]:
    """Compute (or reuse) the difficulty pre-pass of every run that needs one, and register it.

    One pre-pass per distinct key (model, task, pre-pass settings, grading), stored under
    ``<root>/<experiment>/_prepass/<key>.jsonl`` with ``.summary.json`` / ``.summary.md`` beside
    it. Runs with other orders, or ``estimator: level``, need nothing.

    Returns:
        The summary markdown files written.
    """
    written: list[Path] = []
    for run in runs:
        d = run.data
        if d.order != "difficulty" or d.difficulty.estimator != "prepass":
            continue
        max_new = d.difficulty.max_new_tokens or run.rollout.max_new_tokens
        key = prepass_key(run.model, run.task, d, run.reward, max_new)
        cache = Path(root) / run.name / "_prepass" / f"{key}.jsonl"
        register(run.task, d, cache)
        summary = Path(f"{cache.with_suffix('')}.summary.md")
        if summary in written:
            continue
        pool = _pool_of(run)
        rates = read_pass_rates(cache)
        if any(e.id not in rates for e in pool):
            import torch

            from ebpo_bench.models.loading import load_policy

            model, tok = load_policy(run.model, run.task, log=log)
            model = model.cuda() if torch.cuda.is_available() else model
            rates = run_prepass(
                pool,
                model,
                tok,
                cache,
                n_samples=d.difficulty.n_samples,
                temperature=d.difficulty.temperature,
                max_new_tokens=max_new,
                fmt=run.reward.format,
                scale=run.reward.scale,
                chunk=d.difficulty.chunk,
                seed=d.difficulty.seed,
                chat_template=run.model.chat_template,
                log=log,
            )
        written.append(write_summary(cache, [rates[e.id] for e in pool], d.difficulty.strata))
    return written


def _pool_of(run: Any) -> list[Example]:
    from ebpo_bench.data.stream import load_pool, synthetic_pool

    return synthetic_pool(run.task, run.data) if run.task.type == "synthetic" else load_pool(run.task)
