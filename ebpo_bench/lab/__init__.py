"""The estimator lab: a ``kind: simulation`` experiment that checks EBPO's claims about its baseline.

It compares every registered advantage estimator (plus named variants) on simulated prompts with known
success probabilities: how well each one's implied baseline tracks the true value (Thm 3.3), the signal
it gives saturated groups (Thm 3.2, Cor. 3.5), how a softmax bandit trained with it learns and loses
entropy (Prop. 3.6), and how the prior tracks topic-clustered batches (Prop. 3.8). Modules:

- ``spec``: the pydantic spec and ``load_lab_spec`` (torch-free);
- ``simulate``: pools, batch orders, rewards, implied baselines, per-batch metrics, closed forms;
- ``policy``: the policy-learning simulation;
- ``runlab``: ``run_lab`` writes ``results/<name>/`` (lab.json + tidy CSVs);
- ``report``: ``build_lab_report`` and ``is_lab_dir`` (torch-free, reads only files), drawing on
  ``frames`` (the lab folder's files as frames), ``claims`` (the computed claims) and ``figures``.

Nothing is imported here, so importing ``ebpo_bench.lab.spec`` or ``.report`` never pulls in torch.
"""
