"""Parameter counts of the vision towers and projectors of multimodal checkpoints whose language model
costmodel estimates (Gemma 3, Llama 4). They are reported apart (``DecoderSpec.params_apart``): the
estimate's FLOPs, memory and time are the text model's. Counts follow the Hugging Face modules exactly
(tests/test_modern_decoders.py builds them on the meta device). Defaults are the config classes'.
"""

from __future__ import annotations

from . import hf_fields as F


def _vit_layer(h: int, inter: int) -> int:
    """Pre-LN encoder layer with biases everywhere: 2 LayerNorms, q/k/v/o (h x h + h), fc1, fc2."""
    return 2 * 2 * h + 4 * (h * h + h) + (h * inter + inter) + (inter * h + h)


def siglip_vision(vc: dict) -> int:
    """HF ``SiglipVisionModel`` (Gemma 3's tower): patch Conv2d(C, h, p, stride p) with bias, position
    embedding ((image/p)^2 x h), encoder layers, post LayerNorm, and the attention-pooling head when
    ``vision_use_head`` (probe, nn.MultiheadAttention 4*h*h + 4*h, LayerNorm, MLP)."""
    h = F.req(vc, "hidden_size", default=768)
    inter = F.req(vc, "intermediate_size", default=3072)
    layers = F.req(vc, "num_hidden_layers", default=12)
    c = F.req(vc, "num_channels", default=3)
    p = F.square_side(vc.get("patch_size", 16), "config.vision_config.patch_size")
    img = F.square_side(vc.get("image_size", 224), "config.vision_config.image_size")
    n = c * p * p * h + h + (img // p) ** 2 * h + layers * _vit_layer(h, inter) + 2 * h
    if F.flag(vc, "vision_use_head", True):
        n += h + (4 * h * h + 4 * h) + 2 * h + (h * inter + inter) + (inter * h + h)
    return n


def gemma3_projector(vc: dict, text_hidden: int) -> int:
    """``Gemma3MultiModalProjector``: mm_input_projection_weight (vision h x text h) + RMSNorm (vision h)."""
    h = F.req(vc, "hidden_size", default=768)
    return h * text_hidden + h


def llama4_vision(vc: dict) -> int:
    """HF ``Llama4VisionModel``: unfold patch projection (C*p*p x h, no bias), class embedding (h), positions
    (((image/p)^2 + 1) x h), LayerNorm pre and post, encoder layers, and the pixel-shuffle adapter MLP
    (fc1 intermediate x projector_input_dim, fc2 projector_output_dim^2, no biases)."""
    h = F.req(vc, "hidden_size", default=768)
    inter = F.req(vc, "intermediate_size", default=5632)
    layers = F.req(vc, "num_hidden_layers", default=34)
    c = F.req(vc, "num_channels", default=3)
    p = F.square_side(vc.get("patch_size", 14), "config.vision_config.patch_size")
    img = F.square_side(vc.get("image_size", 448), "config.vision_config.image_size")
    pin = F.req(vc, "projector_input_dim", default=4096)
    pout = F.req(vc, "projector_output_dim", default=4096)
    return (c * p * p * h + h + ((img // p) ** 2 + 1) * h + 2 * 2 * h + layers * _vit_layer(h, inter)
            + inter * pin + pout * pout)


def llama4_projector(vc: dict, text_hidden: int) -> int:
    """``Llama4MultiModalProjector``: linear_1 (vision_output_dim x text h, no bias)."""
    return F.req(vc, "vision_output_dim", default=7680) * text_hidden
