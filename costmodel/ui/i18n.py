"""The dashboard's words in English and Chinese (the language of the course it is taught with).

``t(key, lang)`` returns the text; ``lang`` is "en" or "zh" (the pages keep it in the URL as ``lang=zh``). Every
key has both languages (tests/test_i18n.py checks). Numbers, units and formulas are not translated; technical
terms keep their English name beside the Chinese one where the course does (FLOPs, MFU, KV cache, LoRA).
"""

from __future__ import annotations

LANGS = {"en": "English", "zh": "中文"}

CATALOG: dict[str, dict[str, str]] = {
    # ---- navigation and pages -------------------------------------------------------------------------------
    "lang.label": {"en": "Language", "zh": "语言"},
    "home.title": {"en": "costmodel", "zh": "costmodel：模型成本估算"},
    "home.intro": {
        "en": "**What does this model cost to train and to serve?** Pick a model, a device and a workload; get "
              "exact parameter counts, FLOPs (2 per multiply-add), per-device memory, step time, and the formulas "
              "behind every number. Everything is in the URL: copy the address bar to share a view.",
        "zh": "**训练和部署这个模型要花多少？** 选择模型、硬件和工作负载，得到精确的参数量、FLOPs（每次乘加计 2 次）、"
              "每个设备的显存、每步时间，以及每个数字背后的公式。所有设置都保存在网址中：复制地址栏即可分享当前视图。"},
    "home.seeds": {"en": "Open a scenario", "zh": "打开一个示例场景"},
    "home.course": {"en": "The course's models", "zh": "课程中的模型"},
    "home.course_intro": {
        "en": "Every network the course articles build is a preset, with its parameter count checked by hand: "
              "open one, or build your own layer by layer on *Estimate* (model source *Build layer by layer*).",
        "zh": "课程文章中搭建的每个网络都是预设模型，参数量均已手工核对：直接打开，或在 *Estimate* 页面"
              "（模型来源选 *Build layer by layer*）逐层搭建自己的网络。"},
    "home.pages": {"en": "Pages", "zh": "页面"},
    "home.pages_list": {
        "en": "- **Estimate**: one model on one device: params, FLOPs and MACs, memory against capacity, step time "
              "with its bound, \\$ and energy, per-layer table, and the formulas behind each number.\n"
              "- **Compare**: the same workload on several devices, or several settings, with sweeps.\n"
              "- **Plan training**: a whole run on many devices: layout, wall clock, GPU-hours, \\$, kWh, CO2, "
              "deadline and budget, checkpoint storage, and a layout search.\n"
              "- **Plan serving**: latency, throughput, the largest batch and context that fit, \\$ per million tokens.\n"
              "- **Profile**: run real steps of a model on this machine and see predicted vs measured.\n"
              "- **Scenarios**: saved estimates and plans, compared and exported as CSV, JSON or an HTML report.\n"
              "- **Learn**: where cost comes from, with small examples computed by the same estimator.",
        "zh": "- **Estimate（估算）**：一个模型在一个设备上的参数量、FLOPs 与 MACs、显存与容量、每步时间及其瓶颈、"
              "费用与能耗、逐层明细，以及每个数字背后的公式。\n"
              "- **Compare（比较）**：同一工作负载在多种硬件或多种设置下的对比，以及参数扫描。\n"
              "- **Plan training（训练规划）**：多设备上的完整训练：并行布局、总时长、GPU 小时、费用、电量、碳排放、"
              "截止日期与预算、检查点存储，以及布局搜索。\n"
              "- **Plan serving（推理部署规划）**：延迟、吞吐量、可容纳的最大批次与上下文、每百万 token 的费用。\n"
              "- **Profile（实测）**：在本机运行模型的真实训练/推理步骤，对比预测与实测。\n"
              "- **Scenarios（场景）**：保存的估算与规划，可比较并导出为 CSV、JSON 或 HTML 报告。\n"
              "- **Learn（学习）**：成本从何而来，配有由同一估算器计算的小例子。"},
    # ---- Estimate -----------------------------------------------------------------------------------------
    "estimate.title": {"en": "Estimate", "zh": "估算"},
    "estimate.caption": {
        "en": "Pick a model, a device and a workload in the sidebar. Every number below comes from "
              "`costmodel.estimate`; open *Formulas* to see how.",
        "zh": "在侧边栏选择模型、硬件和工作负载。下面的每个数字都来自 `costmodel.estimate`；展开 *公式* 查看计算方法。"},
    "estimate.run_step": {"en": "training step", "zh": "一个训练步"},
    "estimate.run_request": {"en": "one generation request", "zh": "一次生成请求"},
    "estimate.run_forward": {"en": "one forward pass", "zh": "一次前向传播"},
    "estimate.batch": {"en": "batch", "zh": "批次"},
    "estimate.layers_table": {"en": "The network layer by layer: output shape and parameters",
                              "zh": "逐层查看网络：输出形状与参数量"},
    "estimate.formulas": {"en": "Formulas", "zh": "公式"},
    # ---- metric labels ------------------------------------------------------------------------------------
    "metric.params": {"en": "Parameters", "zh": "参数量"},
    "metric.trainable": {"en": "Trainable parameters", "zh": "可训练参数"},
    "metric.forward_flops": {"en": "Forward FLOPs", "zh": "前向 FLOPs"},
    "metric.forward_macs": {"en": "Forward MACs", "zh": "前向 MACs（乘加）"},
    "metric.peak": {"en": "Peak memory", "zh": "峰值显存"},
    "metric.device_total": {"en": "Device total", "zh": "设备总占用"},
    "metric.fits": {"en": "Fits", "zh": "能否放下"},
    "metric.capacity": {"en": "Capacity", "zh": "设备容量"},
    "metric.step_time": {"en": "Step time", "zh": "每步时间"},
    "metric.prefill": {"en": "Prefill time", "zh": "预填充时间"},
    "metric.decode": {"en": "Decode per token", "zh": "每个 token 的解码时间"},
    "metric.forward_time": {"en": "Forward time", "zh": "前向时间"},
    "metric.bound": {"en": "Bound", "zh": "瓶颈"},
    "metric.cost_per": {"en": "Cost per", "zh": "费用 /"},
    "metric.cost_per_million_tokens": {"en": "Cost per million tokens", "zh": "每百万 token 费用"},
    "metric.price_hour": {"en": "Price per device-hour", "zh": "每设备小时价格"},
    "metric.energy_per": {"en": "Energy per", "zh": "能耗 /"},
    "metric.wall_clock": {"en": "Wall clock", "zh": "总时长"},
    "metric.gpu_hours": {"en": "GPU-hours", "zh": "GPU 小时"},
    "metric.cost": {"en": "Cost", "zh": "费用"},
    "metric.energy": {"en": "Energy", "zh": "电量"},
    "metric.carbon": {"en": "Carbon", "zh": "碳排放"},
    "metric.devices": {"en": "Devices", "zh": "设备数"},
    # ---- units per family -----------------------------------------------------------------------------------
    "unit.sequences": {"en": "sequences", "zh": "个序列"},
    "unit.images": {"en": "images", "zh": "张图像"},
    "unit.samples": {"en": "samples", "zh": "个样本"},
    "unit.Sequences": {"en": "Sequences", "zh": "序列"},
    "unit.Images": {"en": "Images", "zh": "图像"},
    "unit.Samples": {"en": "Samples", "zh": "样本"},
    # ---- Learn --------------------------------------------------------------------------------------------
    "learn.title": {"en": "Learn", "zh": "学习：成本从何而来"},
    "learn.topic": {"en": "Topic", "zh": "主题"},
    "learn.model": {"en": "Model", "zh": "模型"},
    "learn.batch": {"en": "Batch", "zh": "批次大小"},
    "learn.seq": {"en": "Sequence length", "zh": "序列长度"},
    "topic.course": {"en": "The course's CNNs: shapes, parameters, FLOPs", "zh": "课程中的 CNN：形状、参数量与 FLOPs"},
    "topic.flops": {"en": "Forward and backward FLOPs (why ~6 x params x tokens)",
                    "zh": "前向与反向 FLOPs（为什么约等于 6 × 参数量 × token 数）"},
    "topic.adam": {"en": "What Adam keeps per parameter", "zh": "Adam 为每个参数保存什么"},
    "topic.activations": {"en": "Activations and gradient checkpointing", "zh": "激活值与梯度检查点"},
    "topic.kv": {"en": "The KV cache", "zh": "KV 缓存"},
    "topic.parallel": {"en": "Data, tensor and pipeline parallelism", "zh": "数据并行、张量并行与流水线并行"},
    "topic.quantization": {"en": "Quantization", "zh": "量化"},
    "topic.pruning": {"en": "Pruning", "zh": "剪枝"},
    "topic.distillation": {"en": "Distillation", "zh": "知识蒸馏"},
    "topic.lora": {"en": "LoRA and QLoRA", "zh": "LoRA 与 QLoRA"},
    "learn.course.text": {
        "en": "A 3x3 convolution over a 28x28 image without padding fits 26 positions per side: "
              "**(28 - 3) / 1 + 1 = 26**. Each of its 32 filters has 3 x 3 x 1 weights and a bias: 320 parameters. "
              "A 2x2 max pooling halves the side (26 -> 13); Flatten turns 13 x 13 x 32 into 5,408 numbers, and the "
              "Dense layer after it has 5,408 x 128 + 128 = 692,352 parameters: almost all of the model. The "
              "convolution does most of the multiplying, the dense layer holds most of the weights.",
        "zh": "在 28×28 的图像上做无填充的 3×3 卷积，每边能放下 26 个位置：**(28 − 3) / 1 + 1 = 26**。32 个卷积核"
              "各有 3×3×1 个权重和一个偏置：共 320 个参数。2×2 最大池化把边长减半（26 → 13）；Flatten 把 13×13×32 展平为 "
              "5,408 个数，其后的 Dense 层有 5,408 × 128 + 128 = 692,352 个参数，几乎占了整个模型。卷积层做了大部分乘法，"
              "全连接层则持有大部分权重。"},
    "learn.flops.text": {
        "en": "Each weight of a linear layer takes part in **one multiply-add per token**: 2 FLOPs. So the forward "
              "pass over T tokens costs about **2 P T** FLOPs. The backward pass computes two matmuls per layer, one "
              "for the gradient with respect to the input (dX) and one with respect to the weights (dW): about "
              "**4 P T**. Together **6 P T** (Kaplan et al. 2020), plus the attention score matmuls that grow with "
              "the sequence.",
        "zh": "线性层的每个权重对**每个 token 参与一次乘加**：2 FLOPs。所以对 T 个 token 的前向传播约需 **2PT** FLOPs。"
              "反向传播每层计算两个矩阵乘法：一个求对输入的梯度（dX），一个求对权重的梯度（dW）：约 **4PT**。合计约 "
              "**6PT**（Kaplan 等，2020），另加随序列长度增长的注意力分数矩阵乘法。"},
    "learn.adam.text": {
        "en": "Adam keeps two running averages per parameter, the mean of the gradients **m** and of their squares "
              "**v**. With fp32 master weights (plain fp32 or mixed precision) that is 4 bytes of weight, 4 of "
              "gradient and 8 of state: **16 bytes per parameter** before a single activation is stored.",
        "zh": "Adam 为每个参数保存两个滑动平均：梯度的均值 **m** 和梯度平方的均值 **v**。使用 fp32 主权重（纯 fp32 或混合"
              "精度）时，这是 4 字节权重、4 字节梯度和 8 字节状态：在保存任何激活值之前就已是**每个参数 16 字节**。"},
    "learn.activations.text": {
        "en": "Backward needs the inputs of every layer's forward: autograd **saves** them, and they grow with batch "
              "x sequence. Gradient checkpointing keeps only each block's input and recomputes the block during "
              "backward: activations shrink to one block's worth, at the price of about one extra forward.",
        "zh": "反向传播需要每层前向的输入：autograd 会**保存**它们，其大小随 批次 × 序列长度 增长。梯度检查点只保留每个"
              "块的输入，在反向时重新计算该块：激活值缩小到一个块的量，代价是大约多做一次前向传播。"},
    "learn.kv.text": {
        "en": "While generating, a decoder keeps the keys and values of every past position so it does not recompute "
              "them: the **KV cache**. It grows with layers, batch and context, and shrinks with fewer KV heads "
              "(grouped-query attention: Llama-3-8B has 8 KV heads for 32 query heads) and smaller elements.",
        "zh": "生成时，解码器保存每个历史位置的键和值以免重复计算：这就是 **KV 缓存**。它随层数、批次和上下文长度增长，"
              "随 KV 头数减少（分组查询注意力：Llama-3-8B 有 32 个查询头、8 个 KV 头）和元素变小而缩小。"},
    "learn.parallel.text": {
        "en": "**Data parallel** (dp) copies the model to every device and splits the batch; gradients are averaged "
              "with an all-reduce each step. ZeRO / FSDP also split the optimizer states (stage 1), gradients (2) "
              "and weights (3) over the dp devices. **Tensor parallel** (tp) splits every matmul across devices in "
              "one node. **Pipeline parallel** (pp) gives each device a slice of the layers; the pipeline's fill and "
              "drain leave devices idle (the bubble).",
        "zh": "**数据并行**（dp）把模型复制到每个设备并切分批次；每步用 all-reduce 平均梯度。ZeRO / FSDP 还会把优化器"
              "状态（阶段 1）、梯度（2）和权重（3）分摊到 dp 个设备上。**张量并行**（tp）把每个矩阵乘法切分到同一节点内的多个"
              "设备。**流水线并行**（pp）让每个设备负责一段层；流水线的填充和排空会让设备空闲（气泡）。"},
    "learn.quantization.text": {
        "en": "Storing weights in fewer bits shrinks memory and the bytes each decode step must read; decode is "
              "usually memory-bound, so it also gets faster. Weight-only int8/int4 still compute in bf16. "
              "Quantization-aware training (QAT) trains with fake-quantized weights so the int8 model loses less "
              "accuracy: it costs a little more than plain training (see *Estimate*, method QAT).",
        "zh": "用更少的比特存储权重可以减少显存以及每个解码步需要读取的字节数；解码通常受内存带宽限制，所以也会变快。"
              "仅权重的 int8/int4 仍以 bf16 计算。量化感知训练（QAT）在训练时使用伪量化权重，使 int8 模型损失更少的精度："
              "它比普通训练稍贵一些（见 *Estimate* 页面的 QAT 方法）。"},
    "learn.pruning.text": {
        "en": "Pruning zeroes a fraction of the weights. The count of non-zero weights falls at once; the time falls "
              "only with kernels that skip zeros (2:4 structured sparsity on Ampere and later runs up to 2x faster "
              "matmuls; unstructured sparsity rarely speeds up dense GPUs).",
        "zh": "剪枝把一部分权重置零。非零权重的数量立即减少；但只有跳过零值的计算核才能减少时间（Ampere 及之后的 2:4 结构化"
              "稀疏最多让矩阵乘法快 2 倍；非结构化稀疏很少能加速稠密 GPU）。"},
    "learn.distillation.text": {
        "en": "Distillation trains a small **student** to match a large **teacher**'s outputs. Each step runs the "
              "teacher forward (no backward, no optimizer) and the student's full training step. The course's "
              "teacher (Conv 32 -> Dense 10) and student (Conv 16 -> Dense 5) are presets.",
        "zh": "知识蒸馏训练一个小的**学生**模型去拟合大的**教师**模型的输出。每一步运行教师的前向传播（无反向、无优化器）"
              "和学生的完整训练步。课程中的教师（Conv 32 → Dense 10）和学生（Conv 16 → Dense 5）都是预设模型。"},
    "learn.lora.text": {
        "en": "LoRA freezes the model and trains a low-rank update **B A** beside chosen linear layers: r x (d_in + "
              "d_out) parameters each instead of d_in x d_out. Gradients and optimizer states exist only for the "
              "adapters. QLoRA also stores the frozen weights in 4 bits.",
        "zh": "LoRA 冻结模型，在选定的线性层旁训练一个低秩更新 **BA**：每个只需 r × (d_in + d_out) 个参数，而不是 "
              "d_in × d_out。梯度和优化器状态只存在于适配器上。QLoRA 还把冻结的权重以 4 比特存储。"},
}


def t(key: str, lang: str = "en") -> str:
    """The text of ``key`` in ``lang`` (English when the language is unknown)."""
    entry = CATALOG[key]
    return entry.get(lang) or entry["en"]


def unit_words(est, lang: str = "en") -> dict:
    """What one sample is called for the estimate's model: sequences (text), images, samples (vectors)."""
    kind = {"text": "sequences", "image": "images"}.get(est.modality, "samples")
    cap = kind.capitalize()
    return {"samples": t(f"unit.{kind}", lang), "Samples": t(f"unit.{cap}", lang)}
