"""The seed papers' own models on the Pareto chart: labelled vertical lines at their measured throughput.

Their ImageNet accuracy is not comparable with a proxy accuracy, so they are not points: each is a
line across the accuracy axis at the throughput it reaches on the search's device under the search's
protocol (``nas.references``), labelled with the paper's name.  The lines carry ``meta`` role
"reference" (and the model), so tests read them back; they have no ``customdata``, so clicking one
selects no trial.
"""
from __future__ import annotations

import html
import math
from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from backbones.references import reference_label
from nas.store import ReferenceMeasurement

__all__ = ["REFERENCE_COLOR", "add_reference_lines"]

REFERENCE_COLOR = "#0f766e"
LEGEND_LABEL = "seed paper's model, measured here (throughput only)"
_HOVER = ("<b>%{meta.label}</b> (%{meta.model})<br>the seed paper's model, measured on %{meta.device}<br>"
          "throughput: %{x:,.0f} img/s · batch-1 latency: %{meta.latency_ms:.2f} ms<br>"
          "params: %{meta.params_m:.2f} M · GMACs: %{meta.gmacs:.3f}<extra></extra>")


def add_reference_lines(fig: go.Figure, references: Sequence[ReferenceMeasurement], *,
                        y_range: tuple[float, float], subplot: dict) -> None:
    """One labelled vertical line per reference model (positive, finite throughput) across ``y_range``
    (accuracy units) of ``subplot``."""
    low, high = y_range
    for i, ref in enumerate(sorted(references, key=lambda r: r.throughput)):
        label = reference_label(ref.model)
        meta = {"role": "reference", "model": ref.model, "label": label, "device": ref.device_kind,
                "latency_ms": ref.latency_ms,
                "params_m": ref.params / 1e6, "gmacs": ref.gmacs}
        ys = np.linspace(low, high, 24).tolist()  # hover anywhere along the line, not only at its ends
        fig.add_trace(go.Scatter(
            x=[ref.throughput] * len(ys), y=ys, mode="lines", name=LEGEND_LABEL, legendgroup="references",
            showlegend=i == 0, legendrank=750, line={"color": REFERENCE_COLOR, "dash": "dashdot", "width": 1.3},
            hovertemplate=_HOVER, meta=meta), **subplot)
        # log axes place annotations in log10 units; the label runs up the line's left side from its foot,
        # away from the front, which lives at the top of the chart
        fig.add_annotation(x=math.log10(ref.throughput), y=low, text=html.escape(label), showarrow=False,
                           textangle=-90, xanchor="right", yanchor="bottom", xshift=-1,
                           font={"size": 11, "color": REFERENCE_COLOR}, **subplot)
