"""Learn: where the cost of a model comes from, one idea at a time, with numbers from the estimator; in English
or Chinese (the course's language), switchable and kept in the URL (``lang=zh``)."""

import streamlit as st

from costmodel.limits import model_limits
from costmodel.models import load_model
from costmodel.ui import format as fmt, i18n, lessons
from costmodel.errors import InputError
from costmodel_dashboard.app_pages._widgets import PageState, downloads, lang, show_error, table

TOPICS = ["course", "flops", "adam", "activations", "kv", "parallel", "quantization", "pruning", "distillation", "lora"]
DECODERS = ["gpt2", "gpt2-medium", "gpt2-xl", "llama-3.2-1b", "llama-2-7b", "llama-3-8b", "mistral-7b", "llama-2-13b",
            "llama-2-70b", "llama-3-70b"]
COURSE_CNNS = ["course-cnn-28", "course-cnn-224", "course-teacher-28", "course-student-28", "course-simplecnn-28x3"]
DISTILL = ["course-teacher-28", "course-student-28", *DECODERS]
DEFAULTS = {"topic": "course", "model": "gpt2", "batch": 8, "seq": 1024, "precision": "amp-bf16", "prompt": 768,
            "generate": 256, "kv_precision": "bf16", "sparsity": 0.5, "teacher": "course-teacher-28",
            "student": "course-student-28", "rank": 16, "lora_model": "llama-2-7b", "par_model": "llama-2-13b", "dp": 8,
            "tp": 1, "pp": 1, "zero": 0, "cnn": "course-cnn-28"}

ps = PageState("learn", DEFAULTS)
L = lang(ps)
st.title(i18n.t("learn.title", L))
topic = ps.select(st, i18n.t("learn.topic", L), "topic", TOPICS, format_func=lambda k: i18n.t(f"topic.{k}", L))
st.header(i18n.t(f"topic.{topic}", L))


def fmt_table(rows):
    table(rows)


def positions(model: str) -> int:
    """The model's context length (1 << 20 when it states none)."""
    return model_limits(load_model(model)).max_positions or (1 << 20)


def model_box(where) -> str:
    """The decoder a lesson computes with."""
    return ps.select(where, i18n.t("learn.model", L), "model", DECODERS)


def batch_box(where) -> int:
    return ps.number(where, i18n.t("learn.batch", L), "batch", min_value=1, max_value=4096)


def seq_box(where, model: str) -> int:
    """The sequence-length box of a lesson, bounded by its model's context length."""
    hi = positions(model)
    ps.clamp("seq", hi, f"{model} takes at most {hi:,} positions")
    return ps.number(where, i18n.t("learn.seq", L), "seq", min_value=1, max_value=min(hi, 131072))


