"""backdoorlab: backdoor attacks, their removal, and the sequela a removal leaves behind.

The package, bottom to top (a module imports only from the rows above its own):

    errors  settings  registry  io  progress   what everything uses; registry.py names every family
    config                                     params.yaml's shared sections, seeds
    layout                                     every path of the workspace (victim, seed -> folder)
    data/  models/  training/                  tensors, registered models, the one training loop
    attacks/  defenses/  cleansing/            one registry each, one module per method, each
    paradigms/  sequela/                       imported only when a cell runs it
    metrics                                    CA, ASR, RA, DER
    pipeline/                                  what the stage scripts share (command line, a
                                               victim's data and task, the sequela runs, checks)
    reporting/                                 tables, figures, intervals and verdicts over seeds
    graph/                                     writes dvc.yaml and full/*/dvc.yaml: each stage's
                                               code dependencies are its imports
    launch/                                    the Ray launcher
    compose  snapshot                          params.yaml from conf/; a source copy for test runs

The stage scripts (``stages/*.py``) sit on top: each imports ``pipeline`` and the families it runs.
"""

__version__ = "0.1.0"
