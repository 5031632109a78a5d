"""Benchmarks of trapline (see bench/README.md)."""
