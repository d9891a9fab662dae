"""Plotly figures (and the per-stage HTML diagram) built from the frames in ``dashboard.frames``.

Every trial trace carries the trial id as ``customdata[0]`` so a selected point maps back to its
trial whichever trace it came from, and a ``meta`` role ("trials", "front", "constraint") so tests
can read the figure back from the browser.
"""
from __future__ import annotations

import html
from typing import Sequence
import math

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from nas.store import EpochRecord, ReferenceMeasurement, TrialStatus

from .frames import ArchView
from .reference_lines import add_reference_lines
from .refinements import add_refined_markers

STATUS_STYLE: dict[str, dict] = {
    TrialStatus.COMPLETED.value: {"rank": 100, "label": "completed", "color": "#2563eb", "symbol": "circle"},
    TrialStatus.STOPPED.value: {"rank": 200, "label": "early-stopped", "color": "#0d9488", "symbol": "diamond"},
    TrialStatus.RUNNING.value: {"rank": 300, "label": "running (partial)", "color": "#6b7280", "symbol": "circle-open"},
    TrialStatus.INFEASIBLE.value: {"rank": 400, "label": "infeasible (over a limit)", "color": "#d97706", "symbol": "x"},
    TrialStatus.FAILED.value: {"rank": 500, "label": "failed", "color": "#dc2626", "symbol": "x"},
}
# Statuses whose trials can have an accuracy (a running trial has a partial one).
_WITH_ACCURACY = (TrialStatus.COMPLETED.value, TrialStatus.STOPPED.value, TrialStatus.RUNNING.value)
SEED_STYLE = {"rank": 600, "label": "seed paper's hand design", "color": "#7c3aed", "symbol": "star"}
FRONT_COLOR = "#111827"
CONSTRAINT_COLOR = "#b91c1c"
MIXER_COLORS = {
    "pooling": "#cbd5e1", "sepconv": "#93c5fd", "dynamic_filter": "#86efac", "hilo": "#fde68a",
    "dma": "#fdba74", "msda": "#f9a8d4", "dynamixer": "#c4b5fd", "mhsa": "#fca5a5",
}
_FALLBACK_COLORS = ("#a5f3fc", "#d9f99d", "#fecdd3", "#e9d5ff", "#fed7aa")
_CUSTOM = ["id", "number", "status_label", "mixers", "depths", "dims", "params_m", "gmacs", "latency_ms", "note"]
_HOVER = ("<b>Trial %{customdata[0]}</b> (#%{customdata[1]}, %{customdata[2]})%{customdata[9]}<br>"
          "mixers: %{customdata[3]}<br>depths: %{customdata[4]} · widths: %{customdata[5]}<br>"
          "params: %{customdata[6]:.2f} M · GMACs: %{customdata[7]:.3f}<br>"
          "throughput: %{x:,.0f} img/s · batch-1 latency: %{customdata[8]:.2f} ms<br>")
