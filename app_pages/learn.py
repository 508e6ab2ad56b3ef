"""Learn: where the cost of a model comes from, one idea at a time, with numbers from the estimator."""

import streamlit as st

from costmodel.ui import format as fmt, lessons, tables
from costmodel.errors import InputError
from app_pages._widgets import PageState, downloads, show_error

TOPICS = {
    "flops": "Forward and backward FLOPs (why ~6 x params x tokens)",
    "adam": "What Adam keeps per parameter",
    "activations": "Activations and gradient checkpointing",
    "kv": "The KV cache",
    "parallel": "Data, tensor and pipeline parallelism",
    "quantization": "Quantization",
    "pruning": "Pruning",
    "distillation": "Distillation",
    "lora": "LoRA and QLoRA",
}
DECODERS = ["gpt2", "gpt2-medium", "gpt2-xl", "llama-3.2-1b", "llama-2-7b", "llama-3-8b", "mistral-7b", "llama-2-13b",
            "llama-2-70b", "llama-3-70b"]
DEFAULTS = {"topic": "flops", "model": "gpt2", "batch": 8, "seq": 1024, "precision": "amp-bf16", "prompt": 768,
            "generate": 256, "kv_precision": "bf16", "sparsity": 0.5, "teacher": "llama-2-7b", "student": "gpt2",
            "rank": 16, "lora_model": "llama-2-7b", "par_model": "llama-2-13b", "dp": 8, "tp": 1, "pp": 1, "zero": 0}

st.title("Learn")
ps = PageState("learn", DEFAULTS)
topic = ps.select(st, "Topic", "topic", list(TOPICS), format_func=TOPICS.get)
st.header(TOPICS[topic])


def fmt_table(rows):
    st.dataframe(tables.to_frame(rows), hide_index=True)


