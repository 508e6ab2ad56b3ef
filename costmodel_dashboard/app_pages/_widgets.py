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

MODEL_SOURCE_LABELS = {"preset": "Preset", "paste": "Upload / paste config.json", "build": "Build a transformer",
                       "layers": "Build layer by layer (CNN, MLP, text)"}


def show_error(err: InputError) -> None:
    """One error line naming the field (never a traceback); user text in it is shown literally (md)."""
    st.error(f"**{md(err.field, 200)}**: {md(err.message, 2000)}", icon=":material/error:")


class PageState:
    """Widgets bound to one page's state: one record (``self.state``) from which the widgets, the URL and the
    numbers all derive.

    The record lives in ``st.session_state["_<page>.state"]``, not in the widgets: Streamlit forgets a
    widget's value when a run does not draw it (a field hidden for another model source, task or topic), and
    a widget drawn again then showed its first option while the numbers used the old value. Here every
    widget is given its value from the record before it is drawn, and a run starts by taking over what the
    user changed since the last run (a widget whose value differs from what was drawn). Then ``derive``
    re-derives what depends on the change (``costmodel.ui.page_state.derive``: inference weights, the
    model's context length, a fixed input size), so no widget shows a value the numbers do not use. A link
    (the URL differs from what the page last wrote) replaces the record; fields it leaves out take their
    defaults in its context (``page_state.effective_defaults``)."""

    def __init__(self, page: str, defaults: Mapping[str, Any], derive: bool = True):
        self.page = page
        self.defaults = {**dict(defaults), "lang": "en"}
        self.problems: list[str] = []
        self.notes: list[str] = []
        self.changed: set[str] = set()
        query = st.query_params.to_dict()
        marker, store = f"_{page}.last_query", f"_{page}.state"
        drawn = st.session_state.get(f"_{page}.drawn") or {}
        self.models = derive and all(k in self.defaults for k in ("source", "preset"))
        if st.session_state.get(marker) != query or store not in st.session_state:
            state, problems = page_state.state_from_query(query, self.defaults)
            self.problems.extend(problems)
            if self.models:  # fields the link leaves out: their defaults for its model and task
                eff = page_state.effective_defaults(state, self.defaults, page_state.spec_of_state(state))
                for k in self.defaults:
                    if k not in query:
                        state[k] = eff[k]
            if "lang" not in query:  # the language follows the visitor from page to page
                state["lang"] = st.session_state.get("_lang", "en")
            prev = None
            self.loaded = query
            st.session_state[marker] = query
        else:
            state = dict(st.session_state[store])
            prev = dict(state)
            self.loaded = None
            for field, shown in drawn.items():  # what the user changed since the last run
                k = self.key(field)
                if k in st.session_state and st.session_state[k] != shown:
                    value = st.session_state[k]
                    state[field] = ",".join(value) if field in self._multi_fields(drawn) else value
                    self.changed.add(field)
        for field, value in (st.session_state.pop(f"_{page}.pending", None) or {}).items():  # ps.request()
            state[field] = value
            self.changed.add(field)
        for k, v in self.defaults.items():  # a field added since the record was made
            state.setdefault(k, v)
        self.state = state
        if self.models:
            spec = page_state.spec_of_state(state)
            prev_spec = page_state.spec_of_state(prev) if prev is not None and \
                any(prev.get(f) != state.get(f) for f in page_state.MODEL_FIELDS) else spec
            self.spec = spec
            self.notes = page_state.derive(state, prev, self.changed, self.defaults, spec, prev_spec)
        else:
            self.spec = None
        if state.get("lang") not in ("en", "zh"):
            state["lang"] = "en"
        st.session_state["_lang"] = state["lang"]
        st.session_state[store] = self.state
        st.session_state[f"_{page}.drawn"] = {}
        st.session_state[f"_{page}.widgets"] = {}

    @staticmethod
    def _multi_fields(drawn) -> set:
        return {f for f, v in drawn.items() if isinstance(v, list)}

    @property
    def values(self) -> dict:
        """The record itself (older pages assign ``ps.values[field] = ...``)."""
        return self.state

    def key(self, field: str) -> str:
        return f"{self.page}.{field}"

    def get(self, field: str):
        return self.state.get(field, self.defaults.get(field))

    def set(self, field: str, value) -> None:
        self.state[field] = value

    def clamp(self, field: str, hi: int, why: str) -> None:
        """Bring a field within ``hi`` before it is drawn (a limit that depends on another widget, e.g. the
        chosen model's context length), and say so."""
        v = self.state.get(field)
        if isinstance(v, (int, float)) and v > hi:
            self.notes.append(f"{field}: {v:,} -> {hi:,} ({why})")
            self.state[field] = type(v)(hi)

    def request(self, **changes) -> None:
        """Change fields as if the user had (a template, a button): applied at the start of a rerun, so the
        change is derived like any edit."""
        st.session_state[f"_{self.page}.pending"] = changes
        st.rerun()

    def effective_defaults(self) -> dict:
        if not self.models:
            return dict(self.defaults)
        return page_state.effective_defaults(self.state, self.defaults, self.spec)

    def _draw(self, field: str, make, kind: str, **what):
        """Give the widget the record's value, draw it, and remember what was drawn (and, in
        ``_<page>.widgets``, what it offers: its kind and options or bounds, which the property tests pick from)."""
        k = self.key(field)
        st.session_state[k] = self.state[field]
        v = make(k)
        self.state[field] = v
        st.session_state[f"_{self.page}.drawn"][field] = v
        st.session_state.setdefault(f"_{self.page}.widgets", {})[field] = {"kind": kind, **what}
        return v

    # -- typed widgets: bad values from a link are named and replaced, never a traceback --------
    def _check_choice(self, field: str, options: Sequence):
        v = self.state.get(field)
        if v not in options:
            eff = self.effective_defaults().get(field)
            fallback = eff if eff in options else self.defaults[field] if self.defaults[field] in options else options[0]
            self.problems.append(f"{field}: {str(v)[:60]!r} is not one of {', '.join(map(str, options))[:300]}; "
                                 f"using {fallback!r}")
            self.state[field] = fallback

    def _check_range(self, field: str, lo, hi):
        v = self.state.get(field)
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            clamped = min(max(v, lo if lo is not None else v), hi if hi is not None else v)
            self.problems.append(f"{field}: {v} is outside {lo} .. {hi}; using {clamped}")
            self.state[field] = type(self.defaults[field])(clamped)

    def select(self, where, label: str, field: str, options: Sequence, format_func: Callable = str, **kw):
        options = list(options)
        self._check_choice(field, options)
        return self._draw(field, lambda k: where.selectbox(label, options, key=k, format_func=format_func, **kw),
                          "selectbox", options=options)

    def radio(self, where, label: str, field: str, options: Sequence, format_func: Callable = str, **kw):
        options = list(options)
        self._check_choice(field, options)
        return self._draw(field, lambda k: where.radio(label, options, key=k, format_func=format_func, **kw),
                          "radio", options=options)

    def number(self, where, label: str, field: str, min_value=None, max_value=None, **kw):
        default = self.defaults[field]
        if isinstance(default, int) and not isinstance(default, bool):
            kw.setdefault("step", 1)
            min_value = None if min_value is None else int(min_value)
            max_value = None if max_value is None else int(max_value)
        self._check_range(field, min_value, max_value)
        return self._draw(field, lambda k: where.number_input(label, min_value=min_value, max_value=max_value,
                                                              key=k, **kw),
                          "number_input", min=min_value, max=max_value, step=kw.get("step"))

    def slider(self, where, label: str, field: str, min_value, max_value, **kw):
        self._check_range(field, min_value, max_value)
        return self._draw(field, lambda k: where.slider(label, min_value=min_value, max_value=max_value, key=k, **kw),
                          "slider", min=min_value, max=max_value, step=kw.get("step"))

    def checkbox(self, where, label: str, field: str, **kw):
        return self._draw(field, lambda k: where.checkbox(label, key=k, **kw), "checkbox")

    def text_area(self, where, label: str, field: str, **kw):
        return self._draw(field, lambda k: where.text_area(label, key=k, **kw), "text_area")

    def text_input(self, where, label: str, field: str, **kw):
        return self._draw(field, lambda k: where.text_input(label, key=k, **kw), "text_input")

    def multiselect(self, where, label: str, field: str, options: Sequence, format_func: Callable = str,
                    fallback: Sequence = (), **kw) -> list:
        """A comma-joined field drawn as a multiselect; names not among ``options`` are named and dropped."""
        options = list(options)
        cur = [t for t in str(self.state.get(field) or "").split(",") if t]
        keep = [t for t in cur if t in options]
        if keep != cur:
            msg = (f"{field}: {', '.join(t for t in cur if t not in options)[:200]} not available here; "
                   f"available: {', '.join(map(str, options))[:300]}")
            (self.problems if self.loaded is not None else self.notes).append(msg)  # a link's, or the model changed
        if not keep and fallback:
            keep = [t for t in fallback if t in options]
        self.state[field] = ",".join(keep)
        k = self.key(field)
        st.session_state[k] = keep
        v = where.multiselect(label, options, key=k, format_func=format_func, **kw)
        self.state[field] = ",".join(v)
        st.session_state[f"_{self.page}.drawn"][field] = list(v)
        st.session_state.setdefault(f"_{self.page}.widgets", {})[field] = {"kind": "multiselect", "options": options}
        return list(v)

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
        self.problems = []
        for n in self.notes:
            field, _, msg = n.partition(": ")
            st.info(f"**{md(field, 200)}**: {md(msg, 2000)}", icon=":material/sync_alt:")
        self.notes = []

    def write_url(self) -> None:
        """Put the page state into the address bar (only values that differ from their defaults in context),
        and keep the record the numbers were computed from (``_<page>.used``: tests compare the widgets with it)."""
        query = page_state.state_to_query(self.state, self.effective_defaults())
        if st.query_params.to_dict() != query:
            st.query_params.from_dict(query)
        st.session_state[f"_{self.page}.last_query"] = query
        st.session_state[f"_{self.page}.state"] = self.state
        st.session_state[f"_{self.page}.used"] = dict(self.state)


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
            ps.set("config", raw.decode("utf-8-sig"))
        ps.text_area(where, "config.json (pasted text; parsed as JSON data only)", "config", height=180,
                     placeholder='{"model_type": "llama", "hidden_size": 4096, ...}')
    elif src == "layers":
        from costmodel.ui.builder import TEMPLATES

        where.caption("One layer per line, as Keras writes them: `Conv2D 32 3x3 relu`, `MaxPooling2D 2`, "
                      "`Flatten`, `Dense 10 softmax`, `Embedding 10000 16`, `GlobalAveragePooling1D`, `Dropout 0.5` "
                      "(pasting `tf.keras.layers.Conv2D(32, (3, 3), activation='relu')` works too).")
        c1, c2 = where.columns([3, 1], vertical_alignment="bottom")
        tpl = c1.selectbox("Start from a course network", list(TEMPLATES), key=f"_{ps.page}.net_template")
        if c2.button("Load", key=f"_{ps.page}.net_load"):
            ps.request(net_input=TEMPLATES[tpl][0], net_layers=TEMPLATES[tpl][1])
        ps.text_input(where, "Input (28x28x1, tokens:256 or features:784)", "net_input")
        ps.text_area(where, "Layers", "net_layers", height=200)
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
    return page_state.model_from_state(ps.state)


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
        ps.number(c2, "Price ($/device-hour, 0 = none)", "hw_usd_h", min_value=0.0, max_value=1e6,
                  help="what one device-hour of it costs you; without one, time and energy are shown and money says "
                       "'no price'")
    else:
        ps.number(where, "Your price ($/device-hour, 0 = catalog)", "usd_h", min_value=0.0, max_value=1e6,
                  help="a negotiated rate: replaces the catalog's median price for this device everywhere on the page")
    return page_state.hardware_from_state(ps.state)


