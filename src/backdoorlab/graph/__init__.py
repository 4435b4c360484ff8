"""The DVC pipeline files, generated: every stage's code dependencies are its import closure.

:mod:`~backdoorlab.graph.imports` reads a script's imports (statically, as written) and follows
them through ``src/backdoorlab``; :mod:`~backdoorlab.graph.stages` describes each stage (command,
data, params, outputs) and its cells; :mod:`~backdoorlab.graph.blocks` writes the root
``dvc.yaml`` and the full matrix's ``full/*/dvc.yaml`` from params.yaml (``scripts/dag.py``,
``make dag``). No stage imports this package.
"""
