"""The Ray launcher (`python -m backdoorlab.launch`): scheduling, failures, and the tiny grid.

- the scheduler alone, with a fake executor: a failed stage's dependents are skipped, independent
  stages still run;
- a toy DVC repository of shell stages on a local Ray instance: the same through Ray and DVC, a
  non-zero exit code, the failing stage's own stderr in the report, threads per CPU;
- the tiny profile through the launcher (2 workers of 1 CPU, a separate shared cache) as on a fresh
  clone, whose committed locks name outputs absent from the cache: each stage runs exactly once,
  the collect step and a later `dvc repro` run none, and each cell's record equals a plain
  sequential run's.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import tinyrepo
from backdoorlab.launch.plan import StageNode
from backdoorlab.errors import ConfigError
from backdoorlab.launch.settings import parse_launch
from backdoorlab.launch.task import TaskResult
from backdoorlab.launch.scheduler import run_schedule
from backdoorlab.snapshot import copy_sources

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(args: list[str], cwd: Path, check: bool = True, threads: int | None = None,
        extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1",
           "RAY_ADDRESS": "", "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
           **(extra_env or {})}
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if check:
        assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def commit_all(repo: Path) -> None:
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    run(["git", "init", "-q"], repo)
    run([*git, "add", "-A"], repo)
    run([*git, "commit", "-qm", "snapshot"], repo)


def launch(repo: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", "backdoorlab.launch", "--repo", str(repo), "--workers", "2",
                "--num-cpus", "2", *extra], repo, check=False)


def stages_run(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


# -- the scheduler alone -----------------------------------------------------------------------

class FakeExecutor:
    """Finishes tasks in submission order; stages named in `failing` fail."""

    def __init__(self, failing: set[str]) -> None:
        self.failing, self.queue, self.submitted = failing, [], []

    def submit(self, stage: StageNode) -> None:
        self.queue.append(stage.name)
        self.submitted.append(stage.name)

    def wait_one(self) -> TaskResult:
        name = self.queue.pop(0)
        return TaskResult(name, name not in self.failing, 0.1, True, "boom" if name in self.failing else "", "here")


def test_scheduler_skips_dependents_of_a_failure_and_runs_the_rest():
    dag = [StageNode("prepare", frozenset()), StageNode("train@a", frozenset({"prepare"})),
           StageNode("train@b", frozenset({"prepare"})), StageNode("defend@a-x", frozenset({"train@a"})),
           StageNode("defend@b-x", frozenset({"train@b"})),
           StageNode("report", frozenset({"defend@a-x", "defend@b-x"}))]
    executor, lines = FakeExecutor({"train@a"}), []
    outcome = run_schedule(dag, executor, max_in_flight=2, report=lines.append)
    assert outcome.failed == ["train@a"]
    assert set(outcome.skipped) == {"defend@a-x", "report"}
    assert set(outcome.succeeded) == {"prepare", "train@b", "defend@b-x"}
    assert "defend@a-x" not in executor.submitted and "report" not in executor.submitted
    assert any(line.startswith("[") and "train@a FAILED" in line for line in lines)
    assert lines[-1].endswith("(0 left)")


@pytest.mark.parametrize("section, message", [
    ({"resources": {"train": {"num_cpus": 0}}}, "launch.resources.train.num_cpus: must be >= 1, got 0"),
    ({"resources": {"train": {"gpus": 1}}}, "launch.resources.train.gpus: unknown parameter"),
    ({"resource": {}}, "launch.resource: unknown parameter"),
    ({"resources": {"defend@a-b": {}}}, "launch.resources.defend@a-b: must be a stage family name"),
])
def test_launch_section_errors_name_the_key(section, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_launch(section)


def test_launch_section_falls_back_to_default():
    settings = parse_launch({"resources": {"default": {"num_cpus": 2}, "train": {"num_cpus": 4, "num_gpus": 1}}})
    assert settings.for_family("train").num_gpus == 1 and settings.for_family("report").num_cpus == 2
    assert parse_launch(None).for_family("train").num_cpus == 1


# -- a toy DVC repository through Ray ------------------------------------------------------------

TOY_DAG = {"stages": {
    "a": {"cmd": "cat seed > a.txt", "deps": ["seed"], "outs": ["a.txt"]},  # no deps: never run-cached
    "b": {"cmd": "echo boom-from-b >&2 && false", "deps": ["a.txt"], "outs": ["b.txt"]},
    "c": {"cmd": "cat b.txt > c.txt", "deps": ["b.txt"], "outs": ["c.txt"]},
    "d": {"cmd": "cat a.txt > d.txt && echo $OMP_NUM_THREADS > threads.txt", "deps": ["a.txt"],
          "outs": ["d.txt", "threads.txt"]},
}}


@pytest.fixture
def toy_repo(tmp_path: Path) -> Path:
    """Trivial shell stages; params.yaml is the tiny profile (the launcher validates it) with
    two CPUs for stage `d`."""
    params = copy.deepcopy(tinyrepo.TINY)
    params["launch"] = {"resources": {"default": {"num_cpus": 1}, "d": {"num_cpus": 2}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(TOY_DAG))
    (tmp_path / ".gitignore").write_text("/*.txt\n")
    (tmp_path / "seed").write_text("a\n")
    run(["git", "init", "-q"], tmp_path)
    run([str(BIN / "dvc"), "init", "-q"], tmp_path)
    run([str(BIN / "dvc"), "config", "core.analytics", "false"], tmp_path)
    commit_all(tmp_path)
    return tmp_path


def test_launcher_reports_a_failed_stage_skips_its_dependents_and_keeps_the_rest(toy_repo: Path):
    result = launch(toy_repo)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert re.search(r"\] b FAILED after", output) and "boom-from-b" in output  # the stage's own stderr
    assert re.search(r"\] c skipped: needs b", output)
    assert re.search(r"\] d \d+\.\d s", output) and "no stage command run" in output and "still changed" not in output
    assert (toy_repo / "d.txt").read_text() == "a\n"  # collected into the workspace
    assert (toy_repo / "threads.txt").read_text().strip() == "2"  # launch.resources.d.num_cpus
    assert not (toy_repo / "c.txt").exists()


def test_launcher_carries_results_through_a_dvc_remote(toy_repo: Path, tmp_path_factory):
    """--remote: workers push their run-cache to the remote, the workspace pulls from it."""
    remote = tmp_path_factory.mktemp("remote")
    dag = {"stages": {name: TOY_DAG["stages"][name] for name in ("a", "d")}}
    (toy_repo / "dvc.yaml").write_text(yaml.safe_dump(dag))
    run([str(BIN / "dvc"), "remote", "add", "-d", "store", str(remote)], toy_repo)
    commit_all(toy_repo)
    result = launch(toy_repo, "--remote", "store")
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "no stage command run" in output and "still changed" not in output, output
    assert (toy_repo / "d.txt").read_text() == "a\n" and any((remote / "runs").iterdir())


def test_launcher_refuses_uncommitted_sources(toy_repo: Path):
    (toy_repo / "dvc.yaml").write_text((toy_repo / "dvc.yaml").read_text() + "\n# edited\n")
    result = launch(toy_repo)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]  # one line
    assert "uncommitted changes in dvc.yaml" in result.stderr


def test_launcher_rejects_an_unknown_stage_family(toy_repo: Path):
    params = yaml.safe_load((toy_repo / "params.yaml").read_text())
    params["launch"]["resources"]["trian"] = {"num_cpus": 1}
    (toy_repo / "params.yaml").write_text(yaml.safe_dump(params))
    commit_all(toy_repo)
    result = launch(toy_repo, "--dry-run")
    assert result.returncode == 2 and result.stderr.startswith("error: launch.resources.trian: no stage family")


def test_pipeline_option_plans_only_what_dvc_repro_of_that_file_would_run(toy_repo: Path):
    (toy_repo / "sub").mkdir()
    (toy_repo / "sub" / "dvc.yaml").write_text(yaml.safe_dump(
        {"stages": {"e": {"cmd": "cat a.txt > e.txt", "wdir": "..", "deps": ["a.txt"], "outs": ["e.txt"]}}}))
    commit_all(toy_repo)

    def planned(*args: str) -> set[str]:
        result = launch(toy_repo, "--dry-run", *args)
        assert result.returncode == 0, result.stderr
        return {line.split(":")[-2] if line.startswith("sub/") else line.split(":")[0]
                for line in result.stdout.splitlines()}

    assert planned() == {"a", "b", "c", "d", "e"}
    assert planned("--pipeline", "dvc.yaml") == {"a", "b", "c", "d"}
    assert planned("--pipeline", "sub/dvc.yaml") == {"a", "e"}  # e and the stage it depends on
    result = launch(toy_repo, "--dry-run", "--pipeline", "nowhere/dvc.yaml")
    assert result.returncode == 2 and result.stderr.startswith("error: --pipeline nowhere/dvc.yaml: no stages")


# -- the tiny grid ---------------------------------------------------------------------------------

# A slice of the tiny grid: its first seed, BadNets against no defense and FT (the landscape along FT
# alone), without the full matrix's files, so the test launches 12 stages. Every cell in it has the
# same params as in the session's tiny repository, so each cell's record must be the same.
SEED = tinyrepo.TINY["grid"]["seeds"][0]
SLICE = {"attacks": ["badnets"], "defenses": ["none", "ft"], "main": ["none", "ft"], "seeds": [SEED]}


def tiny_copy(dst: Path) -> Path:
    copy_sources(ROOT, dst)
    params = copy.deepcopy(tinyrepo.TINY)
    params["grid"].update(SLICE)
    params["landscape"]["defenses"] = ["ft"]
    (dst / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run([sys.executable, "scripts/dag.py"], dst)  # the pipeline files follow the sliced grid (`make dag`)
    for path in (dst / "full").iterdir():  # only the default run: dvc.yaml and its victims' files
        if path.is_file():  # the full matrix's report
            path.unlink()
        elif path.name != "default":
            shutil.rmtree(path)
    commit_all(dst)
    return dst


def cell_records(repo: Path) -> dict[str, dict]:
    """Each sliced cell's defense record at the slice's seed, less its wall time."""
    records = {}
    for cell in SLICE["defenses"]:
        record = json.loads((repo / f"reports/records/cells/badnets-{cell}/s{SEED}/defense.json").read_text())
        records[cell] = {key: value for key, value in record.items() if key != "seconds"}
    return records


# Every stage process appends its command line to $STAGE_RUNS: how often each stage really ran.
COUNT_RUNS = """
import os, sys
if os.environ.get("STAGE_RUNS") and sys.argv and "stages/" in sys.argv[0]:
    with open(os.environ["STAGE_RUNS"], "a") as out:
        out.write(" ".join(sys.argv) + "\\n")