_LEGEND = {"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "left", "x": 0}


def mixer_color(mixer: str) -> str:
    return MIXER_COLORS.get(mixer) or _FALLBACK_COLORS[sum(map(ord, mixer)) % len(_FALLBACK_COLORS)]


def _status_label(status: str) -> str:
    return STATUS_STYLE.get(status, {"label": str(status)})["label"]


def stopped_note(epoch: int, planned: int | None) -> str:
    """Where an early-stopped trial's accuracy comes from."""
    of = f" of {planned}" if planned else ""
    return f"stopped early at epoch {epoch}{of}: accuracy after {epoch} epoch{'' if epoch == 1 else 's'}"


def _hover_frame(df: pd.DataFrame) -> pd.DataFrame:
    """The customdata columns, in ``_CUSTOM`` order."""
    out = df.assign(status_label=df["status"].map(_status_label))
    notes = []
    for seed, reused, stopped, planned in zip(df["seed_name"], df["reused_from"], df["stopped_at_epoch"],
                                              df["epochs_planned"]):
        parts = [f"seed: {seed}"] if isinstance(seed, str) else []
        if pd.notna(reused):
            parts.append(f"reused result of trial {int(reused)}")
        if pd.notna(stopped):
            parts.append(stopped_note(int(stopped), None if pd.isna(planned) else int(planned)))
        notes.append(("<br><i>" + "; ".join(parts) + "</i>") if parts else "")
    return out.assign(note=notes)[_CUSTOM]


def _points(df: pd.DataFrame, y: pd.Series, name: str, style: dict, *, hover_y: str, legendgroup: str,
            showlegend: bool = True) -> go.Scatter:
    marker = {"color": style["color"], "symbol": style["symbol"], "size": 10,
              "line": {"width": 1.5 if "open" in style["symbol"] else 0.5, "color": style["color"]}}
    if style is SEED_STYLE:
        marker.update(size=17, line={"width": 1, "color": "#ffffff"})
    return go.Scatter(
        x=df["throughput"], y=y, mode="markers", name=name, marker=marker, legendgroup=legendgroup,
        legendrank=style["rank"], showlegend=showlegend, customdata=_hover_frame(df).to_numpy(),
        hovertemplate=_HOVER + hover_y + "<extra></extra>", meta={"role": "trials"})


_LABEL_WIDTH = 0.14   # a label's width as a fraction of the x range, roughly
_LABEL_HEIGHT_PX = 18
_PLOT_PX = (900, 360)  # typical size of the accuracy plot area on the page
_MARKER_HALF = 0.015  # half a marker's width as a fraction of the x range


def _annotate_seed(fig: go.Figure, x: float, y: object, name: str, subplot: dict, **place) -> None:
    # log axes place annotations in log10 units
    fig.add_annotation(x=x, y=y, text=html.escape(name), showarrow=True, arrowhead=0, standoff=8,
                       arrowcolor=SEED_STYLE["color"], font={"size": 12, "color": SEED_STYLE["color"]},
                       **place, **subplot)


def _label_chart_seeds(fig: go.Figure, seeds: pd.DataFrame, *, x_range: tuple[float, float],
                       y_range: tuple[float, float], subplot: dict) -> None:
    """Name each hand design next to its star, on a rough pixel model of the plot: above or below
    (alternating in throughput order, never off the top or bottom edge), further out or shifted sideways
    when an earlier label already holds that spot."""
    width_px, height_px = _PLOT_PX
    x_span, y_span = x_range[1] - x_range[0], (y_range[1] - y_range[0]) or 1.0
    boxes: list[tuple[float, float, float, float]] = []
    for i, (_, row) in enumerate(seeds.sort_values("throughput").iterrows()):
        x = math.log10(row["throughput"])
        px, py = (x - x_range[0]) / x_span * width_px, (y_range[1] - row["accuracy"]) / y_span * height_px
        half_w, half_h = 3.6 * len(str(row["seed_name"])) + 4, _LABEL_HEIGHT_PX / 2
        first = -1 if i % 2 == 0 else 1
        steps = [26, 46, 66, 86]
        candidates = [(0, first * d) for d in steps] + [(0, -first * d) for d in steps] + \
                     [(dx, dy) for dx in (-80, 80) for dy in (-26, 26, -46, 46)]

        def fits(ax: float, ay: float) -> bool:
            x0, x1, y0, y1 = px + ax - half_w, px + ax + half_w, py + ay - half_h, py + ay + half_h
            return (y0 >= -half_h and y1 <= height_px + half_h
                    and not any(x0 < bx1 and bx0 < x1 and y0 < by1 and by0 < y1 for bx0, bx1, by0, by1 in boxes))

        ax, ay = next((c for c in candidates if fits(*c)), candidates[0])
        boxes.append((px + ax - half_w, px + ax + half_w, py + ay - half_h, py + ay + half_h))
        _annotate_seed(fig, x, row["accuracy"], str(row["seed_name"]), subplot, ax=ax, ay=ay,
                       bgcolor="rgba(255,255,255,0.7)")


def _label_strip_seeds(fig: go.Figure, seeds: pd.DataFrame, rows: pd.Series, markers: pd.DataFrame, *,
                       x_range: tuple[float, float], subplot: dict) -> None:
    """Name each hand design in the strip to the right of its star, or above, left or below it: the first
    side whose label would cover no other marker of its row, no earlier label and stay inside the plot."""
    span = x_range[1] - x_range[0]
    width, gap, half = _LABEL_WIDTH * span, 0.02 * span, _MARKER_HALF * span
    row_of = {name: k for k, name in enumerate(_STRIP_ROWS)}  # bottom to top, as on the axis
    obstacles = [(math.log10(t), row_of[r]) for t, r in zip(markers["throughput"], markers["row"])]
    taken: list[tuple[float, float, float]] = []   # (left, right, row) of placed labels
    sides = {  # (left, right, row offset) of the label relative to the star, and how plotly places it
        "right": (gap, gap + width, 0.0, {"ax": 14, "ay": 0, "xanchor": "left"}),
        "above": (-width / 2, width / 2, 0.5, {"ax": 0, "ay": -16}),
        "left": (-gap - width, -gap, 0.0, {"ax": -14, "ay": 0, "xanchor": "right"}),
        "below": (-width / 2, width / 2, -0.5, {"ax": 0, "ay": 16}),
    }
    for (_, seed), row_name in zip(seeds.iterrows(), rows):
        x, r = math.log10(seed["throughput"]), row_of[row_name]

        def free(lo: float, hi: float, dr: float) -> bool:
            inside = x_range[0] <= x + lo and x + hi <= x_range[1]
            hits_marker = dr == 0 and any(mr == r and x + lo - half < mx < x + hi + half and abs(mx - x) > 1e-9
                                          for mx, mr in obstacles)
            hits_label = any(tr == r + dr and x + lo < tr_hi and tl < x + hi for tl, tr_hi, tr in taken)
            return inside and not hits_marker and not hits_label

        lo, hi, dr, place = next((side for side in sides.values() if free(*side[:3])), sides["above"])
        taken.append((x + lo, x + hi, r + dr))
        _annotate_seed(fig, x, row_name, str(seed["seed_name"]), subplot, **place)


def plotted(df: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Masks of the trials drawn on the accuracy chart and of those drawn in the no-accuracy strip;
    a trial in neither failed before its speed was measured, so it has no x position."""
    measured = df["throughput"] > 0
    on_chart = measured & df["accuracy"].notna() & df["status"].isin(_WITH_ACCURACY)
    return on_chart, measured & ~on_chart


def pareto_figure(df: pd.DataFrame, *, throughput_title: str, accuracy_title: str,
                  min_throughput: float | None = None, revision: str = "",
                  references: Sequence[ReferenceMeasurement] = ()) -> go.Figure:
    """Accuracy vs log throughput; trials without accuracy go to a strip underneath, by status; the seed
    papers' ``references`` as labelled vertical lines at their throughput."""
    on_chart, in_strip = plotted(df)
    references = [r for r in references if r.throughput and math.isfinite(r.throughput) and r.throughput > 0]
    xs = [*df.loc[on_chart | in_strip, "throughput"], *([min_throughput] if min_throughput else []),
          *(r.throughput for r in references)]
    # pad by ~15 % each side (log axis ranges are in log10 units) so edge points and lines stay clear
    x_range = (math.log10(min(xs)) - 0.06, math.log10(max(xs)) + 0.06) if xs else (0.0, 1.0)
    is_seed = df["seed_name"].notna()
    has_strip = bool(in_strip.any())
    fig = (make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.8, 0.2], vertical_spacing=0.05)
           if has_strip else go.Figure())
    row1 = {"row": 1, "col": 1} if has_strip else {}
    hover_acc = "proxy accuracy: %{y:.2f} %"

    for status in _WITH_ACCURACY:
        part = df[on_chart & ~is_seed & (df["status"] == status)]
        if len(part):
            fig.add_trace(_points(part, part["accuracy"], _status_label(status), STATUS_STYLE[status],
                                  hover_y=hover_acc, legendgroup=status), **row1)
    seeds = df[on_chart & is_seed]
    if len(seeds):
        fig.add_trace(_points(seeds, seeds["accuracy"], SEED_STYLE["label"], SEED_STYLE, hover_y=hover_acc,
                              legendgroup="seed"), **row1)
        accs = df.loc[on_chart, "accuracy"]
        pad = 0.05 * ((accs.max() - accs.min()) or 1.0)  # plotly's own autorange padding, roughly
        _label_chart_seeds(fig, seeds, x_range=x_range, y_range=(accs.min() - pad, accs.max() + pad), subplot=row1)
    front = df[df["on_front"]].sort_values("throughput")
    if len(front):
        fig.add_trace(go.Scatter(
            x=front["throughput"], y=front["accuracy"], mode="lines+markers", name="Pareto front (non-dominated)",
            line={"color": FRONT_COLOR, "width": 1.5, "dash": "dot", "shape": "vh"},
            marker={"symbol": "circle-open", "size": 22, "color": FRONT_COLOR, "line": {"width": 2}},
            unselected={"marker": {"opacity": 1}},  # the front stays visible while a point is selected
            customdata=_hover_frame(front).to_numpy(), hovertemplate=_HOVER + hover_acc + "<extra>front</extra>",
            legendrank=700, meta={"role": "front"}), **row1)
    add_refined_markers(fig, df[on_chart], subplot=row1)
    if min_throughput:
        accs = df["accuracy"].dropna()
        low, high = (accs.min(), accs.max()) if len(accs) else (0.0, 100.0)
        fig.add_trace(go.Scatter(
            x=[min_throughput, min_throughput], y=[low - 1, high + 1], mode="lines", hoverinfo="skip",
            name=f"min throughput {min_throughput:,.0f} img/s (limit)",
            line={"color": CONSTRAINT_COLOR, "dash": "dash", "width": 1.5}, legendrank=800,
            meta={"role": "constraint"}), **row1)
    if references:
        accs = df.loc[on_chart, "accuracy"]
        low, high = (accs.min(), accs.max()) if len(accs) else (0.0, 100.0)
        add_reference_lines(fig, references, y_range=(low - 1, high + 1), subplot=row1)

    if has_strip:
        for status in (*reversed(_WITH_ACCURACY), TrialStatus.INFEASIBLE.value, TrialStatus.FAILED.value):
            part = df[in_strip & ~is_seed & (df["status"] == status)]
            if len(part):
                label = _status_label(status)
                fig.add_trace(_points(part, part["status"].map(_strip_row), label, STATUS_STYLE[status],
                                      hover_y="no accuracy", legendgroup=status,
                                      showlegend=label not in {t.name for t in fig.data}), row=2, col=1)
        strip_seeds = df[in_strip & is_seed]
        if len(strip_seeds):
            strip_y = strip_seeds["status"].map(_strip_row)
            fig.add_trace(_points(strip_seeds, strip_y, SEED_STYLE["label"], SEED_STYLE, hover_y="no accuracy",
                                  legendgroup="seed", showlegend=not len(seeds)), row=2, col=1)
            markers = df[in_strip].assign(row=df.loc[in_strip, "status"].map(_strip_row))
            _label_strip_seeds(fig, strip_seeds, strip_y, markers, x_range=x_range, subplot={"row": 2, "col": 1})
        rows = set(df.loc[in_strip, "status"].map(_strip_row))
        fig.update_yaxes(title_text="no accuracy", categoryorder="array", row=2, col=1,
                         categoryarray=[r for r in _STRIP_ROWS if r in rows])
        fig.update_xaxes(title_text=throughput_title, row=2, col=1)
        fig.update_yaxes(title_text=accuracy_title, row=1, col=1)
    else:
        fig.update_layout(xaxis_title=throughput_title, yaxis_title=accuracy_title)
    if xs:
        fig.update_xaxes(range=list(x_range))
    fig.update_xaxes(type="log", showgrid=True)
    fig.update_layout(height=560 if has_strip else 480, legend=_LEGEND, margin={"l": 10, "r": 10, "t": 70, "b": 10},
                      hovermode="closest", uirevision=revision, clickmode="event+select", dragmode="zoom")
    return fig


