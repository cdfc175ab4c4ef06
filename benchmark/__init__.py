"""The benchmark (installed as `vidsme.benchmark`), in two halves.

The suite, at the top of this folder: querying targets (natural + reversed frame order in one
batched forward), the feature cache, evaluation of every attack, dev-chosen and test-reported
verdicts, plots, results.json and the leaderboard (`vidsme benchmark`, `vidsme leaderboard`).
It never imports the other half, submissions/ (`vidsme submit`: submitted code in its sandbox,
scores files). docs/ARCHITECTURE.md lists every module.
"""
