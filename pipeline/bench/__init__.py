"""Benchmarks: measured figures for the README, not timed tests."""