_STRIP_ROWS = (TrialStatus.FAILED.value, TrialStatus.INFEASIBLE.value, "no accuracy", TrialStatus.RUNNING.value)  # strip rows, bottom to top


def _strip_row(status: str) -> str:
    return status if status in _STRIP_ROWS else "no accuracy"


def latency_figure(df: pd.DataFrame, *, max_latency_ms: float | None, accuracy_title: str) -> go.Figure:
    """Accuracy vs batch-1 latency of the trained trials, with the latency limit when one was set."""
    fig = go.Figure()
    trained = df[df["accuracy"].notna() & (df["latency_ms"] > 0)]
    for status in (*_WITH_ACCURACY, TrialStatus.FAILED.value):
        part = trained[trained["status"] == status]
        if len(part):
            style = STATUS_STYLE[status]
            fig.add_trace(go.Scatter(
                x=part["latency_ms"], y=part["accuracy"], mode="markers", name=style["label"],
                marker={"color": style["color"], "symbol": style["symbol"], "size": 9},
                customdata=part[["id"]].to_numpy(),
                hovertemplate="Trial %{customdata[0]}<br>%{x:.2f} ms · %{y:.2f} %<extra></extra>"))
    if max_latency_ms:
        accs = trained["accuracy"]
        low, high = (accs.min(), accs.max()) if len(accs) else (0.0, 100.0)
        fig.add_trace(go.Scatter(
            x=[max_latency_ms, max_latency_ms], y=[low - 1, high + 1], mode="lines", hoverinfo="skip",
            name=f"latency limit {max_latency_ms:g} ms", line={"color": CONSTRAINT_COLOR, "dash": "dash"}))
    right = max([*trained["latency_ms"], max_latency_ms or 0.0], default=1.0)
    fig.update_xaxes(range=[0, right * 1.08])  # keep the limit line off the plot edge
    fig.update_layout(height=360, xaxis_title="Batch-1 latency (ms, median)", yaxis_title=accuracy_title,
                      legend=_LEGEND, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


def hypervolume_figure(hv: pd.DataFrame, *, hours_unit: str) -> go.Figure:
    fig = go.Figure(go.Scatter(
        x=hv["device_hours"], y=hv["hypervolume"], mode="lines+markers", line={"shape": "hv", "color": "#2563eb"},
        hovertemplate=f"%{{x:.3f}} {hours_unit} · HV %{{y:.3f}}<extra></extra>", name="hypervolume"))
    fig.update_layout(height=360, xaxis_title=f"Device-hours charged ({hours_unit})",
                      yaxis_title="Hypervolume (log₁₀ img/s × accuracy)", showlegend=False,
                      margin={"l": 10, "r": 10, "t": 20, "b": 10})
    return fig


def front_mixer_figure(counts: pd.DataFrame) -> go.Figure:
    """Stage × mixer heatmap: how often each mixer appears in each stage of the non-dominated trials."""
    fig = go.Figure(go.Heatmap(
        z=counts.to_numpy(), x=list(counts.columns), y=list(counts.index), colorscale="Blues", showscale=False,
        text=counts.to_numpy(), texttemplate="%{text}", xgap=2, ygap=2,
        hovertemplate="%{y} · %{x}: %{z} front trial(s)<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(height=80 + 55 * len(counts), xaxis_title="Token mixer",
                      margin={"l": 10, "r": 10, "t": 20, "b": 10})
    return fig


def learning_curve_figure(epochs: Sequence[EpochRecord]) -> go.Figure:
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    x = [e.epoch for e in epochs]
    acc = [e.val_accuracy * 100 if e.val_accuracy is not None else None for e in epochs]
    fig.add_trace(go.Scatter(x=x, y=acc, name="val accuracy (%)", mode="lines+markers", line={"color": "#2563eb"}),
                  secondary_y=False)
    for key, color in (("train_loss", "#d97706"), ("val_loss", "#dc2626")):
        fig.add_trace(go.Scatter(x=x, y=[getattr(e, key) for e in epochs], name=key.replace("_", " "),
                                 mode="lines+markers", line={"color": color, "dash": "dot"}), secondary_y=True)
    fig.update_xaxes(title_text="Epoch", dtick=1)
    fig.update_yaxes(title_text="Validation accuracy (%)", secondary_y=False)
    fig.update_yaxes(title_text="Loss", secondary_y=True, showgrid=False)
    fig.update_layout(height=320, legend=_LEGEND, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


def stage_diagram_html(arch: ArchView) -> str:
    """One coloured box per stage (mixer, depth, width), boxes wider for deeper stages."""
    boxes = []
    for i, mixer in enumerate(arch.mixers):
        depth = arch.depths[i] if i < len(arch.depths) else "?"
        dim = arch.dims[i] if i < len(arch.dims) else "?"
        grow = depth if isinstance(depth, int) and depth > 0 else 1
        boxes.append(
            f'<div style="flex:{grow} 1 0;min-width:120px;background:{mixer_color(mixer)};border-radius:6px;'
            f'padding:8px 10px;color:#111827;border:1px solid #9ca3af">'
            f'<div style="font-size:0.75rem;opacity:0.75">Stage {i + 1}</div>'
            f'<div style="font-weight:600">{html.escape(mixer)}</div>'
            f'<div style="font-size:0.85rem">depth {html.escape(str(depth))} · width {html.escape(str(dim))}</div>'
            f"</div>")
    arrow = '<div style="align-self:center;color:#6b7280">→</div>'
    return f'<div style="display:flex;gap:6px;margin:4px 0 12px 0">{arrow.join(boxes)}</div>'

