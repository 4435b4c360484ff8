"""The Ray launcher: runs the stale stages of a DVC grid as cluster tasks, then collects them.

`plan` reads the stale stages and their order from DVC, `settings` the `launch:` section of
params.yaml, `task` reproduces one stage in a clean checkout, `scheduler` starts stages once their
upstream ones have finished, and `cli` (`python -m backdoorlab.launch`) ties them together. Nothing
else in the library imports this package, so no pipeline stage depends on it.
"""
