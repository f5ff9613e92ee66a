"""The findings figures, drawn from the tables alone (no model, no GPU).

One function per figure (``umia.report.attack_figures``, ``umia.report.method_figures``); each
takes data frames and an output stem and writes ``stem.png`` and ``stem.pdf``; ``DRAW`` maps each
figure of ``umia.registry.FIGURES`` to its function. Every method keeps one colour across figures
(``method_colours``); every attack keeps the label and colour of its ``umia.registry.ATTACKS``
entry, and a figure shows the attacks whose entry lists it. The numbers the figures state (shares
of examples that got worse, shares that reached their retrain mean) come from
``umia.report.findings``, which also writes them to ``tables/findings.csv``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from pathlib import Path

import pandas as pd

from umia import registry
from umia.report import findings, verdict
from umia.report.attack_figures import (
    attack_accuracy,
    before_after,
    per_example_distribution,
    protected_examples,
    retained_change,
    roc,
)
from umia.report.findings import method_order
from umia.report.method_figures import efficiency, privacy_utility, rates, reach, stopping
from umia.report.style import (
    CONTROL_COLOURS,
    attack_label,
    attacks_in,
    banner,
    display_names,
    method_colours,
    plt,
    save,
)

__all__ = ["CONTROL_COLOURS", "DRAW", "Tables", "attack_label", "attacks_in", "banner", "figures", "method_colours"]
__all__ += ["attack_accuracy", "before_after", "per_example_distribution", "privacy_utility", "protected_examples"]
__all__ += ["rates", "reach", "retained_change", "roc", "save", "stopping", "plt", "efficiency"]


class Tables:
    """The tables the figures are drawn from, each read on first use (paths; rates and reach
    only where the experiment has unlearning methods)."""

    def __init__(
        self,
        summary: str,
        per_example: str,
        roc: str,
        examples: str,
        rates: str | None = None,
        reach: str | None = None,
        task: str = "image",
        utility: str | None = None,
        tuning: str | None = None,
        efficiency: str | None = None,
    ):
        self.task = task
        self.paths = {
            "summary": summary,
            "per_example": per_example,
            "roc": roc,
            "examples": examples,
            "rates": rates,
            "reach": reach,
            "utility": utility,
            "tuning": tuning,
            "efficiency": efficiency,
        }

    def has(self, name: str) -> bool:
        return bool(self.paths[name])

    def __getattr__(self, name: str) -> pd.DataFrame | None:
        """A table by name (``summary``, ``per_example``, ...), read on first use: CSV or Parquet
        by its suffix; None for a table that was not given."""
        paths = self.__dict__.get("paths", {})
        if name not in paths:
            raise AttributeError(name)
        path = paths[name]
        table = None if not path else pd.read_csv(path) if str(path).endswith(".csv") else pd.read_parquet(path)
        setattr(self, name, table)
        return table

    @cached_property
    def order(self) -> list[str]:
        """The config's method order (the summary's); one colour per method throughout."""
        return method_order(self.summary["method"].tolist())


# figure (a key of registry.FIGURES) -> its drawing from the tables into a stem
DRAW: dict[str, Callable[[Tables, str], None]] = {
    "attack_accuracy": lambda t, stem: attack_accuracy(t.summary, stem),
    "roc": lambda t, stem: roc(t.roc, stem),
    "per_example_accuracy": lambda t, stem: per_example_distribution(t.per_example, stem, order=t.order),
    "protected_examples": lambda t, stem: protected_examples(t.per_example, t.examples, stem, text=t.task == "text"),
    "before_after": lambda t, stem: before_after(t.per_example, stem, order=t.order),
    "retained_change": lambda t, stem: retained_change(t.per_example, stem, order=t.order),
    "rates": lambda t, stem: rates(t.rates, stem, order=t.order),
    "reach": lambda t, stem: reach(t.reach, stem, order=t.order),
    "per_example_stop": lambda t, stem: stopping(t.per_example, t.rates, stem, order=t.order),
    "privacy_utility": lambda t, stem: privacy_utility(t.summary, t.utility, t.tuning, stem, order=t.order),
    "efficiency": lambda t, stem: efficiency(t.efficiency, stem, order=t.order),
}
# beyond the four always there
NEEDS_TABLE = {
    "rates": "rates",
    "reach": "reach",
    "per_example_stop": "rates",
    "privacy_utility": "utility",
    "efficiency": "efficiency",
}


def default_names(tables: Tables, task: str = "image") -> list[str]:
    """The figures the tables call for: ``registry.figure_names`` of the task and the methods in
    the summary (base names, without overrides), less those whose table is not given."""
    methods = list(dict.fromkeys(m.split("@")[0] for m in tables.order if m not in findings.CONTROLS))
    names = registry.figure_names(task, methods)
    return [n for n in names if n not in NEEDS_TABLE or tables.has(NEEDS_TABLE[n])]


def figures(
    *,
    summary: str,
    per_example: str,
    roc_table: str,
    examples: str,
    out_dir: str,
    rates_table: str | None = None,
    reach_table: str | None = None,
    names: Sequence[str] | None = None,
    task: str = "image",
    utility_table: str | None = None,
    tuning_table: str | None = None,
    labels: Mapping[str, str] | None = None,
    efficiency_table: str | None = None,
) -> list[str]:
    """Draw the figures ``names`` (default: ``default_names``) from the tables into ``out_dir``
    as <name>.png and <name>.pdf; returns the names drawn. Methods are named by ``labels`` (method
    entry -> display name) where given, else by the registry's names. When the study is
    uninformative (umia.report.verdict.warning) every figure carries the warning."""
    t = Tables(
        summary,
        per_example,
        roc_table,
        examples,
        rates_table,
        reach_table,
        task,
        utility_table,
        tuning_table,
        efficiency_table,
    )
    names = default_names(t, task) if names is None else list(names)
    unknown = [n for n in names if n not in DRAW]
    if unknown:
        raise ValueError(f"no drawing for figure(s) {', '.join(unknown)}; known: {', '.join(DRAW)}")
    lacking = [n for n in names if n in NEEDS_TABLE and not t.has(NEEDS_TABLE[n])]
    if lacking:
        tables = sorted({NEEDS_TABLE[n] for n in lacking})
        raise ValueError(f"figure(s) {', '.join(lacking)} need the {' and '.join(tables)} tables, which were not given")
    out = Path(out_dir)
    with banner(verdict.warning(t.summary)), display_names(dict(labels or {})):
        for name in names:
            DRAW[name](t, str(out / name))
    return names
