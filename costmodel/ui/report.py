"""Reports of one scenario or a comparison: CSV, JSON (re-importable) and a self-contained HTML page.

No number is computed here: every value is ``costmodel.estimate`` of the scenario (through
``costmodel.scenario.evaluate_scenario``), only formatted. All user text (names, notes, config values)
goes through ``html.escape``; nothing a user typed is ever written into the page as markup, and the
names handed to plotly are escaped too (plotly renders a few tags such as ``<a>`` in labels).

- ``export_csv(scenarios)``: one row per scenario; columns ``name, model, hardware`` then the flattened
  ``Estimate.to_dict()`` keys (``workload.batch``, ``params.total``, ``memory_bytes.peak``, ``time_s.step``...).
- ``export_json(scenario_or_list)``: ``{"format": "costmodel-scenario", "scenario": ..., "results": ...}``
  or ``{"format": "costmodel-comparison", "scenarios": [{"scenario": ..., "results": ...}, ...]}``.
- ``import_scenario(text)`` / ``import_scenarios(text)``: parse with ``costmodel.safe_json`` and validate;
  results in the file are ignored (they are recomputed from the inputs).
- ``export_html(scenarios)``: tables, interactive plotly figures (plotly.js inlined once: opens offline),
  the assumptions, the plan and notes, and the sections of docs/formulas.md the numbers come from.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
from datetime import datetime, timezone
from pathlib import Path

from .. import __version__
from ..errors import InputError
from ..results import Estimate
from ..safe_json import MAX_INT, check_ints, parse_config_text
from ..scenario import evaluate_scenario, hardware_label, model_label, validate_scenario
from .figures import PALETTE
from .safe_text import csv_cell

FORMAT_ONE = "costmodel-scenario"
FORMAT_MANY = "costmodel-comparison"
FORMAT_VERSION = 1
# integers an export may hold in its results (ignored on import); the scenarios keep the +-2**63 rule
RESULTS_INT_LIMIT = MAX_INT ** 8
GIB = 2**30
FORMULAS_MD = Path(__file__).resolve().parents[2] / "docs" / "formulas.md"  # in a source checkout
FORMULAS_URL = "docs/formulas.md"  # relative to the costmodel repository
# the result groups a report shows: money, energy and carbon beside the physics (their assumptions are in the
# HTML report's Assumptions table and in the JSON export)
RESULT_GROUPS = ("workload", "params", "flops", "memory_bytes", "time_s", "perf", "cost_usd", "energy_kwh",
                 "carbon_kg_co2e")
MEMORY_KEYS = ("weights", "gradients", "optimizer", "activations", "logits_loss", "kv_cache", "transient", "peak",
               "runtime_overhead", "device_total", "capacity")


def _scenarios(scenarios) -> list[dict]:
    if isinstance(scenarios, dict):
        scenarios = [scenarios]
    if not isinstance(scenarios, (list, tuple)) or not scenarios:
        raise InputError("scenarios", "give one scenario or a non-empty list of scenarios")
    return [validate_scenario(s) for s in scenarios]


def _evaluated(scenarios) -> list[tuple[dict, Estimate]]:
    return [(s, evaluate_scenario(s)) for s in _scenarios(scenarios)]


def flatten(d: dict, prefix: str = "") -> dict:
    """``{"a": {"b": 1}} -> {"a.b": 1}``; lists of plain values are joined with commas."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        elif isinstance(v, (list, tuple)):
            out[key] = ",".join(str(x) for x in v)
        else:
            out[key] = v
    return out


def money_assumptions(est: Estimate) -> dict:
    """What the money, energy and carbon rest on, flat: ``assumption.<name>`` -> value (price per device-hour,
    provider, tier, device power, PUE, grid intensity and region)."""
    cost = est.assumptions.get("cost")
    if not isinstance(cost, dict):
        return {"assumption.cost": str(cost or "")}
    return {f"assumption.{k}": (v.get("value") if isinstance(v, dict) else v) for k, v in cost.items()}