try:
    if topic == "flops":
        st.markdown(
            "Each weight of a linear layer takes part in **one multiply-add per token**: 2 FLOPs. So the forward pass "
            "over T tokens costs about **2 P T** FLOPs. The backward pass computes two matmuls per layer, one for the "
            "gradient with respect to the input (dX) and one with respect to the weights (dW): about **4 P T**. "
            "Together **6 P T** (Kaplan et al. 2020), plus the attention score matmuls that grow with the sequence.")
        st.latex(r"C_\text{step} \approx \underbrace{2PT}_\text{forward} + \underbrace{4PT}_\text{backward} + "
                 r"\underbrace{12\,L\,b\,s^2\,h}_\text{attention}")
        c1, c2, c3 = st.columns(3)
        model = ps.select(c1, "Model", "model", DECODERS)
        batch = ps.number(c2, "Batch", "batch", min_value=0, max_value=4096)
        seq = ps.number(c3, "Sequence length", "seq", min_value=0, max_value=131072)
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
        st.markdown(
            "Adam keeps two running averages per parameter, the mean of the gradients **m** and of their squares "
            "**v**. With fp32 master weights (plain fp32 or mixed precision) that is 4 bytes of weight, 4 of "
            "gradient and 8 of state: **16 bytes per parameter** before a single activation is stored.")
        st.latex(r"m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\quad v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2,\quad "
                 r"\theta_t = \theta_{t-1} - \eta\,\frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}")
        c1, c2 = st.columns(2)
        model = ps.select(c1, "Model", "model", DECODERS)
        prec = ps.select(c2, "Precision", "precision", ["fp32", "amp-bf16", "bf16"])
        rows = lessons.lesson_optimizers(model, prec)
        fmt_table(rows)
        downloads("Table", rows, "optimizers", "learn.adam")
        st.caption("Adafactor keeps row and column statistics instead of full tensors; 8-bit Adam stores both "
                   "states in one byte each (+ a block scale).")
    elif topic == "activations":
        st.markdown(
            "Backward needs the inputs of every layer's forward: autograd **saves** them, and they grow with "
            "batch x sequence. Gradient checkpointing keeps only each block's input and recomputes the block "
            "during backward: activations shrink to one block's worth, at the price of about one extra forward.")
        st.latex(r"M_\text{act} \approx L \cdot T \cdot (\text{bytes per token per block}) \;\xrightarrow{\text{ckpt}}\; "
                 r"L \cdot T \cdot h \cdot b_s + \text{one block};\qquad C_\text{step} \to C_\text{step} + C_\text{fwd}")
        c1, c2, c3 = st.columns(3)
        model = ps.select(c1, "Model", "model", DECODERS)
        batch = ps.number(c2, "Batch", "batch", min_value=0, max_value=4096)
        seq = ps.number(c3, "Sequence length", "seq", min_value=0, max_value=131072)
        rows = lessons.lesson_checkpointing(model, batch, seq)
        c = st.columns(2)
        c[0].metric("Activations without checkpointing", f"{rows[0]['activations_GiB']:,.2f} GiB")
        c[1].metric("Activations with checkpointing", f"{rows[1]['activations_GiB']:,.2f} GiB")
        fmt_table(rows)
        downloads("Table", rows, "checkpointing", "learn.ckpt")
    elif topic == "kv":
        st.markdown(
            "While generating, a decoder keeps the keys and values of every past position so it does not recompute "
            "them: the **KV cache**. It grows with layers, batch and context, and shrinks with fewer KV heads "
            "(grouped-query attention: Llama-3-8B has 8 KV heads for 32 query heads) and smaller elements.")
        st.latex(r"M_{KV} = 2 \cdot L \cdot b \cdot n_{kv} \cdot d_\text{head} \cdot (\text{prompt} + \text{generated}) "
                 r"\cdot \text{bytes}")
        c1, c2, c3, c4 = st.columns(4)
        model = ps.select(c1, "Model", "model", DECODERS)
        batch = ps.number(c2, "Batch", "batch", min_value=0, max_value=4096)
        prompt = ps.number(c3, "Prompt", "prompt", min_value=0, max_value=1 << 20)
        kvp = ps.select(c4, "KV precision", "kv_precision", ["fp32", "bf16", "fp8", "int8", "int4"])
        gen = ps.get("generate")
        r = lessons.lesson_kv_cache(model, batch, prompt, gen, kvp)
        c = st.columns(2)
        c[0].metric("KV cache", fmt.fmt_gib(r["kv_cache"]))
        c[1].metric("Weights", fmt.fmt_gib(r["weights"]))
        t = r["terms"]
        if t:
            st.caption(f"L = {t['layers']}, n_kv = {t['kv_heads']}, d_head = {t['head_dim']}, b = {batch}, "
                       f"positions = {r['positions']:,} ({prompt:,} prompt + {gen:,} generated).")
    elif topic == "parallel":
        st.markdown(
            "**Data parallel** (dp) copies the model to every device and splits the batch; gradients are averaged "
            "with an all-reduce each step. ZeRO / FSDP also split the optimizer states (stage 1), gradients (2) "
            "and weights (3) over the dp devices. **Tensor parallel** (tp) splits every matmul across devices in "
            "one node (two all-reduces of the activations per layer, forward and backward). **Pipeline parallel** "
            "(pp) gives each device a slice of the layers; micro-batches flow through, and the pipeline's fill "
            "and drain leave devices idle (the bubble).")
        st.latex(r"M_\text{device} \approx \frac{W}{tp\,pp\,[dp]_{z\ge3}} + \frac{G}{tp\,pp\,[dp]_{z\ge2}} + "
                 r"\frac{O}{tp\,pp\,[dp]_{z\ge1}} + \frac{\text{activations}}{tp};\qquad "
                 r"t_\text{all-reduce} = 2\,\frac{n-1}{n}\,\frac{\text{bytes}}{\text{bandwidth}};\qquad "
                 r"\text{bubble} = \frac{pp-1}{m + pp - 1}")
        c1, c2, c3, c4, c5 = st.columns(5)
        model = ps.select(c1, "Model", "par_model", ["gpt2-xl", "llama-2-7b", "llama-2-13b", "llama-2-70b"])
        dp = ps.select(c2, "Data parallel", "dp", [1, 2, 4, 8, 16, 32, 64])
        tp = ps.select(c3, "Tensor parallel", "tp", [1, 2, 4, 8])
        pp = ps.select(c4, "Pipeline stages", "pp", [1, 2, 4, 8])
        zero = ps.select(c5, "ZeRO stage", "zero", [0, 1, 2, 3])
        r = lessons.lesson_parallel(model, "a100-sxm-80gb", dp, tp, pp, zero)
        mem = r["memory"]
        c = st.columns(4)
        c[0].metric("Weights per device", fmt.fmt_gib(mem.weights))
        c[1].metric("Optimizer states per device", fmt.fmt_gib(mem.optimizer))
        c[2].metric("Device total", fmt.fmt_gib(mem.device_total),
                    delta="fits" if r["plan"].step.fits else "does not fit", delta_color="off")
        c[3].metric("Step time", fmt.fmt_seconds(r["step_s"]))
        rows = [{"collective": t.name, "seconds (before overlap)": t.seconds} for t in r["comm"].terms]
        rows += [{"collective": "exposed after overlap", "seconds (before overlap)": r["exposed_comm_s"]},
                 {"collective": "pipeline bubble", "seconds (before overlap)": r["bubble_s"]}]
        fmt_table(rows)
        st.caption(f"{r['devices']} A100 80GB, micro-batch 1 x 2048 tokens, global batch {r['global_batch']}, "
                   "AMP bf16 + AdamW. Explore layouts for a whole run on *Plan training*.")
    elif topic == "quantization":
        st.markdown(
            "Storing weights in fewer bits shrinks memory and the bytes each decode step must read; decode is "
            "usually memory-bound, so it also gets faster. Weight-only int8/int4 still compute in bf16.")
        st.latex(r"M_W = P_\text{linear} \cdot \text{bits}/8 + \text{scales} + P_\text{other} \cdot 2")
        c1, c2, c3 = st.columns(3)
        model = ps.select(c1, "Model", "model", DECODERS)
        batch = ps.number(c2, "Batch", "batch", min_value=0, max_value=4096)
        prompt = ps.number(c3, "Prompt", "prompt", min_value=0, max_value=1 << 20)
        rows = lessons.lesson_quantization(model, batch, prompt, ps.get("generate"))
        fmt_table(rows)
        downloads("Table", rows, "quantization", "learn.quant")
    elif topic == "pruning":
        st.markdown(
            "Pruning zeroes a fraction of the weights. The count of non-zero weights falls at once; the time falls "
            "only with kernels that skip zeros (2:4 structured sparsity on Ampere and later runs up to 2x faster "
            "matmuls; unstructured sparsity rarely speeds up dense GPUs).")
        st.latex(r"P_\text{nonzero} = P - s \cdot P_\text{linear},\qquad C_\text{effective} = C - s \cdot C_\text{linear}")
        c1, c2 = st.columns(2)
        model = ps.select(c1, "Model", "model", DECODERS)
        sp = ps.slider(c2, "Sparsity (fraction pruned)", "sparsity", 0.0, 0.99, step=0.01)
        r = lessons.lesson_pruning(model, sp, 1, ps.get("seq"))
        c = st.columns(3)
        c[0].metric("Non-zero parameters", fmt.fmt_count(r["nonzero"]))
        c[1].metric("Forward FLOPs (dense)", fmt.fmt_si(r["forward"], "FLOP"))
        c[2].metric("Forward FLOPs (zeros skipped)", fmt.fmt_si(r["forward_effective"], "FLOP"))
    elif topic == "distillation":
        st.markdown(
            "Distillation trains a small **student** to match a large **teacher**'s outputs. Each step runs the "
            "teacher forward (no backward, no optimizer) and the student's full training step.")
        st.latex(r"C_\text{distill step} = C_\text{fwd}^\text{teacher} + C_\text{step}^\text{student} "
                 r"\approx 2 P_T T + 6 P_S T")
        c1, c2, c3, c4 = st.columns(4)
        teacher = ps.select(c1, "Teacher", "teacher", DECODERS)
        student = ps.select(c2, "Student", "student", DECODERS)
        batch = ps.number(c3, "Batch", "batch", min_value=0, max_value=4096)
        seq = ps.number(c4, "Sequence length", "seq", min_value=0, max_value=131072)
        r = lessons.lesson_distillation(teacher, student, batch, seq)
        c = st.columns(3)
        c[0].metric("Teacher forward", fmt.fmt_si(r["teacher_flops"], "FLOP"))
        c[1].metric("Student step", fmt.fmt_si(r["student_flops"], "FLOP"))
        c[2].metric("Distillation step", fmt.fmt_si(r["step_flops"], "FLOP"))
        st.caption(f"On an H100: teacher {fmt.fmt_seconds(r['teacher_s'])} + student "
                   f"{fmt.fmt_seconds(r['student_s'])} = {fmt.fmt_seconds(r['step_s'])} per step.")
    elif topic == "lora":
        st.markdown(
            "LoRA freezes the model and trains a low-rank update **B A** beside chosen linear layers: r x (d_in + "
            "d_out) parameters each instead of d_in x d_out. Gradients and optimizer states exist only for the "
            "adapters. QLoRA also stores the frozen weights in 4 bits.")
        st.latex(r"W x + \tfrac{\alpha}{r} B A x,\quad A \in \mathbb{R}^{r \times d_\text{in}},\ "
                 r"B \in \mathbb{R}^{d_\text{out} \times r},\quad P_\text{LoRA} = r\,(d_\text{in} + d_\text{out})")
        c1, c2, c3 = st.columns(3)
        model = ps.select(c1, "Model", "lora_model", ["llama-3.2-1b", "llama-2-7b", "llama-3-8b", "mistral-7b",
                                                      "llama-2-13b"])
        rank = ps.slider(c2, "Rank r", "rank", 1, 256)
        seq = ps.number(c3, "Sequence length", "seq", min_value=0, max_value=131072)
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
