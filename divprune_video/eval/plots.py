"""Accuracy against keep ratio across runs (``divprune-video bench plot``)."""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path
from typing import Any, Mapping, Sequence

from .._optional import require

logger = logging.getLogger(__name__)


def _series_key(summary: Mapping[str, Any]) -> tuple[str, str]:
    """(panel, line): one panel per benchmark setting, one line per model x method x prune layer ("" for
    unpruned runs)."""
    settings = summary.get("benchmark_settings", {})
    panel = summary["benchmark"]
    if settings.get("subtitles"):
        panel += " (subtitles)"
    if settings.get("split") and settings.get("split") != "dev":
        panel += f" ({settings['split']})"
    variant = summary["variant"]
    model = summary.get("config", {}).get("model", "?")
    method = variant["method"]
    if variant.get("prune_layer") is not None:
        method += f" @layer {variant['prune_layer']}"
    return panel, (f"{Path(str(model)).name}: {method}" if variant["method"] != "none" else "")


def plot_accuracy_vs_keep_ratio(summaries: Sequence[Mapping[str, Any]], output: Path | str) -> Path:
    """Draw ``overall`` against keep ratio, one panel per benchmark; unpruned runs are dashed reference lines.
    Incomplete runs are drawn hollow. Returns the PNG path."""
    matplotlib = require("matplotlib", "eval")
    matplotlib.use("Agg")
    pyplot = require("matplotlib.pyplot", "eval", "matplotlib")
    panels: dict[str, dict[str, list[tuple[float, float, bool]]]] = defaultdict(lambda: defaultdict(list))
    for summary in summaries:
        panel, line = _series_key(summary)
        variant = summary["variant"]
        panels[panel][line].append((float(variant["keep_ratio"]), float(summary["overall"]),
                                    bool(summary.get("complete", True))))
    if not panels:
        raise ValueError("no summaries to plot")
    figure, axes = pyplot.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    for axis, (panel, lines) in zip(axes[0], sorted(panels.items())):
        for line, points in sorted(lines.items()):
            points.sort()
            if not line:  # unpruned runs: reference lines
                for _ratio, score, _complete in points:
                    axis.axhline(score, linestyle="--", linewidth=1, color="gray")
                    axis.annotate(f"unpruned {score:.1f}", (0.02, score), xycoords=("axes fraction", "data"),
                                  fontsize=8, va="bottom")
                continue
            ratios = [p[0] for p in points]
            scores = [p[1] for p in points]
            (drawn,) = axis.plot(ratios, scores, marker="o", label=line)
            for ratio, score, complete in points:
                if not complete:
                    axis.plot([ratio], [score], marker="o", markerfacecolor="white", color=drawn.get_color())
                axis.annotate(f"{score:.1f}", (ratio, score), textcoords="offset points", xytext=(0, 6),
                              ha="center", fontsize=8)
        axis.set_title(panel)
        axis.set_xlabel("fraction of visual tokens kept")
        axis.set_ylabel("accuracy (lmms-eval headline)")
        axis.set_xlim(0, 1.05)
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=8)
    figure.tight_layout()
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=120)
    pyplot.close(figure)
    logger.info("wrote %s", output)
    return output