def result_row(scenario: dict, est: Estimate) -> dict:
    """One CSV row: the scenario's name and labels, the flattened estimate, the money/energy/carbon assumptions,
    and, for a saved plan, the plan's totals (``plan.*``, costmodel.plan_scenario.plan_summary)."""
    from ..plan_scenario import evaluate_plan, plan_summary

    d = est.to_dict()
    body = {k: d[k] for k in RESULT_GROUPS}
    row = {"name": scenario["name"], "model": model_label(scenario["model"]),
           "hardware": hardware_label(scenario["hardware"]), **flatten(body), **money_assumptions(est)}
    plan = evaluate_plan(scenario)
    if plan is not None:
        row.update(plan_summary(plan))
    return row


# ---- CSV and JSON ---------------------------------------------------------------------------------

def export_csv(scenarios) -> str:
    rows = [result_row(s, e) for s, e in _evaluated(scenarios)]
    columns: list[str] = []
    for r in rows:
        columns.extend(k for k in r if k not in columns)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    w.writeheader()
    for r in rows:  # formula-like text (=, +, -, @ ...) gets a leading ': spreadsheets show it, never run it
        w.writerow({k: ("" if r.get(k) is None else csv_cell(r.get(k))) for k in columns})
    return buf.getvalue()


def _plan_results(s: dict):
    from ..plan_scenario import evaluate_plan

    plan = evaluate_plan(s)
    return plan.to_dict() if plan is not None else None