def lora_modules(model) -> list[str]:
    """Module names LoRA can target in this model (from its ledger)."""
    from costmodel.ledger import ledger, make_ctx
    from costmodel.limits import resolve_defaults

    spec = costmodel.load_model(model)
    w = costmodel.Workload(**resolve_defaults(spec, {"seq": 8, "batch": 1}))
    rows = ledger(spec, make_ctx(spec, w, "train"))
    return sorted({r.module for r in rows if r.lora_in})


def limit_caption(spec) -> str:
    """What the model takes, in one line under the shape inputs ("" when it states no limit)."""
    from costmodel.limits import model_limits

    lim = model_limits(spec)
    return "" if not (lim.max_positions or lim.sliding_window or lim.image_hw) else md(lim.describe(), 2000)


def method_picker(ps: PageState, spec, where=None) -> str:
    """Training method (Estimate): standard, distillation (with its teacher, a preset taking the same input) or
    QAT (with the deployed bits). Drawn for training only; inference always uses "standard"."""
    where = where or st.sidebar
    if ps.get("task") != "train":
        return "standard"
    method = ps.select(where, "Training method", "method", list(page_state.METHODS),
                       format_func=page_state.METHODS.get)
    if method == "distill":
        names = {p.id: f"{p.id} — {p.name}" for p in costmodel.list_presets()
                 if costmodel.load_model(p.id).modality == spec.modality}
        ps.select(where, "Teacher", "teacher", list(names), format_func=names.get,
                  help="runs forward on every batch (frozen, in this precision without amp); the model above is the "
                       "student")
    elif method == "qat":
        ps.select(where, "Deployed weight bits", "qat_bits", [8, 4])
    return method


