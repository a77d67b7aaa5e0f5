"""Benchmarks: `python -m bench.throughput` (contenders side by side on a local Tansu broker)
and `python -m bench.profile_worker` (where `Worker.process` spends its time)."""
