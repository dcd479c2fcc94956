"""Simulated shops: the event generator behind the demo, the benchmarks, the tests and the oracle."""
