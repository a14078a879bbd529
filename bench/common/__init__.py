"""Helpers shared by the benchmarks (and the chaos test)."""