"""


def test_tiny_grid_through_the_launcher_on_a_fresh_clone_runs_each_stage_once(tmp_path: Path, tiny_repo_base: Path):
    """As on a fresh clone: the committed locks name outputs made elsewhere, absent from the cache.
    Each stage runs exactly once across the workers, the collect step runs none, and the results
    equal a plain sequential run's."""
    launched = tiny_copy(tmp_path / "launched")
    for lock in tiny_repo_base.glob("**/dvc.lock"):
        if (launched / lock.relative_to(tiny_repo_base)).with_name("dvc.yaml").is_file():
            shutil.copy(lock, launched / lock.relative_to(tiny_repo_base))
    # a committed `cache: false` output made elsewhere: the launcher must replace it, in the tasks
    # that read it and in the workspace, by what its own run made
    curves = Path("reports/curves") / f"badnets-s{SEED}.tsv"
    (launched / curves).parent.mkdir(parents=True)
    (launched / curves).write_text((tiny_repo_base / curves).read_text() + "made elsewhere\n")
    commit_all(launched)
    planned = launch(launched, "--dry-run").stdout.splitlines()
    hooks, runs = tmp_path / "hooks", tmp_path / "stage-runs.txt"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(COUNT_RUNS)
    result = run([sys.executable, "-m", "backdoorlab.launch", "--repo", str(launched), "--workers", "2",
                  "--num-cpus", "2", "--cache-dir", str(tmp_path / "shared-cache")], launched, check=False,
                 extra_env={"STAGE_RUNS": str(runs), "PYTHONPATH": f"{hooks}{os.pathsep}{ROOT / 'src'}"})
    output = result.stdout + result.stderr
    (tmp_path / "launch.log").write_text(output)
    assert result.returncode == 0, output
    commands = runs.read_text().splitlines()
    assert len(commands) == len(set(commands)) == len(planned), output  # every planned stage ran, once
    assert re.search(r"collected \d+ stage\(s\) into .* no stage command run$", output, re.M), output
    assert "still changed" not in output, output
    assert re.search(r"\[(\d+)/\1\] report \d+\.\d s \(setup \d+\.\d s\) \(0 left\)", output), output
    again = run([str(BIN / "dvc"), "repro"], launched)
    assert stages_run(again.stdout + again.stderr) == set(), again.stdout
    assert len(runs.read_text().splitlines()) == len(planned)  # nor did anything after the launcher
    assert (launched / curves).read_text() == (tiny_repo_base / curves).read_text()
    # The session's tiny repository is a plain sequential `dvc repro` of the same sources, with
    # one thread per stage as each launcher task had (tests/tinyrepo.py).
    assert cell_records(launched) == cell_records(tiny_repo_base)
