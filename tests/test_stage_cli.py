"""Every stage's command line: a wrong or missing argument, or a name params.yaml does not define,
is one line on stderr and exit code 2, before anything is read or written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def stage(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True)


@pytest.mark.parametrize("args, message", [
    (["stages/defend.py", "badnets"], "error: the following arguments are required: defense (usage: defend.py"),
    (["stages/defend.py", "nope", "ft"], "error: attack 'nope': not in params.yaml's attacks"),
    (["stages/defend.py", "badnets", "nope"], "error: defense 'nope': not in params.yaml's defenses"),
    (["stages/train.py"], "error: the following arguments are required: attack (usage: train.py"),
    (["stages/prepare.py", "extra"], "error: unrecognized arguments: extra (usage: prepare.py"),
    (["stages/report.py", "--nope"],
     "error: unrecognized arguments: --nope (usage: report.py [-h] [--scope {default,attacks,full,paradigms,regimes}])"),
    (["stages/shadow.py", "nosuch"], "error: regime 'nosuch': not in params.yaml's regimes"),
    (["stages/upstream.py", "federated"], "error: paradigm 'federated': not in params.yaml's paradigms"),
    (["stages/implant.py", "encoder"], "error: the following arguments are required: attack (usage: implant.py"),
    (["stages/downstream.py", "encoder", "nope"], "error: attack 'nope': not in params.yaml's attacks"),
    (["stages/defend.py", "encoder-nope", "ft"], "error: attack 'nope': not in params.yaml's attacks"),
    (["stages/retrain.py", "badnets", "nope"], "error: cleanser 'nope': not in params.yaml's cleansers"),
])
def test_a_bad_stage_command_line_is_one_line_and_exit_2(args, message):
    result = stage(*args)
    assert result.returncode == 2
    assert result.stdout == "" and len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith(message), result.stderr
