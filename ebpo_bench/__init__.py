"""ebpo-bench: a declarative benchmark suite for RL with verifiable rewards."""

__version__ = "0.1.0"
