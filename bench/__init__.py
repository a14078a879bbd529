"""Benchmarks for glimpse; run them with ``python -m bench.<name>`` (see bench/README.md)."""
