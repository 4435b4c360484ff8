"""Named defense instances from params.yaml's ``defenses`` section, fixed or calibrated."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from backdoorlab.defenses.base import DEFENSES, Defense
from backdoorlab.defenses.calibration import Calibration, build_calibration
from backdoorlab.settings import parse_section, require

INSTANCE_KEYS = ("method", "clean_fraction", "calibrate")


@dataclass(frozen=True)
class DefenseSpec:
    """A named defense instance. ``defense`` is the instance as written (for a calibrated one,
    its knob at the method's default); ``calibration`` is set for calibrated instances."""

    name: str
    method: str
    clean_fraction: float | None
    defense: Defense
    calibration: Calibration | None = None


def build_defense(name: str, section: Mapping[str, Any]) -> DefenseSpec:
    key = f"defenses.{name}"
    require(isinstance(section, Mapping) and "method" in section, f"{key}.method", "missing required parameter")
    cls = DEFENSES.get(section["method"], f"{key}.method")
    fraction = section.get("clean_fraction")
    if fraction is not None:
        require(isinstance(fraction, (int, float)) and 0 < fraction <= 1, f"{key}.clean_fraction",
                f"must be in (0, 1], got {fraction!r}")
    config = parse_section(cls.Config, section, key, ignore=INSTANCE_KEYS)
    calibration = (build_calibration(cls, section, key, INSTANCE_KEYS)
                   if section.get("calibrate") is not None else None)
    return DefenseSpec(name, section["method"], fraction, cls(config), calibration)
