"""Accuracy against keep ratio across runs (``divprune-video bench plot``)."""

from __future__ import annotations

import logging
import tempfile
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
    replayed = str(model).startswith("replay:")
    return panel, (f"{Path(str(model)).name}: {method}" if variant["method"] != "none" and not replayed else "")


def _reference_label(summary: Mapping[str, Any]) -> str:
    """What a reference line measured: the model unpruned, or the saved outputs a replay re-scored."""
    model = str(summary.get("config", {}).get("model", "?"))
    if model.startswith("replay:"):
        return summary.get("label") or f"replay of {Path(model[len('replay:') :]).name}"
    return f"{Path(model).name} unpruned"


def check_writable(output: Path | str) -> None:
    """ValueError unless a file can be written at ``output`` (checked before any summary is read): not a folder,
    no file where a folder must be, and the folder writable (its missing parents are created)."""
    output = Path(output)
    if output.is_dir():
        raise ValueError(
            f"cannot write the plot to {output}: it is a folder (give a file name such as {output / 'accuracy.png'})"
        )
    for place in output.parents:
        if place.exists():
            if not place.is_dir():
                raise ValueError(f"cannot write the plot to {output}: {place} is a file, not a folder")
            break
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=output.parent):
            pass
    except OSError as error:
        raise ValueError(f"cannot write the plot to {output}: {error}") from None


def _variant_key(summary: Mapping[str, Any]) -> tuple[str, str, str, Any, float]:
    """What makes two summaries the same point: panel, model, method, prune layer and keep ratio."""
    variant = summary["variant"]
    panel, _line = _series_key(summary)
    return (
        panel,
        str(summary.get("config", {}).get("model", "?")),
        variant["method"],
        variant.get("prune_layer"),
        float(variant["keep_ratio"]),
    )


def distinct_summaries(summaries: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """One summary per point (:func:`_variant_key`): of several runs of the same variant (a copy of a folder, an
    older layout beside a newer one) the one with the most samples is kept, and the others are logged."""
    chosen: dict[tuple, Mapping[str, Any]] = {}
    for summary in summaries:
        key = _variant_key(summary)
        previous = chosen.get(key)
        if previous is not None:
            logger.warning(
                "%s %s of %s appears in more than one run folder; plotting the one with the most samples",
                key[0],
                summary.get("label", summary["variant"].get("name")),
                key[1],
            )
            if _samples(previous) >= _samples(summary):
                continue
        chosen[key] = summary
    return list(chosen.values())


def _samples(summary: Mapping[str, Any]) -> int:
    return int(summary.get("counts", {}).get("samples", 0))


Points = dict[str, dict[str, list[tuple[float, float, bool]]]]
References = dict[str, list[tuple[str, float]]]


def _collect(summaries: Sequence[Mapping[str, Any]]) -> tuple[Points, References]:
    """panel -> line -> (keep ratio, score, complete) points, and panel -> (label, score) reference lines."""
    points: Points = defaultdict(lambda: defaultdict(list))
    references: References = defaultdict(list)
    for summary in distinct_summaries(summaries):
        panel, line = _series_key(summary)
        if not line:  # unpruned and replayed runs
            references[panel].append((_reference_label(summary), float(summary["overall"])))
        else:
            points[panel][line].append(
                (
                    float(summary["variant"]["keep_ratio"]),
                    float(summary["overall"]),
                    bool(summary.get("complete", True)),
                )
            )
    return points, references


def _draw_panel(
    axis: Any, title: str, lines: Mapping[str, list[tuple[float, float, bool]]], references: Sequence[tuple[str, float]]
) -> None:
    for label, score in references:
        axis.axhline(score, linestyle="--", linewidth=1, color="gray")
        axis.annotate(
            f"{label} {score:.1f}", (0.02, score), xycoords=("axes fraction", "data"), fontsize=8, va="bottom"
        )
    for line, points in sorted(lines.items()):
        points = sorted(points)
        (drawn,) = axis.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=line)
        for ratio, score, complete in points:
            if not complete:
                axis.plot([ratio], [score], marker="o", markerfacecolor="white", color=drawn.get_color())
            axis.annotate(
                f"{score:.1f}", (ratio, score), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8
            )
    axis.set_title(title)
    axis.set_xlabel("fraction of visual tokens kept")
    axis.set_ylabel("accuracy (lmms-eval headline)")
    axis.set_xlim(0, 1.05)
    axis.grid(alpha=0.3)
    if axis.get_legend_handles_labels()[0]:
        axis.legend(fontsize=8)


def plot_accuracy_vs_keep_ratio(summaries: Sequence[Mapping[str, Any]], output: Path | str) -> Path:
    """Draw ``overall`` against keep ratio, one panel per benchmark; unpruned and replayed runs are dashed
    reference lines; each variant once (:func:`distinct_summaries`). Incomplete runs are drawn hollow. Returns the
    image path."""
    matplotlib = require("matplotlib", "eval")
    matplotlib.use("Agg")
    pyplot = require("matplotlib.pyplot", "eval", "matplotlib")
    points, references = _collect(summaries)
    panels = sorted(set(points) | set(references))
    if not panels:
        raise ValueError("no summaries to plot")
    figure, axes = pyplot.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    for axis, panel in zip(axes[0], panels):
        _draw_panel(axis, panel, points.get(panel, {}), references.get(panel, []))
    figure.tight_layout()
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=120)
    pyplot.close(figure)
    logger.info("wrote %s", output)
    return output
