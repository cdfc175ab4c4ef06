"""Submissions to a finished benchmark (`vidsme submit`): the suite half of benchmark/ never imports this.

  attack_code   a submitted attack's code: validated, run in the sandbox, evaluated from the feature caches
  scores_file   a CSV of per-sample scores from an attack that cannot run here
  common        what both share: refusals, results, the evaluated samples, name checks, all-or-nothing writes
  request       which flags go together (`SubmitRequest.check`), before anything runs
  sandbox       the isolated child process that submitted code runs in (bubblewrap, else unshare)
"""