def workload_picker(ps: PageState, model, where=None, fixed_task: str | None = None, selective: bool = True):
    """Task, shapes, precision, optimizer, checkpointing, LoRA, attention. Returns a validated Workload.
    ``selective``: offer per-op selective checkpointing (the profiler does not run it)."""
    from costmodel.limits import model_limits

    where = where or st.sidebar
    spec = costmodel.load_model(model)
    lim = model_limits(spec)
    if fixed_task:
        ps.set("task", fixed_task)
        task = fixed_task
    else:
        task = ps.radio(where, "Task", "task", ["train", "infer"], horizontal=True,
                        format_func={"train": "Train", "infer": "Inference"}.get)
    unit = {"image": "images", "text": "sequences"}.get(spec.modality, "samples")
    ps.number(where, f"Batch ({unit} per device per step)", "batch", min_value=1, max_value=1 << 24)
    positions = lim.max_positions or (1 << 24)
    if spec.modality == "image":
        if lim.image_hw:
            ps.set("image_size", lim.image_hw[0])
            where.caption(f"Image size: {lim.image_hw[0]} x {lim.image_hw[1]} pixels, fixed by the model "
                          "(its flatten feeds a dense layer)")
        else:
            ps.number(where, "Image size (pixels per side)", "image_size", min_value=8, max_value=16384)
    elif task == "infer" and spec.generative:
        ps.number(where, "Prompt tokens", "prompt", min_value=1, max_value=max(1, positions - ps.get("generate")))
        ps.number(where, "Generated tokens", "generate", min_value=0, max_value=max(0, positions - ps.get("prompt")))
    elif spec.modality == "text":
        ps.number(where, "Sequence length (tokens)", "seq", min_value=1, max_value=positions)
    cap = limit_caption(spec)
    if cap and spec.modality == "text":
        where.caption(cap)
    precisions = list(PRECISIONS) if task == "train" else [p for p in PRECISIONS if p not in page_state.TRAIN_ONLY_PRECISIONS]
    ps.select(where, "Precision", "precision", precisions,
              help="; ".join(f"{k}: {p.description}" for k, p in PRECISIONS.items() if k in precisions))
    if task == "train":
        ps.select(where, "Optimizer", "optimizer", list(OPTIMIZERS),
                  help="; ".join(f"{k}: {o.source}" for k, o in OPTIMIZERS.items()))
        if page_state.supports_checkpointing(spec):
            ckpt = ps.checkbox(where, "Gradient checkpointing", "ckpt")
            offer = selective and page_state.supports_selective_checkpointing(spec)
            if ckpt and offer:
                ps.checkbox(where, "Per op (selective)", "ckpt_sel",
                            help="torchtitan's selective policy: keep the matmul and attention outputs too, recompute "
                                 "every second matmul and the elementwise ops (less recompute, more memory)")
            elif ps.get("ckpt_sel") and not offer:  # a hidden box must not change the numbers
                why = "the profiler runs full checkpointing" if not selective else \
                    f"it is priced for attention and dense MLP blocks, not this {spec.family} model's"
                ps.notes.append(f"ckpt_sel: per-op selective checkpointing: {why}; full checkpointing used")
                ps.set("ckpt_sel", False)
        elif ps.get("ckpt"):
            ps.notes.append(f"ckpt: gradient checkpointing is not modelled for {spec.family} models; off")
            ps.set("ckpt", False)
        ps.number(where, "LoRA rank (0 = full fine-tune)", "lora_rank", min_value=0, max_value=65536)
        if ps.get("lora_rank"):
            avail = lora_modules(model) + ["all-linear"]
            ps.multiselect(where, "LoRA targets", "lora_targets", avail, fallback=[avail[0]])
    else:
        ps.select(where, "Pruning", "pruning", list(page_state.PRUNING),
                  help="50% unstructured: half the linear/conv weights zeroed in dense tensors (dense kernels: no "
                       "memory or time saved); 2:4: two of every four kept, compressed, on sparse tensor cores "
                       "(GPUs that have them: the catalog's sparse_2_4_speedup)")
    if spec.modality == "text" and spec.family not in ("lstm", "gru", "sequential"):
        ps.select(where, "Attention kernel", "attention", list(ATTENTION_IMPLS),
                  help="fused: flash / memory-efficient SDPA; eager: scores materialised")
    return page_state.workload_from_state(ps.state)


