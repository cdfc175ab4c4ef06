"""Benchmark runner (installed as `vidsme.benchmark`).

What lands here (issues 5 and 6): querying targets (natural + reversed frame order in
one batched forward), the feature cache, the suite runner, leaderboard and
submissions. Nothing is implemented yet; see docs/ARCHITECTURE.md for plan and status.
"""
