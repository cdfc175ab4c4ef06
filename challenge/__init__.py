"""The sealed challenge (`vidsme challenge ...`, `vidsme submit --challenge`): a recipe over every stage.

  build   `vidsme challenge build|reveal|verify`: fresh splits, base and targets, features, all from a secret
  board   `vidsme challenge evaluate` and code submissions to a challenge: private results, public leaderboard
"""
