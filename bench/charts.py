"""Matplotlib charts of the benchmarks (Agg backend, PNG files a reader can open in docs/benchmarks/)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bench.common import median


def bar_with_trials(series: Mapping[str, Sequence[float]], png: Path, *, title: str, unit: str) -> Path:
    """One bar per series at its median, every trial as a dot on it, the median written on top."""
    png.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=110)
    names = list(series)
    for i, name in enumerate(names):
        values = list(series[name])
        mid = median(values)
        ax.bar(i, mid, color="#4c72b0" if i % 2 == 0 else "#55a868", alpha=0.85)
        ax.scatter([i] * len(values), values, color="black", s=12, zorder=3)
        ax.annotate(f"{mid:.3g} {unit}", (i, mid), ha="center", va="bottom", fontsize=9,
                    xytext=(0, 3), textcoords="offset points")  # fmt: skip
    ax.set_xticks(range(len(names)), names, rotation=12, ha="right", fontsize=9)
    ax.set_ylabel(unit)
    ax.set_title(title, fontsize=11)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)
    return png


def lines(
    xs: Sequence[float],
    series: Mapping[str, Sequence[float]],
    png: Path,
    *,
    title: str,
    xlabel: str,
    ylabel: str,
) -> Path:
    """Line chart, one line per series over the same x values."""
    png.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=110)
    for name, ys in series.items():
        ax.plot(list(xs), list(ys), marker="o", label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)
    return png
