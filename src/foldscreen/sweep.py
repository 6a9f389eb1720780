"""A sweep: a grid over inference settings, each combination one arm with its own predictions.

The config's `sweep:` section lists values for some of seeds, samples, recycles, diffusion_steps,
precision and msa_mode; every combination of them is an arm, and the settings not swept come
from `inference:` and `msa:`. An arm's id names each swept setting and its value in a fixed
order (`recycles-3_msa-server`, `seeds-1-2_precision-bfloat16`; a null value reads `default`),
so it is a safe file name and does not change when values are added to an axis: adding an arm
reruns nothing of the others. A screen without `sweep:` is one arm, DEFAULT_ARM. Importing this
module loads nothing beyond the standard library (the workflow imports it at every start).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from .contracts import ARM_COLUMNS

DEFAULT_ARM = "default"  # the one arm of a screen without a sweep

# sweep key -> (config section, key there, its name in arm ids)
AXES = {
    "seeds": ("inference", "seeds", "seeds"),
    "samples": ("inference", "samples", "samples"),
    "recycles": ("inference", "recycles", "recycles"),
    "diffusion_steps": ("inference", "diffusion_steps", "steps"),
    "precision": ("inference", "precision", "precision"),
    "msa_mode": ("msa", "mode", "msa"),
}


class SweepError(ValueError):
    """A sweep that cannot be expanded; the message names the config key at fault."""


@dataclass(frozen=True)
class Arm:
    """One combination of a sweep: its id and every setting it runs with."""

    name: str
    seeds: tuple[int, ...]
    samples: int
    recycles: int | None
    diffusion_steps: int | None
    precision: str
    msa_mode: str

    @property
    def inference(self) -> dict[str, Any]:
        """The `inference:` settings the arm sets (over the config's)."""
        return {"seeds": list(self.seeds), "samples": self.samples, "recycles": self.recycles,
                "diffusion_steps": self.diffusion_steps, "precision": self.precision}

    @property
    def columns(self) -> dict[str, Any]:
        """The arm's columns in every table (contracts.ARM_COLUMNS); `seed` is a column of its own."""
        values = {"arm": self.name, "samples_per_seed": self.samples, "recycles": self.recycles,
                  "diffusion_steps": self.diffusion_steps, "precision": self.precision,
                  "msa_mode": self.msa_mode}
        return {column: values[column] for column in ARM_COLUMNS}


def sweep_arms(config: dict[str, Any]) -> list[Arm]:
    """The arms of a validated config, in grid order (the first axis varies slowest)."""
    inference = config["inference"]
    base = Arm(DEFAULT_ARM, tuple(inference["seeds"]), inference["samples"], inference["recycles"],
               inference["diffusion_steps"], inference["precision"], config["msa"]["mode"])
    sweep = config.get("sweep")
    if not sweep:
        return [base]
    axes = [key for key in AXES if key in sweep]
    arms: dict[str, Arm] = {}
    for values in itertools.product(*(sweep[key] for key in axes)):
        name = "_".join(f"{AXES[key][2]}-{_label(value)}" for key, value in zip(axes, values))
        settings = {key: _setting(key, value) for key, value in zip(axes, values)}
        if name in arms:
            raise SweepError(f"sweep: two combinations are both arm {name} (a seed listed twice?)")
        arms[name] = replace(base, name=name, **settings)
    if "local" in sweep.get("msa_mode", ()) and not config["msa"]["local"]["databases"]:
        raise SweepError("sweep.msa_mode: local needs msa.local.databases")
    return list(arms.values())


def msa_modes(arms: Iterable[Arm]) -> list[str]:
    """The MSA modes of the arms, each once, in order: each is one set of msa jobs."""
    return list(dict.fromkeys(arm.msa_mode for arm in arms))


def _setting(key: str, value: Any) -> Any:
    if key == "seeds":
        return tuple(value) if isinstance(value, list) else (value,)
    return value


def _label(value: Any) -> str:
    if value is None:
        return "default"
    if isinstance(value, list):
        return "-".join(str(v) for v in value)
    return str(value)
