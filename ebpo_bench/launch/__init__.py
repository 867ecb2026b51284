"""Launchers: run every run of an expanded spec as SLURM jobs (through submitit) or as parallel local
processes, each under ``ebpo-bench run SPEC --run-id ID`` (``accelerate launch`` when the launch config
names an accelerate config). ``config`` reads launch configs, ``child`` builds and supervises one run's
process, ``slurm`` and ``local`` submit, ``sweep`` records the jobs and derives ``ebpo-bench status``.
Nothing here imports torch."""
