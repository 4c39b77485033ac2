"""Speed measurements: `make bench` (or `python -m benchmarks [topic ...]`) prints one table."""
