"""Score many clips: per-attribute accuracy over the clips that name each attribute.

    rows = [score_clip(analyze_clip(v), target) for v, target in zip(videos, targets)]
    summary = summarize(rows)           # {'accuracy': {...}, 'judged': {...}, 'presence'}
    print(format_table(summary))
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lumiere_jax.eval.analyzer import ClipAnalysis

__all__ = ["METRICS", "format_table", "score_clip", "summarize"]

# Reported in this order; 'color_shape_direction' is all three right at once.
METRICS = ("color", "shape", "direction", "speed", "size", "count", "background",
           "color_shape_direction")
_LABELS = {"color": "colour", "color_shape_direction": "colour+shape+direction"}


def score_clip(analysis: ClipAnalysis, target: str | dict[str, Any]) -> dict[str, Any]:
    """One clip: {'matches': per-attribute bool / None, 'presence': mean presence of the
    tracks paired with the named objects (0 for a named object nobody plays), 'reading'}."""
    pairs = analysis.pairs(target)
    presence = float(np.mean([0.0 if t is None else t.presence for t in pairs])) if pairs else 0.0
    return {"matches": analysis.matches(target), "presence": presence,
            "reading": analysis.describe()}


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per metric: accuracy over the clips where it was judged (None if none was), and how
    many were judged; mean object presence over all clips."""
    accuracy, judged = {}, {}
    for m in METRICS:
        votes = [r["matches"][m] for r in rows if r["matches"].get(m) is not None]
        judged[m] = len(votes)
        accuracy[m] = float(np.mean(votes)) if votes else None
    presence = float(np.mean([r["presence"] for r in rows])) if rows else None
    return {"accuracy": accuracy, "judged": judged, "presence": presence,
            "num_clips": len(rows)}


def format_table(summary: dict[str, Any], extra: dict[str, Any] | None = None) -> str:
    """A fixed-width text table of a `summarize` result (+ extra name -> value rows)."""
    lines = [f"{'accuracy':<24}{'value':>10}{'clips':>8}", "-" * 42]
    for m in METRICS:
        acc = summary["accuracy"][m]
        lines.append(f"{_LABELS.get(m, m):<24}{'-' if acc is None else f'{acc:.3f}':>10}"
                     f"{summary['judged'][m]:>8}")
    lines.append("-" * 42)
    rows = {"object presence": summary["presence"], **(extra or {})}
    for name, value in rows.items():
        text = ("-" if value is None else
                f"{value:.3f}" if isinstance(value, float) else str(value))
        lines.append(f"{name:<24}{text:>10}")
    return "\n".join(lines)
