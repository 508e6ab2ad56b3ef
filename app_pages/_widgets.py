"""Widgets shared by the pages: page state kept in the URL, and the model / hardware / workload pickers.

Page state lives in ``st.session_state`` under ``"<page>.<field>"`` keys; it is loaded from the URL
(``st.query_params``) whenever the URL differs from what the page last wrote (a shared link, a seed),
and written back at the end of every run, so the address bar always reproduces the view.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import streamlit as st

import costmodel
from costmodel.ui import page_state, tables
from costmodel.ui.safe_text import md
from costmodel.catalog import list_hardware
from costmodel.errors import InputError
from costmodel.workload import ATTENTION_IMPLS, OPTIMIZERS, PRECISIONS

MODEL_SOURCE_LABELS = {"preset": "Preset", "paste": "Upload / paste config.json", "build": "Build (sliders)"}


def show_error(err: InputError) -> None:
    """One error line naming the field (never a traceback); user text in it is shown literally (md)."""
    st.error(f"**{md(err.field, 200)}**: {md(err.message, 2000)}", icon=":material/error:")


class PageState:
    """Widgets bound to one page's URL state."""

    def __init__(self, page: str, defaults: Mapping[str, Any]):
        self.page = page
        self.defaults = dict(defaults)
        self.values: dict[str, Any] = {}
        self.problems: list[str] = []
        query = st.query_params.to_dict()
        marker = f"_{page}.last_query"
        if st.session_state.get(marker) != query:
            state, problems = page_state.state_from_query(query, self.defaults)
            for k, v in state.items():
                st.session_state[self.key(k)] = v
            self.problems.extend(problems)
            st.session_state[marker] = query
            self.loaded = query
        else:
            self.loaded = None
        for k, v in self.defaults.items():  # fields a previous run left unrendered were cleaned up
            st.session_state.setdefault(self.key(k), v)

    def key(self, field: str) -> str:
        return f"{self.page}.{field}"

    def get(self, field: str):
        return self.values.get(field, st.session_state.get(self.key(field), self.defaults[field]))

    def state(self) -> dict:
        return {k: self.get(k) for k in self.defaults}

    # -- typed widgets: bad values from a link are named and replaced, never a traceback --------
    def _check_choice(self, field: str, options: Sequence):
        k = self.key(field)
        if st.session_state.get(k) not in options:
            bad = st.session_state.get(k)
            fallback = self.defaults[field] if self.defaults[field] in options else options[0]
            self.problems.append(f"{field}: {str(bad)[:60]!r} is not one of {', '.join(map(str, options))[:300]}; "
                                 f"using {fallback!r}")
            st.session_state[k] = fallback

    def _check_range(self, field: str, lo, hi):
        k = self.key(field)
        v = st.session_state.get(k)
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            clamped = min(max(v, lo if lo is not None else v), hi if hi is not None else v)
            self.problems.append(f"{field}: {v} is outside {lo} .. {hi}; using {clamped}")
            st.session_state[k] = type(self.defaults[field])(clamped)

    def select(self, where, label: str, field: str, options: Sequence, format_func: Callable = str, **kw):
        self._check_choice(field, list(options))
        v = where.selectbox(label, options, key=self.key(field), format_func=format_func, **kw)
        self.values[field] = v
        return v

    def radio(self, where, label: str, field: str, options: Sequence, format_func: Callable = str, **kw):
        self._check_choice(field, list(options))
        v = where.radio(label, options, key=self.key(field), format_func=format_func, **kw)
        self.values[field] = v
        return v

    def number(self, where, label: str, field: str, min_value=None, max_value=None, **kw):
        self._check_range(field, min_value, max_value)
        default = self.defaults[field]
        if isinstance(default, int) and not isinstance(default, bool):
            kw.setdefault("step", 1)
        v = where.number_input(label, min_value=min_value, max_value=max_value, key=self.key(field), **kw)
        self.values[field] = v
        return v

    def slider(self, where, label: str, field: str, min_value, max_value, **kw):
        self._check_range(field, min_value, max_value)
        v = where.slider(label, min_value=min_value, max_value=max_value, key=self.key(field), **kw)
        self.values[field] = v
        return v

    def checkbox(self, where, label: str, field: str, **kw):
        v = where.checkbox(label, key=self.key(field), **kw)
        self.values[field] = v
        return v

    def text_area(self, where, label: str, field: str, **kw):
        v = where.text_area(label, key=self.key(field), **kw)
        self.values[field] = v
        return v

    def stop(self, err: InputError) -> None:
        """End the page on an input that cannot be computed: the link's problems, the error naming its field,
        the URL kept (so the link still reproduces the view), nothing rendered below."""
        self.show_problems()
        show_error(err)
        self.write_url()
        st.stop()

    def show_problems(self) -> None:
        for p in self.problems:
            field, _, msg = p.partition(": ")
            st.warning(f"**{md(field, 200)}** (from the link): {md(msg, 2000)}")

    def write_url(self) -> None:
        """Put the page state into the address bar (only values that differ from the defaults)."""
        query = page_state.state_to_query(self.state(), self.defaults)
        if st.query_params.to_dict() != query:
            st.query_params.from_dict(query)
        st.session_state[f"_{self.page}.last_query"] = query