def _payload(scenarios, single: bool) -> dict:
    items = []
    for s, e in _evaluated(scenarios):
        item = {"scenario": s, "results": e.to_dict(with_layers=False)}
        plan = _plan_results(s)
        if plan is not None:
            item["plan_results"] = plan
        items.append(item)
    meta = {"format_version": FORMAT_VERSION, "costmodel_version": __version__,
            "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    if single:
        return {"format": FORMAT_ONE, **meta, **items[0]}
    return {"format": FORMAT_MANY, **meta, "scenarios": items}


def export_json(scenarios) -> str:
    """A dict exports as one scenario with its results; a list as a comparison."""
    single = isinstance(scenarios, dict)
    return json.dumps(_payload(scenarios, single), indent=1, ensure_ascii=False, allow_nan=False)


def import_scenarios(text: str | bytes) -> list[dict]:
    """Every scenario in an exported JSON file (either format, or a bare scenario object), validated.

    A costmodel export must say ``format_version``: a whole number from 1 to ``FORMAT_VERSION``. The exported
    results are ignored (recomputed from the inputs), so integers beyond 2**63 there (a huge model's parameter
    count) do not stop an export from being imported again; the scenarios themselves keep the strict rules."""
    d = parse_config_text(text, field="import", int_limit=RESULTS_INT_LIMIT)
    fmt = d.get("format")
    if fmt == FORMAT_ONE:
        raw = [d.get("scenario")]
    elif fmt == FORMAT_MANY:
        items = d.get("scenarios")
        if not isinstance(items, list) or not items:
            raise InputError("import.scenarios", "must be a non-empty list")
        raw = [it.get("scenario") if isinstance(it, dict) else None for it in items]
    elif fmt is None and "model" in d:
        raw = [d]
    else:
        raise InputError("import.format", f"must be {FORMAT_ONE!r} or {FORMAT_MANY!r} (a costmodel export), "
                                          f"got {fmt!r}")
    if fmt is not None:
        v = d.get("format_version")
        if "format_version" not in d:
            raise InputError("import.format_version", f"is missing; a costmodel export says which version of the "
                                                      f"format it is (this costmodel reads 1 to {FORMAT_VERSION})")
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise InputError("import.format_version", f"must be a whole number from 1 to {FORMAT_VERSION}, "
                                                      f"got {v!r:.40}")
        if v > FORMAT_VERSION:
            raise InputError("import.format_version", f"is {v}, newer than this costmodel understands "
                                                      f"({FORMAT_VERSION}); upgrade costmodel")
    out = []
    for i, s in enumerate(raw):
        if not isinstance(s, dict):
            raise InputError("import.scenario", f"entry {i} has no scenario object")
        check_ints(s, "import.scenario")
        out.append(validate_scenario(s))
    return out


def import_scenario(json_text: str | bytes) -> dict:
    """The one scenario in an exported JSON file (``export_json`` of a scenario), validated."""
    items = import_scenarios(json_text)
    if len(items) != 1:
        raise InputError("import", f"holds {len(items)} scenarios; import them with import_scenarios")
    return items[0]


# ---- HTML -----------------------------------------------------------------------------------------

def _e(x) -> str:
    return html.escape(str(x), quote=True)


def _gib(b) -> str:
    return f"{b / GIB:,.2f} GiB"


def _num(v) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def formula_sections(path: Path = FORMULAS_MD) -> dict[str, str]:
    """``## heading -> markdown text`` (level-3 subsections stay inside their section)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return {}
    out: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("## "):
            current = line[3:].strip()
            out[current] = ""
        elif current is not None:
            out[current] += line + "\n"
    return {k: v.strip() for k, v in out.items()}


def sections_used(workloads: list[dict]) -> list[str]:
    """The docs/formulas.md sections the numbers of these workloads come from."""
    names = ["Conventions", "Parameters", "FLOPs"]
    tasks = {w.get("task") for w in workloads}
    if "train" in tasks:
        names += ["Memory: training", "Optimizers"]
    if "infer" in tasks:
        names.append("Memory: inference")
    names += ["Precisions", "Time"]
    return names


def _table(rows: list[tuple], head: tuple | None = None, cls: str = "") -> str:
    out = [f'<table class="{cls}">' if cls else "<table>"]
    if head:
        out.append("<thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr></thead>")
    out.append("<tbody>")
    for r in rows:
        out.append("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _label(name: str) -> str:
    """A name for plotly: ``<``, ``>``, ``&`` escaped (plotly decodes these entities for display but
    would render tags such as ``<a href>``); quotes kept, since plotly does not decode ``&quot;``."""
    return html.escape(name, quote=False)


def _figures(items: list[tuple[dict, Estimate]]) -> list[tuple[str, object]]:
    import plotly.graph_objects as go

    def colour(i):
        return PALETTE[i % len(PALETTE)]

    figs = []
    mem = go.Figure()
    for i, (s, e) in enumerate(items):
        m = e.memory_bytes
        mem.add_bar(name=_label(s["name"]), x=list(MEMORY_KEYS), y=[getattr(m, k) / GIB for k in MEMORY_KEYS],
                    marker_color=colour(i))
    mem.update_layout(title="Memory per device (GiB)", barmode="group", yaxis_title="GiB", height=420,
                      legend_title_text="scenario")
    figs.append(("memory", mem))

    flops = go.Figure()
    keys = ("forward", "backward", "recompute", "total")
    for i, (s, e) in enumerate(items):
        flops.add_bar(name=_label(s["name"]), x=list(keys), y=[getattr(e.flops, k) for k in keys],
                      marker_color=colour(i))
    flops.update_layout(title="FLOPs per step (train) or prefill (infer); 2 per multiply-add", barmode="group",
                        yaxis_title="FLOPs", height=380, legend_title_text="scenario")
    figs.append(("flops", flops))

    t = go.Figure()
    for i, (s, e) in enumerate(items):
        times = e.time_s.to_dict()
        t.add_bar(name=_label(s["name"]), x=list(times), y=list(times.values()), marker_color=colour(i))
    t.update_layout(title="Time (seconds)", barmode="group", yaxis_title="s", height=380, legend_title_text="scenario")
    figs.append(("time", t))
    # an explicit template: importing streamlit in the same process changes plotly's global default
    for _, f in figs:
        f.update_layout(template="plotly_white")
    return figs


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1200px;color:#222;
padding:0 1rem}
h1{font-size:1.6rem}h2{margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5rem 0 1rem}td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;
vertical-align:top}th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}
pre{background:#f8f8f8;padding:.5rem;overflow-x:auto;white-space:pre-wrap}.muted{color:#666;font-size:.9rem}
.fits-no{color:#b00;font-weight:bold}
"""


def _comparison_rows(items) -> list[tuple]:
    def wl(e, k):
        return getattr(e.workload, k)

    rows = [
        ("model", *[model_label(s["model"]) for s, _ in items]),
        ("hardware", *[e.hardware for _, e in items]),
        ("task", *[wl(e, "task") for _, e in items]),
        ("batch", *[wl(e, "batch") for _, e in items]),
        ("seq (train) / prompt + generate (infer)",
         *[wl(e, "seq") if wl(e, "task") == "train" else f"{wl(e, 'prompt')} + {wl(e, 'generate')}" for _, e in items]),
        ("precision", *[wl(e, "precision") for _, e in items]),
        ("optimizer", *[wl(e, "optimizer") if wl(e, "task") == "train" else "-" for _, e in items]),
        ("params.total", *[f"{e.params.total:,}" for _, e in items]),
        ("params.trainable", *[f"{e.params.trainable:,}" for _, e in items]),
        ("flops.total", *[f"{e.flops.total:.6g}" for _, e in items]),
        ("memory_bytes.peak", *[_gib(e.memory_bytes.peak) for _, e in items]),
        ("memory_bytes.device_total", *[_gib(e.memory_bytes.device_total) for _, e in items]),
        ("memory_bytes.capacity", *[_gib(e.memory_bytes.capacity) for _, e in items]),
        ("fits", *["yes" if e.memory_bytes.fits else "NO" for _, e in items]),
        ("peak phase", *[e.memory_bytes.peak_phase for _, e in items]),
    ]
    rows.append(("time per unit (s)", *[f"{e.time_s.per_unit_s:.6g} per {e.unit}" for _, e in items]))
    rows.append(("perf.mfu", *[f"{e.perf.mfu:.3f}" for _, e in items]))
    rows.append(("cost (USD) per unit", *[f"{e.cost_usd.per_unit:.6g}" if e.cost_usd else "no price" for _, e in items]))
    rows.append(("energy (kWh) per unit", *[f"{e.energy_kwh.per_unit:.6g}" if e.energy_kwh else "-" for _, e in items]))
    rows.append(("carbon (kg CO2e) per unit",
                 *[f"{e.carbon_kg_co2e.per_unit:.6g}" if e.carbon_kg_co2e else "-" for _, e in items]))
    return rows


def _json_for_script(obj) -> str:
    """JSON that cannot close the <script> element it sits in."""
    return (json.dumps(obj, ensure_ascii=False, allow_nan=False)
            .replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def export_html(scenarios, title: str | None = None) -> str:
    """One self-contained HTML page (opens offline; plotly.js is inlined once)."""
    single = isinstance(scenarios, dict)
    items = _evaluated(scenarios)
    if title is None:
        title = f"costmodel report: {items[0][0]['name']}" if len(items) == 1 else \
            f"costmodel comparison: {', '.join(s['name'] for s, _ in items)}"
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{_e(title)}</h1>",
             f'<p class="muted">Generated {_e(now)} by costmodel {_e(__version__)}. Memory in bytes per device '
             "(1 GiB = 2<sup>30</sup> bytes); FLOPs count 2 per multiply-add. Every number below is "
             "<code>costmodel.estimate</code> of the inputs shown; the formulas are at the end.</p>"]

    parts.append("<h2>Summary</h2>")
    head = ("", *[s["name"] for s, _ in items])
    parts.append(_table(_comparison_rows(items), head, cls="summary"))

    parts.append("<h2>Figures</h2>")
    for i, (key, fig) in enumerate(_figures(items)):
        parts.append(fig.to_html(full_html=False, include_plotlyjs=(i == 0), div_id=f"fig-{key}",
                                 config={"displaylogo": False, "responsive": True}))

    for n, (s, e) in enumerate(items):
        parts.append(f'<h2 id="scenario-{n}">Scenario: {_e(s["name"])}</h2>')
        if s["notes"]:
            parts.append(f'<p><b>Notes</b></p><pre class="notes">{_e(s["notes"])}</pre>')
        model = s["model"] if isinstance(s["model"], str) else "custom config (below)"
        parts.append(_table([("model", f"{model} ({e.model}, {e.family})"),
                             ("hardware", hardware_label(s["hardware"]))], ("input", "value")))
        parts.append("<h3>Workload</h3>")
        parts.append(_table([(k, ",".join(v) if isinstance(v, list) else _num(v))
                             for k, v in e.workload.to_dict().items()], ("field", "value")))
        if s["plan"]:
            parts.append("<h3>Plan inputs</h3><pre>" + _e(json.dumps(s["plan"], indent=1, ensure_ascii=False))
                         + "</pre>")
            from ..plan_scenario import evaluate_plan, plan_summary
            from .format import fmt_value

            plan = evaluate_plan(s)
            if plan is not None:
                units = {"wall_clock_s": "s", "step_s": "s", "ttft_s": "s", "decode_per_token_s": "s",
                         "compute_usd": "USD", "storage_usd": "USD", "total_usd": "USD", "usd_per_million_tokens": "USD",
                         "energy_kwh": "kWh", "energy_kwh_per_million_tokens": "kWh", "carbon_kg_co2e": "kg CO2e",
                         "mfu": "fraction"}
                prow = [(k.removeprefix("plan."), fmt_value(v, units.get(k.removeprefix("plan."), "")))
                        for k, v in plan_summary(plan).items()]
                parts.append("<h3>Plan: time, money, energy, carbon</h3>")
                parts.append(_table(prow, ("quantity", "value"), cls="plan"))
        parts.append("<h3>Results</h3>")
        d = e.to_dict()
        flat = flatten({k: d[k] for k in RESULT_GROUPS if k != "workload"})
        rows = []
        for k, v in flat.items():
            shown = _num(v)
            if k.startswith("memory_bytes.") and isinstance(v, (int, float)) and not isinstance(v, bool):
                shown = f"{_num(v)} ({_gib(v)})"
            rows.append((k, shown))
        parts.append(_table(rows, ("quantity", "value"), cls="results"))
        parts.append("<h3>Assumptions</h3>")
        arows = [(k, v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)) for k, v in e.assumptions.items()]
        arows += [(f"override: {k}", json.dumps(v, ensure_ascii=False)) for k, v in s["assumptions"].items()]
        parts.append(_table(arows, ("what", "assumed")))
        if not isinstance(s["model"], str):
            parts.append("<details><summary>Model config</summary><pre>"
                         + _e(json.dumps(s["model"], indent=1, ensure_ascii=False)) + "</pre></details>")
        if not isinstance(s["hardware"], str):
            parts.append("<details><summary>Hardware record</summary><pre>"
                         + _e(json.dumps(s["hardware"], indent=1, ensure_ascii=False)) + "</pre></details>")

    parts.append("<h2>Formulas used</h2>")
    parts.append(f'<p class="muted">From costmodel\'s <code>{_e(FORMULAS_URL)}</code>; each section below is '
                 "copied into this report so it reads offline.</p>")
    sections = formula_sections()
    parts.append("<ul>")
    for name in sections_used([e.workload.to_dict() for _, e in items]):
        if name not in sections:
            continue
        parts.append(f'<li><a href="{_e(FORMULAS_URL)}#{_e(_slug(name))}">{_e(name)}</a>'
                     f"<details><summary>show</summary><pre>{_e(sections[name])}</pre></details></li>")
    parts.append("</ul>")
    payload = _payload([s for s, _ in items], single)
    parts.append('<script type="application/json" id="costmodel-data">' + _json_for_script(payload) + "</script>")
    parts.append("</body></html>")
    return "\n".join(parts)


def report_data(html_text: str) -> dict:
    """The JSON export embedded in an HTML report (``<script id="costmodel-data">``)."""
    m = re.search(r'<script type="application/json" id="costmodel-data">(.*?)</script>', html_text, re.S)
    if not m:
        raise InputError("report", "no costmodel data block in this HTML")
    return json.loads(m.group(1))
