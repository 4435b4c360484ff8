"""The `launch:` section of params.yaml: what each stage family asks of a cluster.

The Ray launcher (`python -m backdoorlab.launch`) gives every stage a task sized by its family (the
part of the stage name before `@`, e.g. `defend`). Free of torch, so
the launcher reads it cheaply; only the launcher parses it, and no stage lists it as a param, so
editing it never invalidates a stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from backdoorlab.settings import parse_section, require

DEFAULT_FAMILY = "default"


@dataclass(frozen=True)
class StageResources:
    """One task's share of a node. `num_cpus` is also the stage's torch thread count."""

    num_cpus: int = 1
    num_gpus: float = 0.0

    def check(self, key: str) -> None:
        require(self.num_cpus >= 1, f"{key}.num_cpus", f"must be >= 1, got {self.num_cpus}")
        require(self.num_gpus >= 0, f"{key}.num_gpus", f"must be >= 0, got {self.num_gpus}")


@dataclass(frozen=True)
class LaunchSettings:
    """Resources per stage family; families not listed use `default`."""

    resources: Mapping[str, StageResources] = field(default_factory=dict)

    def for_family(self, family: str) -> StageResources:
        return self.resources.get(family) or self.resources.get(DEFAULT_FAMILY) or StageResources()


def parse_launch(section: Mapping[str, Any] | None, key: str = "launch") -> LaunchSettings:
    """Validate the `launch:` section; an absent section means 1 CPU, no GPU for every stage."""
    section = {} if section is None else section
    require(isinstance(section, Mapping), key, "expected a mapping")
    unknown = sorted(set(section) - {"resources"})
    require(not unknown, f"{key}.{unknown[0]}" if unknown else key, "unknown parameter (known: resources)")
    raw = section.get("resources") or {}
    require(isinstance(raw, Mapping), f"{key}.resources", "expected a mapping of stage family -> resources")
    resources = {}
    for family, value in raw.items():
        require(isinstance(family, str) and family != "" and "@" not in family, f"{key}.resources.{family}",
                "must be a stage family name (the part of a stage name before '@')")
        resources[family] = parse_section(StageResources, value, f"{key}.resources.{family}")
    return LaunchSettings(resources=resources)
