"""The HTML report: one self-contained file a CI artifact viewer opens.

``--ml-report-html PATH`` (ini ``ml_report_html``) writes it at the end of
the session, from the same data as the JSON report (so it covers a whole
pytest-xdist run). Everything is inline: CSS, a little JavaScript for the
filters, and the figures that checks attach through
:func:`mltest.report.record_figure`, drawn here as SVG (``line``, ``bars``,
``heatmap``) or embedded as a ``data:`` URI (``png``). No CDN, no fonts, no
network.

Sections (their ``id`` is stable, tests look for them): ``session`` (seed,
replay command, environment), ``attention`` (each failed check of a failing
test with its diagnosis, metrics, example table and figures), ``tests`` (a
table of the ML tests, filterable by check kind and by outcome) and
``figures``.

Example:
    >>> from mltest.report import SessionReport
    >>> page = render_html(SessionReport(seed=1, devices=["cpu"], ml_enabled=True).to_json())
    >>> page.startswith("<!DOCTYPE html>")
    True
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

__all__ = ["render_html", "svg_figure"]

#: Example rows shown per check (the JSON report keeps up to 20).
MAX_EXAMPLE_ROWS = 10
#: Heatmaps larger than this (rows or columns) show colours without numbers.
_HEATMAP_TEXT_LIMIT = 16
_PALETTE = ("#3b6fd4", "#e07b39", "#2e9e6a", "#b5478f", "#8c6d1f", "#5b5b9e", "#c23b3b")
_BASE64 = re.compile(r"^[A-Za-z0-9+/=\s]*$")


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _num(value: Any) -> float | None:
    """A finite float, or None for missing, NaN, infinite and non-numbers."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _fmt(value: Any, *, _top: bool = True) -> str:
    """A cell's text: floats to 4 significant digits, containers compact, long text cut."""
    if isinstance(value, float):
        text = f"{value:.4g}"
    elif isinstance(value, Mapping):
        text = ", ".join(f"{k}: {_fmt(v, _top=False)}" for k, v in value.items())
        text = text if _top else "{" + text + "}"
    elif isinstance(value, list | tuple):
        records = bool(value) and all(isinstance(v, Mapping) for v in value)
        inner = ("; " if records else ", ").join(_fmt(v, _top=False) for v in value)
        text = inner if records else f"[{inner}]"  # records: {k: v}; {k: v}
    else:
        text = str(value)
    return text if not _top or len(text) <= 200 else text[:197] + "..."


