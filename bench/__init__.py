"""Benchmarks: throughput, latency, Redis cost and memory, each against a baseline."""
