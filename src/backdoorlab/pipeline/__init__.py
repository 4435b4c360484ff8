"""What the stage scripts share: their command line, the victim's data and task, the sequela runs.

Each stage script (``stages/*.py``) imports this package's modules and the one family it runs; a
family never imports this package (the arrows point down), so a stage's DVC dependencies, which
:mod:`backdoorlab.graph` computes from its imports, stay the files it runs.
"""
