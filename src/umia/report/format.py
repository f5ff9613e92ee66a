"""How the report and the terminal write numbers and attacks: three decimals, an interval in
brackets, an attack's registered label. No matplotlib: the end of a run prints with these."""

from __future__ import annotations

import pandas as pd

from umia import registry


def fmt(x: float, digits: int = 3) -> str:
    """``x`` to ``digits`` decimals; a dash for a missing value."""
    return "–" if pd.isna(x) else f"{x:.{digits}f}"


def ci(row: pd.Series, col: str) -> str:
    """``row[col]`` with its interval (``<col>_ci_low``, ``<col>_ci_high``) where the row has one."""
    lo, hi = row.get(f"{col}_ci_low"), row.get(f"{col}_ci_high")
    if lo is None or pd.isna(lo):
        return fmt(row[col])
    return f"{fmt(row[col])} [{fmt(lo)}, {fmt(hi)}]"


def attack_label(attack: str) -> str:
    """An attack's label in figures and the report (its name where it is not registered)."""
    spec = registry.ATTACKS.get(attack)
    return spec.label if spec else attack