try:
    if topic == "course":
        st.markdown(i18n.t("learn.course.text", L))
        st.latex(r"n_\text{out} = \left\lfloor \frac{n_\text{in} + 2p - k}{s} \right\rfloor + 1,\qquad "
                 r"P_\text{conv} = k \cdot k \cdot c_\text{in} \cdot c_\text{out} + c_\text{out},\qquad "
                 r"C_\text{conv} = 2\,b\,h_\text{out} w_\text{out}\, c_\text{out}\, c_\text{in} k^2")
        c1, c2 = st.columns(2)
        cnn = ps.select(c1, i18n.t("learn.model", L), "cnn", COURSE_CNNS)
        batch = batch_box(c2)
        spec = load_model(cnn)
        rows = spec.layer_table()
        fmt_table(rows)
        r = lessons.lesson_course_cnn(cnn, batch)
        c = st.columns(4)
        c[0].metric(i18n.t("metric.params", L), fmt.fmt_count(r["params"]))
        c[1].metric(i18n.t("metric.forward_flops", L), fmt.fmt_si(r["forward"], "FLOP"))
        c[2].metric("conv FLOPs share", f"{r['conv_share']:.0%}")
        c[3].metric("dense params share", f"{r['dense_param_share']:.0%}")
        st.caption(f"batch {batch}, on {r['estimate'].hardware}: step {fmt.fmt_seconds(r['estimate'].time_s.step_s)}, "
                   f"peak memory {fmt.fmt_bytes(r['estimate'].memory_bytes.peak)} (Adam, fp32).")
    elif topic == "flops":
        st.markdown(i18n.t("learn.flops.text", L))
        st.latex(r"C_\text{step} \approx \underbrace{2PT}_\text{forward} + \underbrace{4PT}_\text{backward} + "
                 r"\underbrace{12\,L\,b\,s^2\,h}_\text{attention}")
        c1, c2, c3 = st.columns(3)
        model = model_box(c1)
        batch = batch_box(c2)
        seq = seq_box(c3, model)
        r = lessons.lesson_flops(model, batch, seq)
        c = st.columns(4)
        c[0].metric("Step FLOPs (ledger)", fmt.fmt_si(r["total"], "FLOP"))
        c[1].metric("6 x P x T", fmt.fmt_si(r["six_pt"], "FLOP"))
        c[2].metric("Ledger / rule", f"{r['ratio']:.3f}")
        c[3].metric("FLOPs per token", fmt.fmt_si(r["per_token"], "FLOP"))
        st.caption(f"P = {fmt.fmt_count(r['estimate'].params.total)} parameters, T = {r['tokens']:,} tokens. "
                   "The ratio exceeds 1 by the attention share, which grows with the sequence length; it falls "
                   "below 1 when the embedding table (a lookup, no FLOPs) is a large part of P.")
    elif topic == "adam":
        st.markdown(i18n.t("learn.adam.text", L))
        st.latex(r"m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\quad v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2,\quad "
                 r"\theta_t = \theta_{t-1} - \eta\,\frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}")
        c1, c2 = st.columns(2)
        model = model_box(c1)
        prec = ps.select(c2, "Precision", "precision", ["fp32", "amp-bf16", "bf16"])
        rows = lessons.lesson_optimizers(model, prec)
        fmt_table(rows)
        downloads("Table", rows, "optimizers", "learn.adam")
        st.caption("Adafactor keeps row and column statistics instead of full tensors; 8-bit Adam stores both "
                   "states in one byte each (+ a block scale).")
    elif topic == "activations":
        st.markdown(i18n.t("learn.activations.text", L))
        st.latex(r"M_\text{act} \approx L \cdot T \cdot (\text{bytes per token per block}) \;\xrightarrow{\text{ckpt}}\; "
                 r"L \cdot T \cdot h \cdot b_s + \text{one block};\qquad C_\text{step} \to C_\text{step} + C_\text{fwd}")
        c1, c2, c3 = st.columns(3)
        model = model_box(c1)
        batch = batch_box(c2)
        seq = seq_box(c3, model)
        rows = lessons.lesson_checkpointing(model, batch, seq)
        c = st.columns(2)
        c[0].metric("Activations without checkpointing", fmt.fmt_bytes(rows[0]["activations_GiB"] * 2**30))
        c[1].metric("Activations with checkpointing", fmt.fmt_bytes(rows[1]["activations_GiB"] * 2**30))
        fmt_table(rows)
        downloads("Table", rows, "checkpointing", "learn.ckpt")
    elif topic == "kv":
        st.markdown(i18n.t("learn.kv.text", L))
        st.latex(r"M_{KV} = 2 \cdot L \cdot b \cdot n_{kv} \cdot d_\text{head} \cdot (\text{prompt} + \text{generated}) "
                 r"\cdot \text{bytes}")
        c1, c2, c3, c4 = st.columns(4)
        model = model_box(c1)
        batch = batch_box(c2)
        gen = ps.get("generate")
        hi = positions(model) - gen
        ps.clamp("prompt", hi, f"{model} takes at most {hi + gen:,} positions, {gen} of them generated")
        prompt = ps.number(c3, "Prompt", "prompt", min_value=1, max_value=min(hi, 1 << 20))
        kvp = ps.select(c4, "KV precision", "kv_precision", ["fp32", "bf16", "fp8", "int8", "int4"])
        r = lessons.lesson_kv_cache(model, batch, prompt, gen, kvp)
        c = st.columns(2)
        c[0].metric("KV cache", fmt.fmt_bytes(r["kv_cache"]))
        c[1].metric("Weights", fmt.fmt_bytes(r["weights"]))
        t = r["terms"]
        if t:
            st.caption(f"L = {t['layers']}, n_kv = {t['kv_heads']}, d_head = {t['head_dim']}, b = {batch}, "
                       f"positions = {r['positions']:,} ({prompt:,} prompt + {gen:,} generated).")
    elif topic == "parallel":
        st.markdown(i18n.t("learn.parallel.text", L))
        st.latex(r"M_\text{device} \approx \frac{W}{tp\,pp\,[dp]_{z\ge3}} + \frac{G}{tp\,pp\,[dp]_{z\ge2}} + "
                 r"\frac{O}{tp\,pp\,[dp]_{z\ge1}} + \frac{\text{activations}}{tp};\qquad "
                 r"t_\text{all-reduce} = 2\,\frac{n-1}{n}\,\frac{\text{bytes}}{\text{bandwidth}};\qquad "
                 r"\text{bubble} = \frac{pp-1}{m + pp - 1}")
        c1, c2, c3, c4, c5 = st.columns(5)
        model = ps.select(c1, i18n.t("learn.model", L), "par_model", ["gpt2-xl", "llama-2-7b", "llama-2-13b", "llama-2-70b"])
        dp = ps.select(c2, "Data parallel", "dp", [1, 2, 4, 8, 16, 32, 64])
        tp = ps.select(c3, "Tensor parallel", "tp", [1, 2, 4, 8])
        pp = ps.select(c4, "Pipeline stages", "pp", [1, 2, 4, 8])
        zero = ps.select(c5, "ZeRO stage", "zero", [0, 1, 2, 3])
        r = lessons.lesson_parallel(model, "a100-sxm-80gb", dp, tp, pp, zero)
        mem = r["memory"]
        c = st.columns(4)
        c[0].metric("Weights per device", fmt.fmt_bytes(mem.weights))
        c[1].metric("Optimizer states per device", fmt.fmt_bytes(mem.optimizer))
        c[2].metric("Device total", fmt.fmt_bytes(mem.device_total),
                    delta="fits" if r["plan"].step.fits else "does not fit", delta_color="off")
        c[3].metric("Step time", fmt.fmt_seconds(r["step_s"]))
        rows = [{"collective": t.name, "seconds (before overlap)": t.seconds} for t in r["comm"].terms]
        rows += [{"collective": "exposed after overlap", "seconds (before overlap)": r["exposed_comm_s"]},
                 {"collective": "pipeline bubble", "seconds (before overlap)": r["bubble_s"]}]
        fmt_table(rows)
        st.caption(f"{r['devices']} A100 80GB, micro-batch 1 x 2048 tokens, global batch {r['global_batch']}, "
                   "AMP bf16 + AdamW. Explore layouts for a whole run on *Plan training*.")
    elif topic == "quantization":
        st.markdown(i18n.t("learn.quantization.text", L))
        st.latex(r"M_W = P_\text{linear} \cdot \text{bits}/8 + \text{scales} + P_\text{other} \cdot 2")
        c1, c2, c3 = st.columns(3)
        model = model_box(c1)
        batch = batch_box(c2)
        gen = ps.get("generate")
        hi = positions(model) - gen
        ps.clamp("prompt", hi, f"{model} takes at most {hi + gen:,} positions, {gen} of them generated")
        prompt = ps.number(c3, "Prompt", "prompt", min_value=1, max_value=min(hi, 1 << 20))
        rows = lessons.lesson_quantization(model, batch, prompt, gen)
        fmt_table(rows)
        downloads("Table", rows, "quantization", "learn.quant")
    elif topic == "pruning":
        st.markdown(i18n.t("learn.pruning.text", L))
        st.latex(r"P_\text{nonzero} = P - s \cdot P_\text{linear},\qquad C_\text{effective} = C - s \cdot C_\text{linear}")
        c1, c2 = st.columns(2)
        model = model_box(c1)
        sp = ps.slider(c2, "Sparsity (fraction pruned)", "sparsity", 0.0, 0.99, step=0.01)
        ps.clamp("seq", positions(model), f"{model} takes at most {positions(model):,} positions")
        r = lessons.lesson_pruning(model, sp, 1, ps.get("seq"))
        c = st.columns(3)
        c[0].metric("Non-zero parameters", fmt.fmt_count(r["nonzero"]))
        c[1].metric("Forward FLOPs (dense)", fmt.fmt_si(r["forward"], "FLOP"))
        c[2].metric("Forward FLOPs (zeros skipped)", fmt.fmt_si(r["forward_effective"], "FLOP"))
    elif topic == "distillation":
        st.markdown(i18n.t("learn.distillation.text", L))
        st.latex(r"C_\text{distill step} = C_\text{fwd}^\text{teacher} + C_\text{step}^\text{student} "
                 r"\approx 2 P_T T + 6 P_S T")
        c1, c2, c3, c4 = st.columns(4)
        teacher = ps.select(c1, "Teacher", "teacher", DISTILL)
        student = ps.select(c2, "Student", "student", DISTILL)
        batch = ps.number(c3, i18n.t("learn.batch", L), "batch", min_value=1, max_value=4096)
        t_spec, s_spec = load_model(teacher), load_model(student)
        if t_spec.modality == "text" and s_spec.modality == "text":
            hi = min(positions(teacher), positions(student))
            ps.clamp("seq", hi, f"{teacher} and {student} take at most {hi:,} positions")
            seq = ps.number(c4, i18n.t("learn.seq", L), "seq", min_value=1, max_value=min(hi, 131072))
        else:
            seq = ps.get("seq")
        r = lessons.lesson_distillation(teacher, student, batch, seq)
        c = st.columns(3)
        c[0].metric("Teacher forward", fmt.fmt_si(r["teacher_flops"], "FLOP"))
        c[1].metric("Student step", fmt.fmt_si(r["student_flops"], "FLOP"))
        c[2].metric("Distillation step", fmt.fmt_si(r["step_flops"], "FLOP"))
        st.caption(f"On an H100: teacher {fmt.fmt_seconds(r['teacher_s'])} + student "
                   f"{fmt.fmt_seconds(r['student_s'])} = {fmt.fmt_seconds(r['step_s'])} per step. The same on any "
                   "device, with memory and cost: *Estimate*, method *Distillation*.")
    elif topic == "lora":
        st.markdown(i18n.t("learn.lora.text", L))
        st.latex(r"W x + \tfrac{\alpha}{r} B A x,\quad A \in \mathbb{R}^{r \times d_\text{in}},\ "
                 r"B \in \mathbb{R}^{d_\text{out} \times r},\quad P_\text{LoRA} = r\,(d_\text{in} + d_\text{out})")
        c1, c2, c3 = st.columns(3)
        model = ps.select(c1, i18n.t("learn.model", L), "lora_model", ["llama-3.2-1b", "llama-2-7b", "llama-3-8b",
                                                                       "mistral-7b", "llama-2-13b"])
        rank = ps.slider(c2, "Rank r", "rank", 1, 256)
        seq = seq_box(c3, model)
        rows = lessons.lesson_lora(model, rank, "q_proj,k_proj,v_proj,o_proj", 1, seq)
        c = st.columns(2)
        c[0].metric("LoRA trainable parameters", fmt.fmt_count(rows[1]["trainable_params"]))
        c[1].metric("Full fine-tune trainable parameters", fmt.fmt_count(rows[0]["trainable_params"]))
        fmt_table(rows)
        downloads("Table", rows, "lora", "learn.lora")
        st.caption("Adapters on q, k, v and o projections; batch 1; one H100 80GB.")
except InputError as err:
    show_error(err)
ps.show_problems()
ps.write_url()
