"""Member/non-member splits (installed as `vidsme.data_splits`).

Each split is a folder here, `<name>/manifest.jsonl` + `<name>/card.json`; the modules
build, create, verify and audit them:
  manifest   row schema, JSONL I/O, split cards
  registry   which splits exist and where
  listing    `vidsme splits list`: status, counts, dev/test partition of each
  partition  the dev/test partition of a split, by video
  synthetic  the deterministic synthetic video generator (the embedded default)
  build      `vidsme splits build`: synthetic pools -> splits
  create     `vidsme splits create`: splits from your own videos and annotations
  verify     `vidsme splits verify`: checksums, disjointness, presence, decodability
  audit      `vidsme splits audit`: the model-free blind baseline
"""
