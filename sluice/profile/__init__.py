"""profile: per-column statistics of a staged file, and the store of every file's profile.

stats.py     the stage: one pass of bounded memory; stages the file cast to its types;
             `profile_file`, the chain read -> infer_schema -> profile outside a run
sketches.py  distinct counts, top values and histograms that merge batch by batch
store.py     `sluice.profiles`: each file's profile, a dataset's history, the UI's table
"""

from sluice.profile.stats import profile_file, run

__all__ = ["profile_file", "run"]
