"""``python -m ebpo_bench`` (used by ``accelerate launch -m ebpo_bench run SPEC``)."""

from ebpo_bench.cli import main

if __name__ == "__main__":
    main()
