"""Benchmarks: `python -m bench.run` (`make bench`: every contender in one table, one Tansu
broker), `python -m bench.latency` (end-to-end latency at a fixed offered load),
`python -m bench.profile_worker` (where `Worker.process` spends its time) and
`python -m bench.metrics_overhead` (what the metrics cost per event)."""
