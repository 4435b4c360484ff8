"""The DVC pipeline as the launcher needs it: stale stages, their upstream edges, and outputs.

Read through DVC's Python API (`Repo.index.graph`, `Repo.status`) rather than by parsing
`dvc dag`/`dvc status` text, which is meant for people. A stage is stale when `dvc status` reports
it or when it is downstream of one that is (DVC's own `repro` re-runs those once the upstream
outputs change; running one that turns out unchanged only costs a run-cache hit).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from backdoorlab.errors import ConfigError


@dataclass(frozen=True)
class LockEntry:
    """A stage's `dvc.lock` entry and where it belongs: what a task needs of each stage whose
    outputs it reads, and what it hands back for the stage it ran. Plain data, for Ray."""

    file: str  # the stage's pipeline file, relative to the repository (its lock is beside it)
    name: str  # the stage's name in that file, e.g. defend@badnets-sft-s1
    entry: dict[str, Any]
    uncached: tuple[str, ...] = ()  # its `cache: false` outputs, which `dvc checkout` leaves alone

    @property
    def address(self) -> str:
        return address(self.file, self.name)


@dataclass(frozen=True)
class StageNode:
    """One stage to run: its DVC address (a `dvc repro` target), the stale stages it needs, and
    every stage whose outputs it reads (stale or not)."""

    name: str
    upstream: frozenset[str]
    inputs: frozenset[str] = frozenset()

    @property
    def family(self) -> str:
        """`defend` for `defend@badnets-sft` (or `sub/dvc.yaml:defend@x`): the resources key."""
        return self.name.rsplit(":", 1)[-1].split("@", 1)[0]


@dataclass(frozen=True)
class Plan:
    """The stale sub-DAG in a topological order, every stage's family, and the output paths."""

    stages: list[StageNode]
    families: frozenset[str]  # of every pipeline stage, stale or not (to check launch.resources)
    outputs: frozenset[str]  # repo-relative output paths, to tell results from source edits
    locks: dict[str, LockEntry]  # the committed lock entry of every stage that has one, by address
    uncached: dict[str, tuple[str, ...]]  # every stage's `cache: false` outputs, by address


def pipeline_files(entries: Iterable[LockEntry]) -> list[str]:
    """The pipeline files of ``entries``, as `dvc checkout` / `dvc status` targets. DVC collects
    each target on its own (about 0.5 s per stage address in this repository, whose index holds
    700 stages), but a file target's stages at once: 84 addresses cost 43 s, their 3 files 5 s."""
    return sorted({item.file for item in entries})


def address(file: str, name: str) -> str:
    """A stage's `dvc repro` target relative to the repository (DVC's own `addressing` is relative
    to the current directory)."""
    return name if file == "dvc.yaml" else f"{file}:{name}"


def read_locks(root: Path, files: set[str], uncached: dict[str, tuple[str, ...]]) -> dict[str, LockEntry]:
    """Every entry of the lock files beside ``files`` (pipeline files relative to ``root``)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: the big locks parse in a blink
    locks = {}
    for file in files:
        lock = (root / file).with_name("dvc.lock")
        if lock.is_file():
            for name, entry in (yaml.load(lock.read_text(), Loader=loader) or {}).get("stages", {}).items():
                locks[address(file, name)] = LockEntry(file, name, entry, uncached.get(address(file, name), ()))
    return locks


def read_plan(root: Path, pipeline_file: str | None = None) -> Plan:
    """The stale stages in the workspace at `root`, in dependency order: of every pipeline, or
    those `dvc repro <pipeline_file>` would run (that file's stages and what they depend on)."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        return _plan(Repo(str(root)), root, pipeline_file)
    except DvcException as error:
        raise ConfigError(f"dvc: {str(error).splitlines()[0] if str(error) else type(error).__name__}") from None


def _plan(repo: Any, root: Path, pipeline_file: str | None) -> Plan:
    import networkx as nx  # DVC's own dependency, for its graph

    with repo:
        graph = repo.index.graph  # edges point from a stage to the stages it depends on
        every = [s for s in graph if getattr(s, "cmd", None) and not s.frozen]
        pipeline = every
        if pipeline_file is not None:
            wanted = (root / pipeline_file).resolve()
            tops = [s for s in every if Path(s.dvcfile.path).resolve() == wanted]
            if not tops:
                raise ConfigError(f"--pipeline {pipeline_file}: no stages there (not a dvc.yaml of {root})")
            needed = set(tops).union(*(nx.descendants(graph, s) for s in tops))
            pipeline = [s for s in every if s in needed]
        reported = set(repo.status())
        changed = {s for s in pipeline if s.addressing in reported}
        stale = set(changed)
        for stage in changed:
            stale |= {s for s in nx.ancestors(graph, stage) if s in pipeline}
        outputs = frozenset(str(Path(o.fs_path).relative_to(root.resolve()))
                            for s in graph for o in s.outs)
        # Longest chain of dependents first: a valid topological order that starts the critical
        # path (train -> defend -> sequela -> report) before the short side branches.
        height: dict[Any, int] = {}
        for stage in nx.topological_sort(graph):  # dependents come before what they depend on
            height[stage] = 1 + max((height[d] for d in graph.predecessors(stage)), default=0)
        named = {s: address(s.path_in_repo, s.name) for s in graph}
        order = sorted(stale, key=lambda s: (-height[s], -len(nx.ancestors(graph, s)), named[s]))
        nodes = [StageNode(named[s], frozenset(named[u] for u in graph.successors(s) if u in stale),
                           frozenset(named[u] for u in graph.successors(s) if getattr(u, "cmd", None)))
                 for s in order]
        families = frozenset(StageNode(named[s], frozenset()).family for s in every)
        uncached = {named[s]: tuple(str(Path(o.fs_path).relative_to(root.resolve())) for o in s.outs if not o.use_cache)
                    for s in every}
        locks = read_locks(root, {s.path_in_repo for s in every}, uncached)
    return Plan(nodes, families, outputs, locks, uncached)


def head_commit(root: Path) -> str:
    """The commit every worker checks out; refuses a repository without one."""
    result = subprocess.run(["git", "rev-parse", "--verify", "HEAD"], cwd=root, capture_output=True, text=True)
    if result.returncode != 0:
        raise ConfigError(f"{root}: not a git repository with a commit (the workers check out HEAD)")
    return result.stdout.strip()


def uncommitted_sources(root: Path, outputs: frozenset[str]) -> list[str]:
    """Paths that differ from HEAD and are not pipeline results: workers would not see them."""
    listing = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all", "--no-renames"],
                             cwd=root, capture_output=True, text=True, check=True).stdout
    dirty = []
    for line in listing.splitlines():
        path = line[3:].strip('"')
        name = Path(path).name
        if name == "dvc.lock" or any(path == o or path.startswith(o.rstrip("/") + "/") for o in outputs):
            continue
        dirty.append(path)
    return dirty


def workspace_cache_dir(root: Path) -> str:
    """The workspace's own DVC cache directory, absolute, as workers must name it."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return str(Path(repo.cache.local_cache_dir).resolve())


def default_remote(root: Path) -> str | None:
    """The workspace's default DVC remote: `dvc repro --pull` fetches run-cache outputs from it."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return repo.config["core"].get("remote")