# ---- pickers ------------------------------------------------------------------------------------

def _preset_names() -> dict[str, str]:
    return {p.id: f"{p.id} — {p.name}" for p in costmodel.list_presets()}


def _hardware_names() -> dict[str, str]:
    out = {h.id: f"{h.id} — {h.name}" for h in list_hardware()}
    out[page_state.CUSTOM_HARDWARE] = "custom — enter memory, bandwidth, FLOP/s"
    return out


def model_picker(ps: PageState, where=None):
    """Preset, uploaded/pasted config, or builder sliders. Returns what ``costmodel.estimate`` takes as the
    model (preset id or config dict); raises InputError for a bad config or a bad builder combination."""
    where = where or st.sidebar
    src = ps.radio(where, "Model", "source", list(page_state.MODEL_SOURCES), format_func=MODEL_SOURCE_LABELS.get,
                   horizontal=True)
    if src == "preset":
        names = _preset_names()
        ps.select(where, "Preset", "preset", list(names), format_func=names.get)
    elif src == "paste":
        up = where.file_uploader("Upload a Hugging Face config.json", type=["json"], key=ps.key("upload"),
                                 max_upload_size=1)
        if up is not None and st.session_state.get(ps.key("upload_id")) != up.file_id:
            raw = up.getvalue()
            st.session_state[ps.key("upload_id")] = up.file_id
            page_state.parse_config(raw)  # raises InputError naming "config" for bad files
            st.session_state[ps.key("config")] = raw.decode("utf-8-sig")
        ps.text_area(where, "config.json (pasted text; parsed as JSON data only)", "config", height=180,
                     placeholder='{"model_type": "llama", "hidden_size": 4096, ...}')
    else:
        ps.slider(where, "Layers", "layers", 1, 160)
        ps.slider(where, "Width (hidden size)", "width", 64, 32768, step=64)
        ps.slider(where, "Attention heads", "heads", 1, 256)
        ps.slider(where, "Key/value heads (GQA)", "kv_heads", 1, 256)
        ps.slider(where, "FFN width", "ffn", 64, 131072, step=64)
        ps.slider(where, "Vocabulary", "vocab", 1, 262144, step=1)
        ps.slider(where, "Experts (0 = dense)", "experts", 0, 256)
        if ps.get("experts") > 1:
            ps.slider(where, "Experts per token", "top_k", 1, 16)
    return page_state.model_from_state(ps.state())


def hardware_picker(ps: PageState, where=None):
    where = where or st.sidebar
    names = _hardware_names()
    hw = ps.select(where, "Hardware", "hw", list(names), format_func=names.get)
    if hw == page_state.CUSTOM_HARDWARE:
        c1, c2 = where.columns(2)
        ps.number(c1, "Memory (GiB)", "hw_mem_gib", min_value=0.0, max_value=1e6)
        ps.number(c2, "Bandwidth (GB/s)", "hw_bw_gbs", min_value=0.0, max_value=1e6)
        ps.number(c1, "16-bit TFLOP/s (dense)", "hw_tflops16", min_value=0.0, max_value=1e6)
        ps.number(c2, "fp32 TFLOP/s", "hw_tflops32", min_value=0.0, max_value=1e6)
        ps.number(c1, "TDP (W)", "hw_tdp_w", min_value=0.0, max_value=1e5)
    return page_state.hardware_from_state(ps.state())


def lora_modules(model) -> list[str]:
    """Module names LoRA can target in this model (from its ledger)."""
    from costmodel.ledger import ledger, make_ctx

    spec = costmodel.load_model(model)
    rows = ledger(spec, make_ctx(spec, costmodel.Workload(seq=8, batch=1), "train"))
    return sorted({r.module for r in rows if r.lora_in})


