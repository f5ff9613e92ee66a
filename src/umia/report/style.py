"""The figures' common style: one colour per method across figures (controls black and green),
the attacks' labels and figures from the registry, the warning banner of an uninformative study,
and saving as PNG and vector PDF, atomically."""

from __future__ import annotations

import contextlib
import contextvars
import textwrap
from collections.abc import Iterator, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from umia import registry  # noqa: E402
from umia.io import atomic_path  # noqa: E402
from umia.report.findings import method_order  # noqa: E402
from umia.report.format import attack_label  # noqa: E402, F401  (the figures' attack labels)

CONTROL_COLOURS = {"none": "#404040", "retrain": "#2ca02c"}
# Colour-blind-safe (Okabe-Ito, then Paul Tol's muted scheme), each visible on white (a contrast of
# at least 2:1: no yellow), without the controls' black and green.
PALETTE = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#882255",  # wine
    "#CC79A7",  # reddish purple
    "#D55E00",  # vermillion
    "#56B4E9",  # sky blue
    "#332288",  # indigo
    "#999933",  # olive
    "#AA4499",  # purple
    "#44AA99",  # teal
    "#8C564B",  # brown
)
STOP_METHOD, STOP_BASE = "per_example_stop", "neggrad_plus"

plt.rcParams.update({"font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 8})


def method_colours(methods: Sequence[str]) -> dict[str, str]:
    """One colour per method, fixed by its place in the method list (controls: black, green)."""
    rest = [m for m in method_order(methods) if m not in CONTROL_COLOURS]
    return {**CONTROL_COLOURS, **{m: PALETTE[i % len(PALETTE)] for i, m in enumerate(rest)}}


# each method entry's display name while figures are drawn (``display_names``): the config's
# labels, plug-ins' declared labels; the registry's names otherwise
_LABELS: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("umia_method_labels", default=None)


@contextlib.contextmanager
def display_names(labels: dict[str, str] | None) -> Iterator[None]:
    token = _LABELS.set(dict(labels or {}))
    try:
        yield
    finally:
        _LABELS.reset(token)


def method_name(method: str) -> str:
    """A method entry's display name (registry.method_label with the run's labels)."""
    return registry.method_label(method, _LABELS.get())


def method_label(method: str) -> str:
    return f"{method} (control)" if method in ("none", "retrain") else method_name(method)


def method_tick(method: str) -> str:
    return f"{method}\n(control)" if method in ("none", "retrain") else method_name(method).replace(" (", "\n(")


# a warning every figure drawn inside ``banner`` carries above its title (an uninformative study)
_BANNER: contextvars.ContextVar[str | None] = contextvars.ContextVar("umia_figure_banner", default=None)


@contextlib.contextmanager
def banner(text: str | None) -> Iterator[None]:
    token = _BANNER.set(text)
    try:
        yield
    finally:
        _BANNER.reset(token)


def save(fig: plt.Figure, stem: str) -> None:
    text = _BANNER.get()
    if text:
        wrapped = textwrap.fill(f"WARNING: {text}.", max(60, int(fig.get_figwidth() * 14)))
        fig.text(0.5, 1.0, wrapped, ha="center", va="bottom", color="#b0261c", fontsize=9, weight="bold")
    for ext in ("png", "pdf"):
        with atomic_path(f"{stem}.{ext}") as tmp:
            fig.savefig(tmp, format=ext, dpi=150, bbox_inches="tight")
    plt.close(fig)


def grid(n: int, ncols: int = 4, size: tuple[float, float] = (3.0, 2.8), **kw):
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), squeeze=False, **kw)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def attacks_in(figure: str, present: Sequence[str] | None = None) -> list[str]:
    """The attacks (registry order) whose ``registry.ATTACKS`` entry lists ``figure``, and, given
    ``present``, that are among those."""
    keep = None if present is None else set(present)
    return [a for a, spec in registry.ATTACKS.items() if figure in spec.figures and (keep is None or a in keep)]


def violins(ax, data: Sequence, colours: Sequence[str], **kw) -> None:
    """A violin with its median for each non-empty array of ``data`` at x = 1, 2, ..., in the
    method's colour; empty ones leave their place blank."""
    keep = [i for i, d in enumerate(data) if len(d)]
    if not keep:
        return
    parts = ax.violinplot([data[i] for i in keep], positions=[i + 1 for i in keep], showmedians=True, **kw)
    for body, i in zip(parts["bodies"], keep, strict=True):
        body.set_facecolor(colours[i])
        body.set_alpha(0.6)
    for key in ("cmedians", "cmins", "cmaxes", "cbars"):
        parts[key].set_color("k")
        parts[key].set_linewidth(0.8)


def below(fig: plt.Figure, ax: plt.Axes, **kw) -> None:
    """The legend of ``ax``'s lines under the figure, off every panel's data (call after
    ``tight_layout``, which would otherwise shrink the panels to make room beside them)."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=min(3, len(labels)), **kw)
