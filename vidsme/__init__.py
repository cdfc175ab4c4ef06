"""vidsme: membership inference attacks against video-understanding LLMs.

The `vidsme` package itself is the small core that every stage shares (CLI,
name registries with did-you-mean, errors). The stages install under it:
`vidsme.attack` (attack/), `vidsme.train` (train/), `vidsme.benchmark` (benchmark/).
"""
__version__ = "0.1.0"
