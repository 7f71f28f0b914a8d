"""Verdicts: from per-run numbers to an honest "improved / regressed / no change / inconclusive".

One module per step, in the order the data flows:

- ``distributions``: the normal and Student's t distributions, in pure Python;
- ``stats``: the statistics on runs and pairs of runs (log-scale t intervals, Wilcoxon,
  bootstrap, Holm, MDE, outlier and drift checks);
- ``judgement``: what one metric's runs allow us to say (paired or unpaired);
- ``sides``: the two sides of an A/B comparison and where the baseline comes from;
- ``protocol``: the interleaved, counterbalanced A/B protocol behind ``sessionctl compare``;
- ``calibration``: repeated A/A trials, the false-verdict share and the noise floor;
- ``session``: a session's verdicts, results rows and commit trailers.
"""
