"""pixweb's benchmark suite: `python -m tests.benchmarks.bench` (not collected by pytest)."""
