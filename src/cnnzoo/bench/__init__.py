"""Benchmarks that compare cnnzoo against a baseline measured in the same run, and report ratios.

Absolute times on a shared machine are noise; a ratio of two measurements taken back to back, interleaved and
repeated, is not. Every function here returns a JSON-able dict; ``cnnzoo bench`` prints and saves them.
"""