def table(rows, **kw) -> None:
    """A table for people (``costmodel.ui.tables.display_rows``: seconds, dollars and bytes readable)."""
    shown, formats = tables.display_rows(rows)
    config = {c: st.column_config.NumberColumn(c, format=f) for c, f in formats.items()}
    st.dataframe(tables.to_frame(shown), hide_index=True, column_config={**config, **kw.pop("column_config", {})},
                 **kw)


def lang(ps: "PageState", where=None) -> str:
    """The language switch (English / 中文), kept in the URL as ``lang``; returns "en" or "zh"."""
    from costmodel.ui.i18n import LANGS, t

    where = where or st.sidebar
    cur = ps.get("lang")
    return ps.radio(where, t("lang.label", cur), "lang", list(LANGS), format_func=LANGS.get, horizontal=True)


def downloads(label: str, rows, stem: str, key: str) -> None:
    """CSV and JSON download buttons for one table: a list of dicts, or a function returning one (called only when
    a button is pressed: a layout search's tens of thousands of rows are not made on every rerun)."""
    get = rows if callable(rows) else (lambda kept=list(rows): kept)
    c1, c2 = st.columns(2)  # the files are made only when a button is pressed (data is a callable)
    c1.download_button(f"{label} (CSV)", lambda: tables.to_csv(get()), file_name=f"{stem}.csv", mime="text/csv",
                       key=f"{key}.csv", on_click="ignore")
    c2.download_button(f"{label} (JSON)", lambda: tables.to_json(get()), file_name=f"{stem}.json",
                       mime="application/json", key=f"{key}.json", on_click="ignore")


def figure(fig, stem: str, key: str) -> None:
    """A plotly chart with a download button for its interactive HTML."""
    st.plotly_chart(fig, key=f"{key}.chart")
    st.download_button("Download figure (HTML)", lambda: fig.to_html(include_plotlyjs="cdn", full_html=True),
                       file_name=f"{stem}.html", mime="text/html", key=f"{key}.html", on_click="ignore")


def plain(text: str) -> str:
    """User text for markdown, shown literally (``costmodel.ui.safe_text.md``)."""
    return md(text)