def workload_picker(ps: PageState, model, where=None, fixed_task: str | None = None):
    """Task, shapes, precision, optimizer, checkpointing, LoRA, attention. Returns a validated Workload."""
    where = where or st.sidebar
    spec = costmodel.load_model(model)
    if fixed_task:
        st.session_state[ps.key("task")] = fixed_task
        ps.values["task"] = fixed_task
        task = fixed_task
    else:
        task = ps.radio(where, "Task", "task", ["train", "infer"], horizontal=True,
                        format_func={"train": "Train", "infer": "Inference"}.get)
    ps.number(where, "Batch (samples per device per step)", "batch", min_value=0, max_value=1 << 24)
    if spec.modality == "image":
        ps.number(where, "Image size (pixels per side)", "image_size", min_value=0, max_value=16384)
    elif task == "infer" and spec.generative:
        ps.number(where, "Prompt tokens", "prompt", min_value=0, max_value=1 << 24)
        ps.number(where, "Generated tokens", "generate", min_value=0, max_value=1 << 24)
    elif spec.modality == "text":
        ps.number(where, "Sequence length (tokens)", "seq", min_value=0, max_value=1 << 24)
    ps.select(where, "Precision", "precision", list(PRECISIONS),
              help="; ".join(f"{k}: {p.description}" for k, p in PRECISIONS.items()))
    if task == "train":
        ps.select(where, "Optimizer", "optimizer", list(OPTIMIZERS))
        ps.checkbox(where, "Gradient checkpointing", "ckpt")
        ps.number(where, "LoRA rank (0 = full fine-tune)", "lora_rank", min_value=0, max_value=65536)
        if ps.get("lora_rank"):
            avail = lora_modules(model) + ["all-linear"]
            cur = [t for t in str(ps.get("lora_targets")).split(",") if t]
            keep = [t for t in cur if t in avail]
            if keep != cur:
                ps.problems.append(f"lora_targets: {', '.join(t for t in cur if t not in avail)} not in this model; "
                                   f"available: {', '.join(avail)}")
            mk = ps.key("lora_targets_ms")
            if st.session_state.get(mk) is None or ps.loaded is not None or \
                    set(st.session_state.get(mk) or []) - set(avail):
                st.session_state[mk] = keep or [avail[0]]
            targets = where.multiselect("LoRA targets", avail, key=mk)
            ps.values["lora_targets"] = ",".join(targets)
    else:
        ps.select(where, "Pruning", "pruning", list(page_state.PRUNING),
                  help="50% unstructured: half the linear/conv weights zeroed in dense tensors (dense kernels: no "
                       "memory or time saved); 2:4: two of every four kept, compressed, on sparse tensor cores "
                       "(GPUs that have them: the catalog's sparse_2_4_speedup)")
    if spec.modality == "text" and spec.family not in ("lstm", "gru"):
        ps.select(where, "Attention kernel", "attention", list(ATTENTION_IMPLS),
                  help="fused: flash / memory-efficient SDPA; eager: scores materialised")
    return page_state.workload_from_state(ps.state())


def downloads(label: str, rows, stem: str, key: str) -> None:
    """CSV and JSON download buttons for one table (a list of dicts)."""
    rows = list(rows)
    c1, c2 = st.columns(2)  # the files are made only when a button is pressed (data is a callable)
    c1.download_button(f"{label} (CSV)", lambda: tables.to_csv(rows), file_name=f"{stem}.csv", mime="text/csv",
                       key=f"{key}.csv", on_click="ignore")
    c2.download_button(f"{label} (JSON)", lambda: tables.to_json(rows), file_name=f"{stem}.json",
                       mime="application/json", key=f"{key}.json", on_click="ignore")


def figure(fig, stem: str, key: str) -> None:
    """A plotly chart with a download button for its interactive HTML."""
    st.plotly_chart(fig, key=f"{key}.chart")
    st.download_button("Download figure (HTML)", lambda: fig.to_html(include_plotlyjs="cdn", full_html=True),
                       file_name=f"{stem}.html", mime="text/html", key=f"{key}.html", on_click="ignore")


def plain(text: str) -> str:
    """User text for markdown, shown literally (``costmodel.ui.safe_text.md``)."""
    return md(text)