def _tick(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1e4 or abs(value) < 1e-3:
        return f"{value:.2g}"
    return f"{value:.3g}"


def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi]."""
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(count - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks = []
    value = start
    while value <= hi + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    if ticks[-1] < hi:
        ticks.append(round(value, 12))
    return ticks


# ---------------------------------------------------------------------------
# Figures as SVG
# ---------------------------------------------------------------------------

_W, _H = 520, 280
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 16, 16, 48


def _frame(
    y_ticks: Sequence[float],
    y_of: Any,
    x_label: str,
    y_label: str,
) -> list[str]:
    parts = []
    for t in y_ticks:
        y = y_of(t)
        parts.append(
            f'<line x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_e(_tick(t))}</text>'
        )
    parts.append(
        f'<line x1="{_LEFT}" x2="{_LEFT}" y1="{_TOP}" y2="{_H - _BOTTOM}" class="axis"/>'
        f'<line x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{_H - _BOTTOM}" y2="{_H - _BOTTOM}" '
        'class="axis"/>'
    )
    if x_label:
        parts.append(
            f'<text x="{(_LEFT + _W - _RIGHT) / 2:.0f}" y="{_H - 6}" text-anchor="middle" '
            f'class="label">{_e(x_label)}</text>'
        )
    if y_label:
        mid = (_TOP + _H - _BOTTOM) / 2
        parts.append(
            f'<text x="12" y="{mid:.0f}" text-anchor="middle" class="label" '
            f'transform="rotate(-90 12 {mid:.0f})">{_e(y_label)}</text>'
        )
    return parts


def _legend(names: Sequence[str]) -> str:
    if len(names) < 2:
        return ""
    items = "".join(
        f'<span><i style="background:{_PALETTE[i % len(_PALETTE)]}"></i>{_e(n)}</span>'
        for i, n in enumerate(names)
    )
    return f'<div class="legend">{items}</div>'


def _svg(body: Sequence[str], label: str, height: int = _H) -> str:
    return (
        f'<svg viewBox="0 0 {_W} {height}" width="{_W}" height="{height}" role="img" '
        f'aria-label="{_e(label)}" xmlns="http://www.w3.org/2000/svg">{"".join(body)}</svg>'
    )


def _line_svg(data: Mapping[str, Any], label: str) -> str:
    series = {str(k): list(v) for k, v in (data.get("series") or {}).items() if isinstance(v, list)}
    xs_given = data.get("x")
    points: dict[str, list[tuple[float, float]]] = {}
    for name, ys in series.items():
        xs = xs_given if isinstance(xs_given, list) and len(xs_given) == len(ys) else None
        pts = []
        for i, y in enumerate(ys):
            xv = _num(xs[i]) if xs is not None else float(i)
            yv = _num(y)
            if xv is not None and yv is not None:
                pts.append((xv, yv))
        points[name] = pts
    every = [p for pts in points.values() for p in pts]
    if not every:
        return '<p class="muted">no finite points to draw</p>'
    x_lo, x_hi = min(p[0] for p in every), max(p[0] for p in every)
    y_ticks = _nice_ticks(min(p[1] for p in every), max(p[1] for p in every))
    y_lo, y_hi = y_ticks[0], y_ticks[-1]
    x_span = (x_hi - x_lo) or 1.0

    def x_of(v: float) -> float:
        return _LEFT + (v - x_lo) / x_span * (_W - _LEFT - _RIGHT)

    def y_of(v: float) -> float:
        return _TOP + (y_hi - v) / ((y_hi - y_lo) or 1.0) * (_H - _TOP - _BOTTOM)

    body = _frame(y_ticks, y_of, str(data.get("x_label") or ""), str(data.get("y_label") or ""))
    for t in _nice_ticks(x_lo, x_hi) if x_hi > x_lo else [x_lo]:
        if x_lo <= t <= x_hi:
            body.append(
                f'<text x="{x_of(t):.1f}" y="{_H - _BOTTOM + 16}" text-anchor="middle">'
                f"{_e(_tick(t))}</text>"
            )
    for i, (name, pts) in enumerate(points.items()):
        colour = _PALETTE[i % len(_PALETTE)]
        path = " ".join(f"{x_of(x):.1f},{y_of(y):.1f}" for x, y in pts)
        body.append(
            f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2">'
            f"<title>{_e(name)}</title></polyline>"
        )
        if len(pts) == 1:
            x, y = pts[0]
            body.append(f'<circle cx="{x_of(x):.1f}" cy="{y_of(y):.1f}" r="3" fill="{colour}"/>')
    return _svg(body, label) + _legend(list(points))


def _bars_svg(data: Mapping[str, Any], label: str) -> str:
    labels = [str(v) for v in data.get("labels") or []]
    series = {str(k): list(v) for k, v in (data.get("series") or {}).items() if isinstance(v, list)}
    if not labels or not series:
        return '<p class="muted">no bars to draw</p>'
    values = [_num(v) for vs in series.values() for v in vs]
    finite = [v for v in values if v is not None]
    y_ticks = _nice_ticks(
        min(0.0, *finite) if finite else 0.0, max(0.0, *finite) if finite else 1.0
    )
    y_lo, y_hi = y_ticks[0], y_ticks[-1]
    rotate = len(labels) > 8 or max(len(t) for t in labels) > 10
    bottom = _BOTTOM + (40 if rotate else 0)
    height = _H + (40 if rotate else 0)

    def y_of(v: float) -> float:
        return _TOP + (y_hi - v) / ((y_hi - y_lo) or 1.0) * (height - _TOP - bottom)

    # The frame is drawn for the default height; shift its x axis for rotated labels.
    body = []
    for t in y_ticks:
        y = y_of(t)
        body.append(
            f'<line x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_e(_tick(t))}</text>'
        )
    body.append(
        f'<line x1="{_LEFT}" x2="{_LEFT}" y1="{_TOP}" y2="{height - bottom}" class="axis"/>'
    )
    slot = (_W - _LEFT - _RIGHT) / len(labels)
    width = slot * 0.8 / len(series)
    zero = y_of(0.0)
    every = max(1, math.ceil(len(labels) / 30))
    for j, text in enumerate(labels):
        x0 = _LEFT + j * slot + slot * 0.1
        for i, (name, vs) in enumerate(series.items()):
            v = _num(vs[j]) if j < len(vs) else None
            if v is None:
                continue
            y = y_of(v)
            colour = _PALETTE[i % len(_PALETTE)]
            body.append(
                f'<rect x="{x0 + i * width:.1f}" y="{min(y, zero):.1f}" '
                f'width="{max(width - 1, 1):.1f}" '
                f'height="{abs(zero - y):.1f}" fill="{colour}"><title>{_e(name)} {_e(text)}: '
                f"{_e(_tick(v))}</title></rect>"
            )
        if j % every == 0:
            short = text if len(text) <= 14 else text[:13] + "…"
            cx = _LEFT + (j + 0.5) * slot
            ty = height - bottom + 14
            if rotate:
                body.append(
                    f'<text x="{cx:.1f}" y="{ty}" text-anchor="end" '
                    f'transform="rotate(-45 {cx:.1f} {ty})">{_e(short)}</text>'
                )
            else:
                body.append(f'<text x="{cx:.1f}" y="{ty}" text-anchor="middle">{_e(short)}</text>')
    body.append(
        f'<line x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{zero:.1f}" y2="{zero:.1f}" class="axis"/>'
    )
    if data.get("x_label"):
        body.append(
            f'<text x="{(_LEFT + _W - _RIGHT) / 2:.0f}" y="{height - 6}" text-anchor="middle" '
            f'class="label">{_e(data["x_label"])}</text>'
        )
    if data.get("y_label"):
        mid = (_TOP + height - bottom) / 2
        body.append(
            f'<text x="12" y="{mid:.0f}" text-anchor="middle" class="label" '
            f'transform="rotate(-90 12 {mid:.0f})">{_e(data["y_label"])}</text>'
        )
    return _svg(body, label, height) + _legend(list(series))


def _heatmap_svg(data: Mapping[str, Any], label: str) -> str:
    values = [list(r) for r in data.get("values") or [] if isinstance(r, list)]
    if not values or not any(values):
        return '<p class="muted">no cells to draw</p>'
    n_rows, n_cols = len(values), max(len(r) for r in values)
    rows = [str(v) for v in (data.get("rows") or range(n_rows))][:n_rows]
    cols = [str(v) for v in (data.get("cols") or range(n_cols))][:n_cols]
    finite = [v for r in values for v in map(_num, r) if v is not None]
    lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
    left = 16 + min(14, max((len(r) for r in rows), default=1)) * 7
    top = 24 + min(14, max((len(c) for c in cols), default=1)) * 6
    cell = max(14.0, min(44.0, (_W - left - 10) / n_cols))
    width = left + cell * n_cols + 10
    height = top + cell * n_rows + 28
    body = []
    for j, c in enumerate(cols):
        cx = left + (j + 0.5) * cell
        short = c if len(c) <= 14 else c[:13] + "…"
        body.append(
            f'<text x="{cx:.1f}" y="{top - 6}" text-anchor="start" '
            f'transform="rotate(-45 {cx:.1f} {top - 6})">{_e(short)}</text>'
        )
    show_text = n_rows <= _HEATMAP_TEXT_LIMIT and n_cols <= _HEATMAP_TEXT_LIMIT
    for i, row in enumerate(values):
        cy = top + i * cell
        short = rows[i] if i < len(rows) else str(i)
        short = short if len(short) <= 14 else short[:13] + "…"
        body.append(
            f'<text x="{left - 6}" y="{cy + cell / 2 + 4:.1f}" text-anchor="end">{_e(short)}</text>'
        )
        for j in range(n_cols):
            v = _num(row[j]) if j < len(row) else None
            share = 0.0 if v is None or hi == lo else (v - lo) / (hi - lo)
            fill = "#eee" if v is None else f"rgba(59,111,212,{0.06 + 0.94 * share:.3f})"
            x = left + j * cell
            body.append(
                f'<rect x="{x:.1f}" y="{cy:.1f}" width="{cell - 1:.1f}" height="{cell - 1:.1f}" '
                f'fill="{fill}"><title>{_e(short)} / {_e(cols[j] if j < len(cols) else j)}: '
                f"{_e(_fmt(row[j]) if j < len(row) else '')}</title></rect>"
            )
            if show_text and v is not None:
                colour = "#fff" if share > 0.55 else "#222"
                body.append(
                    f'<text x="{x + cell / 2 - 0.5:.1f}" y="{cy + cell / 2 + 4:.1f}" '
                    f'text-anchor="middle" fill="{colour}">{_e(_tick(v))}</text>'
                )
    notes = []
    if data.get("row_label"):
        notes.append(f"rows: {data['row_label']}")
    if data.get("col_label"):
        notes.append(f"columns: {data['col_label']}")
    if notes:
        text = ", ".join(notes)
        width = max(width, 16 + 7 * len(text))
        body.append(f'<text x="16" y="{height - 8:.0f}" class="label">{_e(text)}</text>')
    return (
        f'<svg viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" height="{height:.0f}" '
        f'role="img" aria-label="{_e(label)}" xmlns="http://www.w3.org/2000/svg">'
        f"{''.join(body)}</svg>"
    )


def svg_figure(figure: Mapping[str, Any]) -> str:
    """Draw one recorded figure as HTML: inline SVG, or an ``<img>`` for ``png``.

    Args:
        figure: A figure as :func:`mltest.report.record_figure` stores it.

    Returns:
        An HTML fragment; a figure whose data cannot be drawn says so.

    Example:
        >>> svg_figure({"kind": "line", "name": "loss",
        ...             "data": {"series": {"loss": [2.0, 1.0, 0.5]}}})[:4]
        '<svg'
    """
    kind = figure.get("kind")
    data = figure.get("data") or {}
    label = str(figure.get("title") or figure.get("name") or kind)
    if not isinstance(data, Mapping):
        return '<p class="muted">figure data is not a mapping</p>'
    if kind == "line":
        return _line_svg(data, label)
    if kind == "bars":
        return _bars_svg(data, label)
    if kind == "heatmap":
        return _heatmap_svg(data, label)
    if kind == "png":
        encoded = str(data.get("base64") or "")
        if not encoded or not _BASE64.match(encoded):
            return '<p class="muted">not a base64 PNG</p>'
        return f'<img alt="{_e(label)}" src="data:image/png;base64,{"".join(encoded.split())}">'
    return f'<p class="muted">unknown figure kind {_e(kind)}</p>'


def _figure_block(figure: Mapping[str, Any], anchor: str | None = None) -> str:
    title = figure.get("title") or figure.get("name") or ""
    caption = figure.get("caption") or ""
    ident = f' id="{_e(anchor)}"' if anchor else ""
    return (
        f'<figure class="fig"{ident} data-kind="{_e(figure.get("kind"))}">'
        f"<figcaption><b>{_e(title)}</b></figcaption>{svg_figure(figure)}"
        + (f'<p class="caption">{_e(caption)}</p>' if caption else "")
        + "</figure>"
    )


# ---------------------------------------------------------------------------
# Tables and sections
# ---------------------------------------------------------------------------


def _kv_table(values: Mapping[str, Any], cls: str = "kv") -> str:
    if not values:
        return ""
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(_fmt(v))}</td></tr>" for k, v in values.items())
    return f'<table class="{cls}">{rows}</table>'


def _examples_table(examples: Sequence[Any]) -> str:
    if not examples:
        return ""
    shown = list(examples)[:MAX_EXAMPLE_ROWS]
    if all(isinstance(e, Mapping) for e in shown):
        columns: list[str] = []
        for e in shown:
            columns.extend(str(k) for k in e if str(k) not in columns)
        head = "".join(f"<th>{_e(c)}</th>" for c in columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{_e(_fmt(e.get(c, '')))}</td>" for c in columns) + "</tr>"
            for e in shown
        )
    else:
        head = "<th>example</th>"
        body = "".join(f"<tr><td>{_e(_fmt(e))}</td></tr>" for e in shown)
    more = (
        f'<p class="muted">{len(examples) - len(shown)} more in the JSON report</p>'
        if len(examples) > len(shown)
        else ""
    )
    return (
        f'<table class="examples"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
        + more
    )


def _outcome_badge(outcome: str) -> str:
    return f'<span class="badge o-{_e(outcome)}">{_e(outcome)}</span>'


def _session_section(data: Mapping[str, Any]) -> str:
    session = data.get("session") or {}
    env = data.get("environment") or {}
    seed = session.get("seed")
    replay = f"pytest --ml --ml-seed {seed}"
    git = env.get("git") or {}
    facts: dict[str, Any] = {
        "seed": seed,
        "devices": ", ".join(session.get("devices") or []) or "none",
        "ML tests": "on" if session.get("ml_enabled") else "off",
    }
    if env.get("python"):
        facts["python"] = f"{env.get('python')} ({env.get('implementation', '')})"
    if env.get("platform"):
        facts["platform"] = env["platform"]
    if env.get("cpu_count"):
        facts["CPUs"] = env["cpu_count"]
    if isinstance(git, Mapping) and git.get("sha"):
        state = []
        untracked = int(git.get("untracked") or 0)
        if git.get("modified", git.get("dirty") and not untracked):
            state.append("uncommitted changes")
        if untracked:
            state.append(f"{untracked} untracked")
        facts["git"] = f"{str(git['sha'])[:12]}" + (f" ({', '.join(state)})" if state else "")
    devices = env.get("devices")
    if isinstance(devices, Mapping) and devices:
        facts["torch devices"] = (
            "torch not imported"
            if devices.get("torch_loaded") is False
            else _fmt({k: v for k, v in devices.items() if k != "torch_loaded"})
        )
    dvc = env.get("dvc")
    packages = {k: v for k, v in (env.get("packages") or {}).items() if v}
    return (
        '<section id="session" class="card"><h2>Session</h2>'
        f'<p>Replay this run: <code class="replay">{_e(replay)}</code></p>'
        f'<div class="session-grid">{_kv_table(facts)}'
        + (
            f'<div class="pkgs"><b>packages</b><ul>{_package_items(packages)}</ul></div>'
            if packages
            else ""
        )
        + "</div>"
        + (
            f"<details><summary>DVC data ({len(dvc)})</summary>{_kv_table(dvc)}</details>"
            if isinstance(dvc, Mapping) and dvc
            else ""
        )
        + "</section>"
    )


def _package_items(packages: Mapping[str, Any]) -> str:
    return "".join(
        f"<li><span>{_e(name)}</span> <code>{_e(version)}</code></li>"
        for name, version in sorted(packages.items())
    )


def _check_detail(check: Mapping[str, Any], figures: Sequence[Mapping[str, Any]]) -> str:
    status = "pass" if check.get("passed") else "FAIL"
    cls = "c-pass" if check.get("passed") else "c-fail"
    metrics = check.get("metrics") or {}
    return (
        f'<div class="check {cls}"><div class="check-head"><span class="tag {cls}">{status}</span> '
        f"<b>{_e(check.get('kind'))}/{_e(check.get('name'))}</b>"
        + (
            f' <span class="headline">{_e(check.get("headline"))}</span>'
            if check.get("headline")
            else ""
        )
        + "</div>"
        + '<div class="evidence">'
        + (_kv_table(metrics, "kv metrics") if metrics else "")
        + _examples_table(check.get("examples") or [])
        + "</div>"
        + "".join(_figure_block(f) for f in figures)
        + "</div>"
    )


def _figures_of(test: Mapping[str, Any], check_name: str) -> list[Mapping[str, Any]]:
    return [f for f in test.get("figures") or [] if f.get("check") == check_name]


def _attention_section(
    needs: Sequence[tuple[str, Mapping[str, Any]]],
    expected: int,
    tests: Mapping[str, Mapping[str, Any]],
    seed: Any,
) -> str:
    parts = ['<section id="attention" class="card"><h2>Needs attention</h2>']
    if not needs:
        parts.append('<p class="ok">No failed checks in failing tests.</p>')
    for nodeid, check in needs:
        test = tests[nodeid]
        parts.append(
            f'<article class="failure"><h3>{_e(check.get("kind"))}/{_e(check.get("name"))} '
            f"<small>in <code>{_e(nodeid)}</code></small> {_outcome_badge(test['outcome'])}</h3>"
            f'<p class="diagnosis">{_e(check.get("headline") or "(no headline)")}</p>'
            f'<p class="muted">rerun: <code>pytest --ml --ml-seed {_e(seed)} '
            f"{_e(_shell_quote(nodeid))}</code></p>"
            + '<div class="evidence">'
            + _kv_table(check.get("metrics") or {}, "kv metrics")
            + _examples_table(check.get("examples") or [])
            + "</div>"
            + "".join(_figure_block(f) for f in _figures_of(test, str(check.get("name"))))
            + "</article>"
        )
    if expected:
        parts.append(
            f'<p class="muted">{expected} failed check{"s" if expected != 1 else ""} inside '
            "tests that did not fail (expected failures): filter the table by "
            "<i>checks: failed</i> to see them.</p>"
        )
    parts.append("</section>")
    return "".join(parts)


def _shell_quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def _tests_section(
    ordered: Sequence[Mapping[str, Any]], kinds: Sequence[str], outcomes: Sequence[str]
) -> str:
    kind_options = "".join(f'<option value="{_e(k)}">{_e(k)}</option>' for k in kinds)
    outcome_options = "".join(f'<option value="{_e(o)}">{_e(o)}</option>' for o in outcomes)
    rows = []
    for index, test in enumerate(ordered):
        checks = test.get("checks") or []
        kinds_here = sorted({str(c.get("kind")) for c in checks} | set(test.get("markers") or []))
        n_failed = sum(1 for c in checks if not c.get("passed"))
        chips = "".join(
            f'<span class="chip {"c-pass" if c.get("passed") else "c-fail"}" '
            f'title="{_e(c.get("headline") or "")}">{_e(c.get("kind"))}/{_e(c.get("name"))}</span>'
            for c in checks[:12]
        )
        if len(checks) > 12:
            chips += f'<span class="muted"> +{len(checks) - 12}</span>'
        used: set[int] = set()
        details = []
        for c in checks:
            figs = [f for f in _figures_of(test, str(c.get("name"))) if id(f) not in used]
            used.update(id(f) for f in figs)
            details.append(_check_detail(c, figs))
        loose = [f for f in test.get("figures") or [] if id(f) not in used]
        details.extend(_figure_block(f) for f in loose)
        if test.get("metrics"):
            details.append("<h4>metrics</h4>" + _kv_table(test["metrics"], "kv metrics"))
        if test.get("artifacts"):
            details.append("<h4>artifacts</h4>" + _kv_table(test["artifacts"]))
        if test.get("data"):
            details.append("<h4>data</h4>" + _kv_table(test["data"]))
        if test.get("skip_reason"):
            details.append(f'<p class="muted">skipped: {_e(test["skip_reason"])}</p>')
        outcome = str(test.get("outcome"))
        rows.append(
            f'<tr class="test" data-outcome="{_e(outcome)}" '
            f'data-kinds="{_e(" ".join(kinds_here))}" '
            f'data-failed-checks="{n_failed}" data-name="{_e(str(test.get("nodeid")).lower())}">'
            f"<td>{_outcome_badge(outcome)}</td>"
            f'<td class="nodeid"><details><summary><code>{_e(test.get("nodeid"))}</code>'
            f"</summary>{''.join(details) or '<p class=muted>nothing recorded</p>'}</details></td>"
            f'<td class="num">{len(checks) - n_failed}/{len(checks)}</td>'
            f'<td class="chips">{chips}</td>'
            f'<td class="num">{float(test.get("duration_s") or 0):.2f}s</td></tr>'
        )
        del index
    return (
        '<section id="tests" class="card"><h2>ML tests</h2>'
        '<div class="filters">'
        '<label>kind <select id="f-kind"><option value="">all</option>'
        f"{kind_options}</select></label>"
        '<label>outcome <select id="f-outcome"><option value="">all</option>'
        f"{outcome_options}</select></label>"
        '<label>checks <select id="f-checks"><option value="">all</option>'
        '<option value="failed">with a failed check</option>'
        '<option value="passed">all checks passed</option></select></label>'
        '<label>search <input id="f-text" type="search" placeholder="node id"></label>'
        '<span id="f-count" class="muted"></span></div>'
        '<table class="tests"><thead><tr><th>outcome</th><th>test</th><th>checks ok</th>'
        "<th>checks</th><th>time</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
        + ("" if rows else '<p class="muted">No ML tests in this run.</p>')
        + "</section>"
    )


def _figures_section(ordered: Sequence[Mapping[str, Any]]) -> str:
    blocks = []
    for test in ordered:
        for figure in test.get("figures") or []:
            blocks.append(
                f'<div class="gallery-item"><p class="muted"><code>{_e(test.get("nodeid"))}'
                f"</code></p>{_figure_block(figure)}</div>"
            )
    body = (
        f'<div class="gallery">{"".join(blocks)}</div>'
        if blocks
        else '<p class="muted">No figures were recorded.</p>'
    )
    return f'<section id="figures" class="card"><h2>Figures ({len(blocks)})</h2>{body}</section>'


_CSS = """
:root{--fg:#1f2328;--muted:#656d76;--line:#d0d7de;--bg:#f6f8fa;--pass:#1a7f37;--fail:#cf222e;
--skip:#8c959f;--xfail:#9a6700;--error:#8250df}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:var(--fg);background:var(--bg)}
header.top{background:#24292f;color:#fff;padding:18px 28px}
header.top h1{margin:0 0 8px;font-size:22px}
header.top .counts span{display:inline-block;margin:2px 8px 2px 0;padding:2px 10px;
border-radius:12px;background:#32383f;font-weight:600}
main{max-width:1240px;margin:0 auto;padding:16px 20px 40px}
.card{background:#fff;border:1px solid var(--line);border-radius:8px;padding:14px 18px;
margin:0 0 16px}
h2{margin:0 0 10px;font-size:18px}
h3{font-size:15px;margin:0 0 6px}
h4{margin:10px 0 4px;font-size:13px}
code{font:12.5px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:#eff1f3;
padding:1px 4px;border-radius:4px;word-break:break-all}
table{border-collapse:collapse;margin:6px 0}
th,td{border-bottom:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top}
table.kv th{color:var(--muted);font-weight:500;white-space:nowrap}
table.examples{font-size:12.5px}
table.examples thead th{background:var(--bg)}
table.tests{width:100%}table.tests th{white-space:nowrap}
table.tests>thead th{background:var(--bg);position:sticky;top:0}
td.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
td.nodeid{max-width:560px;min-width:300px}
td.nodeid summary{cursor:pointer}
.muted{color:var(--muted)}
.ok{color:var(--pass);font-weight:600}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-size:12px;
font-weight:600}
.o-passed{background:var(--pass)}
.o-failed{background:var(--fail)}
.o-error{background:var(--error)}
.o-skipped{background:var(--skip)}
.o-xfailed,.o-xpassed{background:var(--xfail)}
.chip{display:inline-block;margin:1px 3px 1px 0;padding:0 6px;border-radius:4px;font-size:12px;
border:1px solid}
.chip.c-pass{color:var(--pass);border-color:#9bd5ab;background:#eefbf1}
.chip.c-fail{color:var(--fail);border-color:#f5a8ae;background:#fff1f2}
.tag{font-weight:700;font-size:11px;padding:0 5px;border-radius:3px;color:#fff}
.tag.c-pass{background:var(--pass)}
.tag.c-fail{background:var(--fail)}
.check{border-left:3px solid var(--line);padding:4px 10px;margin:8px 0}
.check.c-fail{border-left-color:var(--fail)}
.check.c-pass{border-left-color:#9bd5ab}
.failure{border:1px solid #f5a8ae;border-left:4px solid var(--fail);border-radius:6px;
padding:10px 14px;margin:10px 0;background:#fffafa}
.diagnosis{font-weight:600;margin:4px 0}
.filters{display:flex;gap:14px;flex-wrap:wrap;align-items:center;margin-bottom:8px}
.filters select,.filters input{font:inherit;padding:2px 6px}
figure.fig{display:inline-block;margin:8px 12px 8px 0;padding:8px;border:1px solid var(--line);
border-radius:6px;background:#fff;vertical-align:top}
figure.fig figcaption{margin-bottom:4px}
figure.fig img{max-width:520px}
.caption{margin:4px 0 0;color:var(--muted);font-size:12px;max-width:520px}
svg{display:block;font:11px system-ui,sans-serif}
svg text{fill:#444}
svg .label{fill:#222;font-weight:600}
svg .grid{stroke:#eaeef2}
svg .axis{stroke:#8c959f}
.legend span{display:inline-block;margin-right:12px;font-size:12px}
.legend i{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
.gallery{display:flex;flex-wrap:wrap;gap:4px}
.gallery-item p{margin:0}
tr.hidden{display:none}
.evidence{display:flex;flex-wrap:wrap;gap:0 28px;align-items:flex-start}
header.top .counts span.o-passed{background:var(--pass)}
header.top .counts span.o-failed{background:var(--fail)}
header.top .counts span.o-error{background:var(--error)}
header.top .counts span.o-xfailed,header.top .counts span.o-xpassed{background:var(--xfail)}
.session-grid{display:flex;flex-wrap:wrap;gap:0 40px;align-items:flex-start}
.pkgs ul{columns:2;column-gap:28px;list-style:none;padding:0;margin:6px 0}
.pkgs li{padding:2px 0;border-bottom:1px solid var(--line);break-inside:avoid}
.pkgs li span{display:inline-block;min-width:130px;color:var(--muted)}
figure.fig img{min-width:96px;image-rendering:pixelated}
"""

_JS = """
(function(){
  function fail(msg){document.body.setAttribute('data-js-error', String(msg));}
  window.addEventListener('error', function(e){fail(e.message || e);});
  try {
    var rows = Array.prototype.slice.call(document.querySelectorAll('tr.test'));
    var kind = document.getElementById('f-kind'), outcome = document.getElementById('f-outcome');
    var checks = document.getElementById('f-checks'), text = document.getElementById('f-text');
    var count = document.getElementById('f-count');
    function apply(){
      var shown = 0, k = kind.value, o = outcome.value, c = checks.value;
      var t = text.value.toLowerCase();
      rows.forEach(function(r){
        var ok = (!k || (' ' + r.dataset.kinds + ' ').indexOf(' ' + k + ' ') >= 0)
          && (!o || r.dataset.outcome === o)
          && (!c || (c === 'failed') === (r.dataset.failedChecks !== '0'))
          && (!t || r.dataset.name.indexOf(t) >= 0);
        r.classList.toggle('hidden', !ok);
        if (ok) { shown++; }
      });
      count.textContent = shown + ' of ' + rows.length + ' tests';
    }
    [kind, outcome, checks].forEach(function(el){el.addEventListener('change', apply);});
    text.addEventListener('input', apply);
    // A link can carry filters: report.html#outcome=failed&kind=data
    var fields = {kind: kind, outcome: outcome, checks: checks, q: text};
    location.hash.replace(/^#/, '').split('&').forEach(function(pair){
      var kv = pair.split('='), el = fields[kv[0]];
      if (el && kv.length === 2) { el.value = decodeURIComponent(kv[1]); }
    });
    apply();
    document.body.setAttribute('data-js-ready', '1');
  } catch (e) { fail(e); }
})();
"""


def render_html(report: Mapping[str, Any], *, title: str = "mltest report") -> str:
    """Render a report (the JSON form, ``SessionReport.to_json()``) as one HTML page.

    Args:
        report: The JSON report's data.
        title: The page title.

    Returns:
        The page: inline CSS, inline JavaScript for the filters, figures as SVG.

    Example:
        >>> from mltest.report import SessionReport
        >>> html = render_html(SessionReport(seed=7, devices=["cpu"], ml_enabled=True).to_json())
        >>> 'id="attention"' in html and "--ml-seed 7" in html
        True
    """
    from mltest.report import SessionReport, _natural_key

    session = report.get("session") or {}
    tests: dict[str, Mapping[str, Any]] = {
        str(t["nodeid"]): t for t in report.get("tests") or [] if isinstance(t, Mapping)
    }
    ordered = [tests[n] for n in sorted(tests, key=_natural_key)]
    view = SessionReport(seed=int(session.get("seed") or 0), devices=[], ml_enabled=True)
    view.tests = {n: dict(t) for n, t in tests.items()}
    needs, expected = view.attention()
    outcomes: dict[str, int] = {}
    for t in ordered:
        outcomes[str(t.get("outcome"))] = outcomes.get(str(t.get("outcome")), 0) + 1
    kinds = sorted(
        {str(c.get("kind")) for t in ordered for c in t.get("checks") or []}
        | {m for t in ordered for m in t.get("markers") or []}
    )
    n_checks = sum(len(t.get("checks") or []) for t in ordered)
    n_failed = sum(1 for t in ordered for c in t.get("checks") or [] if not c.get("passed"))
    counts = "".join(
        f'<span class="o-{_e(o)}">{n} {_e(o)}</span>' for o, n in sorted(outcomes.items())
    )
    counts += f"<span>{n_checks} checks, {n_failed} failed</span>"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f'<header class="top"><h1>{_e(title)}</h1><div class="counts">{counts}</div></header>'
        "<main>"
        + _session_section(report)
        + _attention_section(needs, len(expected), tests, session.get("seed"))
        + _tests_section(ordered, kinds, sorted(outcomes))
        + _figures_section(ordered)
        + f"</main><script>{_JS}</script></body></html>\n"
    )
