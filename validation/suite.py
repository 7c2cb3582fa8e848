"""The DFN reference suite on disk: the cases ``generate_dfn.py`` wrote, their truth and their
traces, and the path a user takes with them (identify, then estimate).

Used by the tests (``tests/test_dfn_validation.py``) and the benchmark
(``bench/soc_accuracy.py``, ``bench/health_accuracy.py``); needs no PyBaMM.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from cellwarden.bms.identification import Identification, identify
from cellwarden.bms.trace_replay import read_trace

FOLDER = Path(__file__).parent / "dfn"


@dataclass(frozen=True)
class SuiteCase:
    """One generated cell at one chamber temperature."""

    key: str

    @property
    def folder(self) -> Path:
        return FOLDER / self.key

    @cached_property
    def truth(self) -> dict:
        return json.loads((self.folder / "truth.json").read_text())

    @property
    def chemistry(self) -> str:
        return self.truth["chemistry"]

    @property
    def temp_c(self) -> float:
        return float(self.truth["chamber_temp_c"])

    @property
    def rated_capacity_ah(self) -> float:
        return float(self.truth["nominal_capacity_ah"])

    @property
    def capacity_ah(self) -> float:
        """The true capacity: the equilibrium window between the voltage limits."""
        return float(self.truth["capacity_ah"])

    def trace(self, name: str) -> pd.DataFrame:
        """A trace, read and checked as ``cellwarden estimate`` reads one."""
        return read_trace(self.folder / f"{name}.parquet")

    def names(self, prefix: str) -> list[str]:
        """The traces whose names start with ``prefix`` (``drive`` gives drive-1, ...)."""
        return sorted(p.stem for p in self.folder.glob(f"{prefix}*.parquet"))

    def true_ocv(self, branch: str = "mean_v") -> tuple[np.ndarray, np.ndarray]:
        """(SoC, OCV) at the chamber temperature: ``mean_v``, ``discharge_v`` or ``charge_v``."""
        ocv = self.truth["ocv"]
        return np.asarray(ocv["soc"]), np.asarray(ocv[branch])


def case(key: str) -> SuiteCase:
    found = SuiteCase(key)
    if not (found.folder / "truth.json").exists():
        raise FileNotFoundError(f"no DFN case {key!r} in {FOLDER}")
    return found


def cases(prefix: str = "") -> list[SuiteCase]:
    """Every case whose key starts with ``prefix``, sorted."""
    return [SuiteCase(p.parent.name) for p in sorted(FOLDER.glob(f"{prefix}*/truth.json"))]


def identified(*tested: SuiteCase, pulse: str = "hppc") -> Identification:
    """``cellwarden identify`` on the cases' pulse and slow tests (one pair per case, that is
    per chamber temperature), with the rated capacity, as a user would run it."""
    return identify(
        [c.trace(pulse) for c in tested],
        [c.trace("slow") for c in tested],
        tested[0].rated_capacity_ah,
        name=f"{tested[0].key}-identified",
    )
