"""vidsme: membership inference attacks against video-understanding LLMs.

This folder is the namespace root: what every stage shares (config, errors, did-you-mean,
video reading and statistics, metrics, provenance, atomic writes, the dry-run report). It
imports no stage. The stages install under it from their own folders: `vidsme.attack`
(attack/), `vidsme.data_splits` (data_splits/), `vidsme.train` (train/), `vidsme.benchmark`
(benchmark/), `vidsme.challenge` (challenge/), `vidsme.study` (study/) and the command line,
`vidsme.cli` (cli/).
"""
__version__ = "0.1.0"
