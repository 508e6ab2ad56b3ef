"""Vision families (ViT, ResNet, plain CNN) against independent references: published parameter
counts, the real implementations (transformers ViT/ResNet, the torch.nn.Sequential a CNN spec
describes) built on the meta device, torch's FlopCounterMode, and the tensors autograd really
saves (saved_tensors_hooks on tiny real CPU models)."""

import pytest
import torch
import transformers

from costmodel.errors import InputError
from costmodel.models import get_preset
from costmodel.specs.hf import spec_from_hf_config
from costmodel.profiler.torch_models import build_torch_cnn
from costmodel.specs.cnn import CNNSpec, cnn_from_dict
from costmodel.specs.resnet import ResNetSpec
from costmodel.specs.vit import ViTSpec
from reference import counted_flops, param_count, saved_activation_bytes
from support import make_ctx

HF_PRESETS = ["resnet-18", "resnet-50", "vit-b-16"]
CNN_PRESETS = ["simple-cnn-28", "cifar-cnn"]


def ctx(b=2, s=224, training=True, eager=False, sb=4, cb=4, autocast=False, dropout=False):
    return make_ctx(b, 1, image_size=s, training=training, stream_bytes=sb, compute_bytes=cb, autocast=autocast,
                    eager_attention=eager, dropout=dropout)


def total(rows, what):
    return sum(getattr(r, what) * r.count for r in rows)


def spec_of(cfg):
    return cnn_from_dict(cfg) if cfg.get("family") == "cnn" else spec_from_hf_config(cfg)


def real_model(cfg, meta=True, attn="eager"):
    """The reference implementation: transformers for HF configs, build_torch_cnn for CNN specs."""
    if cfg.get("family") == "cnn":
        build = lambda: build_torch_cnn(cnn_from_dict(cfg))  # noqa: E731
    else:
        hf_cfg = transformers.AutoConfig.for_model(**cfg)
        hf_cfg._attn_implementation = attn
        cls = getattr(transformers, cfg["architectures"][0])
        build = lambda: cls(hf_cfg)  # noqa: E731
    if meta:
        with torch.device("meta"):
            return build()
    return build()


def all_params(model):
    """Parameters and buffers: storages that are not activations (BatchNorm's running_mean /
    running_var are saved by batch_norm for backward but are persistent; ``buffer_bytes`` counts them)."""
    return list(model.parameters()) + list(model.buffers())


# Real config.json contents (abridged to the fields the architectures read) of public models,
# with the parameter counts torchvision's docs publish for the same architecture.
REAL_CONFIGS = {
    # google/vit-large-patch16-224; torchvision ViT_L_16_Weights.IMAGENET1K_V1 num_params 304,326,632
    "vit-l-16": (dict(model_type="vit", architectures=["ViTForImageClassification"], hidden_size=1024,
                      num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096, image_size=224,
                      patch_size=16, num_labels=1000), 304326632),
    # google/vit-base-patch16-224-in21k: a ViTModel (with the pooler), no classifier; no published
    # count (reference: the transformers build only)
    "vit-b-16-in21k": (dict(model_type="vit", architectures=["ViTModel"], hidden_size=768, num_hidden_layers=12,
                            num_attention_heads=12, intermediate_size=3072, image_size=224, patch_size=16), None),
    # microsoft/resnet-101; torchvision ResNet101_Weights.IMAGENET1K_V1 num_params 44,549,160
    "resnet-101": (dict(model_type="resnet", architectures=["ResNetForImageClassification"], layer_type="bottleneck",
                        depths=[3, 4, 23, 3], hidden_sizes=[256, 512, 1024, 2048], embedding_size=64,
                        num_labels=1000), 44549160),
    # microsoft/resnet-34; torchvision ResNet34_Weights.IMAGENET1K_V1 num_params 21,797,672
    "resnet-34": (dict(model_type="resnet", architectures=["ResNetForImageClassification"], layer_type="basic",
                       depths=[3, 4, 6, 3], hidden_sizes=[64, 128, 256, 512], embedding_size=64, num_labels=1000),
                  21797672),
}


# ---- (a) parameters ---------------------------------------------------------------------------

@pytest.mark.parametrize("preset_id", HF_PRESETS + CNN_PRESETS)
def test_preset_params_exact(preset_id):
    # references: the preset's published count (torchvision docs for resnet/vit; hand count of the
    # PyTorch example/tutorial net for the CNNs, see the preset file) and sum(p.numel()) of the real
    # model built on the meta device (transformers for resnet/vit, torch.nn for the CNNs)
    pre = get_preset(preset_id)
    ours = total(spec_of(pre.config).ledger(ctx(s=224)), "params")
    assert ours == pre.published_params
    assert ours == param_count(real_model(pre.config))


@pytest.mark.parametrize("name", sorted(REAL_CONFIGS))
def test_real_config_params_exact(name):
    # references: sum(p.numel()) of transformers' build of that config.json, and torchvision's
    # published num_params where one exists
    cfg, published = REAL_CONFIGS[name]
    ours = total(spec_from_hf_config(cfg).ledger(ctx()), "params")
    assert ours == param_count(real_model(cfg))
    if published is not None:
        assert ours == published


def test_hand_param_counts():
    # simple-cnn-28 by hand: conv1 32*1*3*3+32 = 320; conv2 64*32*3*3+64 = 18,496;
    # fc1 9216*128+128 = 1,179,776 (9216 = 64 channels * 12 * 12 after 28-2-2 = 24 and maxpool 2);
    # fc2 128*10+10 = 1,290
    rows = cnn_from_dict(get_preset("simple-cnn-28").config).ledger(ctx())
    assert [r.params for r in rows if r.params] == [320, 18496, 1179776, 1290]
    # ViT-B/16 position embeddings: (196 patches + CLS) * 768 = 151,296
    rows = {r.name: r for r in spec_from_hf_config(get_preset("vit-b-16").config).ledger(ctx())}
    assert rows["embeddings.position_embeddings"].params == 197 * 768


def test_vit_params_from_config_flops_from_workload():
    # ViT-B/16 at 384x384: position embeddings stay sized by the config (224 -> 197 positions; HF
    # interpolates them), while compute follows the workload: 576 patches + CLS = 577 tokens
    spec = spec_from_hf_config(get_preset("vit-b-16").config)
    assert total(spec.ledger(ctx(s=384)), "params") == 86567656
    model = real_model(get_preset("vit-b-16").config)
    x = torch.zeros(2, 3, 384, 384, device="meta")
    ref = counted_flops(lambda: model(pixel_values=x, interpolate_pos_encoding=True))
    assert total(spec.ledger(ctx(s=384, eager=True)), "forward_flops") == pytest.approx(ref, rel=0.01)


def test_buffer_bytes_match_real_buffers():
    # reference: the bytes of every buffer of the real model (BatchNorm running_mean/var fp32 and
    # num_batches_tracked int64). ResNet-50: 26,560 BN channels in 53 norms -> 26560*8 + 53*8 = 212,904
    cfg = get_preset("resnet-50").config
    model = real_model(cfg)
    ref = sum(b.numel() * b.element_size() for b in model.buffers())
    assert spec_from_hf_config(cfg).buffer_bytes() == ref == 212904
    spec = cnn_from_dict(KITCHEN_SINK)
    ref = sum(b.numel() * b.element_size() for b in build_torch_cnn(spec).buffers())
    assert spec.buffer_bytes() == ref


# ---- (b) forward FLOPs ------------------------------------------------------------------------

@pytest.mark.parametrize("name", HF_PRESETS + CNN_PRESETS + sorted(REAL_CONFIGS))
def test_forward_flops_match_flop_counter(name):
    # reference: torch.utils.flop_counter.FlopCounterMode (2 FLOPs per MAC) on the meta device,
    # eager attention for ViT so its score matmuls are visible to it
    cfg = REAL_CONFIGS[name][0] if name in REAL_CONFIGS else get_preset(name).config
    spec = spec_of(cfg)
    model = real_model(cfg)
    b = 2
    if isinstance(spec, CNNSpec):
        x = torch.zeros(b, spec.in_channels, spec.in_height, spec.in_width, device="meta")
        ref = counted_flops(lambda: model(x))
    else:
        x = torch.zeros(b, 3, 224, 224, device="meta")
        ref = counted_flops(lambda: model(pixel_values=x))
    ours = total(spec.ledger(ctx(b, 224, eager=True)), "forward_flops")
    assert ours == pytest.approx(ref, rel=0.01)


def test_flops_hand_arithmetic():
    # ResNet-50 stem conv at 224: output 112x112 (floor((224 + 2*3 - 7)/2) + 1), 64 filters of 3x7x7:
    # 2 * 64 * 3*7*7 * 112*112 = 236,027,904 FLOPs per image
    rows = {r.name: r for r in spec_from_hf_config(get_preset("resnet-50").config).ledger(ctx(1))}
    assert rows["embedder.convolution"].forward_flops == 2 * 64 * 3 * 7 * 7 * 112 * 112 == 236027904
    # the stem's input is the image: no input gradient, weight gradient = forward
    assert rows["embedder.convolution"].input_grad_flops == 0
    assert rows["embedder.convolution"].weight_grad_flops == 236027904
    # ViT-B/16 patch embedding: 196 patches * 768 * (3*16*16) * 2 = 231,211,008
    rows = {r.name: r for r in spec_from_hf_config(get_preset("vit-b-16").config).ledger(ctx(1))}
    assert rows["embeddings.patch_embeddings.projection"].forward_flops == 2 * 196 * 768 * 3 * 16 * 16
    # attention per layer: 2 matmuls * 2 * 12 heads * 197 * 197 * 64 = 119,221,248
    assert rows["layers.*.attn.core"].forward_flops == 4 * 12 * 197 * 197 * 64


@pytest.mark.parametrize("name,gmacs", [("resnet-18", 1.81), ("resnet-50", 4.09), ("vit-b-16", 17.56)])
def test_macs_match_torchvision_docs(name, gmacs):
    # torchvision's model tables list "GFLOPS" per 224x224 image, which are GMACs (FLOPs / 2):
    # ResNet18 1.81, ResNet50 4.09, ViT_B_16 17.56
    rows = spec_of(get_preset(name).config).ledger(ctx(1))
    assert round(total(rows, "forward_flops") / 2e9, 2) == gmacs


# ---- (c) saved activations --------------------------------------------------------------------

TINY = {
    "resnet-bottleneck": dict(model_type="resnet", architectures=["ResNetForImageClassification"], num_labels=10,
                              embedding_size=16, hidden_sizes=[32, 64, 128, 256], depths=[2, 1, 2, 1]),
    "resnet-basic": dict(model_type="resnet", architectures=["ResNetForImageClassification"], num_labels=10,
                         layer_type="basic", embedding_size=16, hidden_sizes=[16, 32, 64, 128], depths=[2, 2, 1, 1]),
    "resnet-downsample": dict(model_type="resnet", architectures=["ResNetForImageClassification"], num_labels=10,
                              embedding_size=16, hidden_sizes=[32, 64], depths=[2, 2], downsample_in_first_stage=True,
                              downsample_in_bottleneck=True),
    "resnet-model-gelu": dict(model_type="resnet", architectures=["ResNetModel"], layer_type="basic",
                              hidden_act="gelu", embedding_size=8, hidden_sizes=[16, 32], depths=[1, 2]),
    "vit-cls": dict(model_type="vit", architectures=["ViTForImageClassification"], num_labels=10, hidden_size=64,
                    num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, image_size=32, patch_size=8),
    "vit-model": dict(model_type="vit", architectures=["ViTModel"], hidden_size=64, num_hidden_layers=2,
                      num_attention_heads=4, intermediate_size=128, image_size=32, patch_size=8),
}

KITCHEN_SINK = {
    "family": "cnn", "name": "kitchen-sink", "input": {"channels": 3, "height": 32, "width": 32},
    "layers": [
        {"type": "conv2d", "out_channels": 8, "kernel": 3, "padding": 1, "bias": False},
        {"type": "batchnorm2d"}, {"type": "relu"},
        {"type": "conv2d", "out_channels": 8, "kernel": 3, "stride": 2, "padding": 1, "groups": 2},
        {"type": "gelu"}, {"type": "avgpool2d", "kernel": 2},
        {"type": "conv2d", "out_channels": 16, "kernel": 3}, {"type": "tanh"},
        {"type": "maxpool2d", "kernel": 3, "stride": 1, "padding": 1},
        {"type": "conv2d", "out_channels": 16, "kernel": 1}, {"type": "silu"},
        {"type": "adaptive_avgpool2d", "output_size": 2},
        {"type": "flatten"}, {"type": "linear", "out_features": 32, "in_features": 64}, {"type": "batchnorm1d"},
        {"type": "sigmoid"}, {"type": "linear", "out_features": 5},
    ],
    "num_classes": 5,
}


def _hf_train_saved(cfg, attn, autocast=False):
    torch.manual_seed(0)
    model = real_model(cfg, meta=False, attn=attn).train()
    x = torch.randn(2, 3, 32, 32)
    kwargs = {} if cfg["architectures"][0].endswith("Model") else {"labels": torch.randint(0, 10, (2,))}

    def fwd():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            model(pixel_values=x, **kwargs)

    return saved_activation_bytes(fwd, all_params(model))


@pytest.mark.parametrize("name,attn", [("resnet-bottleneck", "eager"), ("resnet-basic", "eager"),
                                       ("resnet-downsample", "eager"), ("resnet-model-gelu", "eager"),
                                       ("vit-cls", "eager"), ("vit-cls", "sdpa"), ("vit-model", "sdpa")])
def test_saved_activations_match_autograd(name, attn):
    # reference: distinct storages autograd saves (saved_tensors_hooks) in a real CPU fp32 training
    # forward with the loss, 32x32 images, batch 2; parameters and buffers excluded.
    # Remaining difference: nll_loss's 4-byte scalar total_weight (not modelled).
    cfg = TINY[name]
    ref = _hf_train_saved(cfg, attn)
    ours = total(spec_from_hf_config(cfg).ledger(ctx(2, 32, eager=attn == "eager")), "activation_bytes")
    assert ours == pytest.approx(ref, rel=0.03)
    assert abs(ours - ref) <= 4


@pytest.mark.parametrize("name", ["resnet-bottleneck", "vit-cls"])
def test_saved_activations_autocast(name):
    # torch.autocast (CPU, bf16): convs/linears save a bf16 copy of an fp32 input, BatchNorm keeps
    # the bf16 dtype of its input (it is not on autocast's fp32 list), LayerNorm outputs fp32, and
    # each weight gets a bf16 cast kept for backward (2 bytes per weight element)
    cfg = TINY[name]
    ref = _hf_train_saved(cfg, "eager", autocast=True)
    rows = spec_from_hf_config(cfg).ledger(ctx(2, 32, eager=True, sb=4, cb=2, autocast=True))
    ours = total(rows, "activation_bytes") + 2 * total(rows, "weight_cast_elems")
    assert ours == pytest.approx(ref, rel=0.03)


@pytest.mark.parametrize("cfg", [get_preset("simple-cnn-28").config, get_preset("cifar-cnn").config, KITCHEN_SINK],
                         ids=["simple-cnn-28", "cifar-cnn", "kitchen-sink"])
@pytest.mark.parametrize("dropout", [False, True])
def test_cnn_saved_activations_match_autograd(cfg, dropout):
    # reference: saved_tensors_hooks on the torch.nn.Sequential build of the spec, fp32 train mode,
    # batch 2, cross_entropy loss; parameters and BatchNorm buffers excluded
    spec = cnn_from_dict(cfg)
    torch.manual_seed(0)
    model = build_torch_cnn(spec).train()
    for mod in model.modules():
        if isinstance(mod, torch.nn.Dropout):
            mod.train(dropout)
    x = torch.randn(2, spec.in_channels, spec.in_height, spec.in_width)
    y = torch.randint(0, spec.classes, (2,))
    ref = saved_activation_bytes(lambda: torch.nn.functional.cross_entropy(model(x), y), all_params(model))
    rows = spec.ledger(ctx(2, dropout=dropout))
    ours = total(rows, "activation_bytes")
    # costmodel models CUDA dropout, which keeps a 1-byte bool mask; CPU dropout keeps the fp32
    # scaled noise instead (input * bernoulli(1-p)/(1-p)): 3 more bytes per masked element
    masks = sum(r.activation_bytes * r.count for r in rows if r.kind == "dropout")
    assert ours + 3 * masks == pytest.approx(ref, rel=0.03)
    assert abs(ours + 3 * masks - ref) <= 4  # nll_loss's 4-byte scalar total_weight
    if dropout and any(L.type == "dropout" for L in spec.layers):
        assert masks > 0


def test_hand_saved_bytes_simple_cnn():
    # simple-cnn-28, fp32, batch 1, dropout off: image 1*28*28*4 = 3,136 (conv1's input);
    # relu outputs 32*26*26*4 = 86,528 and 64*24*24*4 = 147,456 (the next conv / maxpool save the
    # same storages); maxpool int64 indices 64*12*12*8 = 73,728; fc1's input 9216*4 = 36,864;
    # relu 128*4 = 512; log_softmax output 10*4 = 40 + int64 target 8
    rows = cnn_from_dict(get_preset("simple-cnn-28").config).ledger(ctx(1))
    assert total(rows, "activation_bytes") == 3136 + 86528 + 147456 + 73728 + 36864 + 512 + 40 + 8


def test_cnn_round_trip_and_image_size_ignored():
    spec = cnn_from_dict(KITCHEN_SINK)
    assert cnn_from_dict(spec.to_dict()) == spec
    assert spec.family == "cnn" and spec.modality == "image"
    # the spec's own input size is used, whatever the workload's image_size
    assert total(spec.ledger(ctx(s=512)), "forward_flops") == total(spec.ledger(ctx(s=32)), "forward_flops")


# ---- (d) bad inputs ---------------------------------------------------------------------------

def _bad(mutate):
    cfg = {**get_preset("simple-cnn-28").config}
    cfg["layers"] = [dict(L) for L in cfg["layers"]]
    mutate(cfg)
    with pytest.raises(InputError) as err:
        cnn_from_dict(cfg)
    return err.value


def test_bad_cnn_specs_name_the_field():
    err = _bad(lambda c: c["layers"][2].update(kernel=0))
    assert err.field == "model.layers[2].kernel" and "whole number >= 1" in err.message
    err = _bad(lambda c: c["layers"][0].update(kernel=29))  # 29 > 28
    assert err.field == "model.layers[0].kernel" and "larger than its input 28x28" in err.message
    err = _bad(lambda c: c["layers"][7].update(in_features=9000))
    assert err.field == "model.layers[7].in_features" and "9216" in err.message
    err = _bad(lambda c: c["layers"].pop(6))  # no flatten before the linear
    assert err.field == "model.layers[6].type" and "flatten" in err.message
    err = _bad(lambda c: c["layers"][5].update(p=1.5))
    assert err.field == "model.layers[5].p"
    err = _bad(lambda c: c["layers"][0].update(kernal=3))
    assert err.field == "model.layers[0].kernal" and "unknown field" in err.message
    err = _bad(lambda c: c["layers"][0].update(type="conv3d"))
    assert err.field == "model.layers[0].type"
    err = _bad(lambda c: c["layers"][0].pop("out_channels"))
    assert err.field == "model.layers[0].out_channels" and "required" in err.message
    err = _bad(lambda c: c.update(num_classes=7))
    assert err.field == "model.num_classes" and "10" in err.message
    err = _bad(lambda c: c.update(input={"channels": 1, "height": "28", "width": 28}))
    assert err.field == "model.input.height"
    err = _bad(lambda c: c.update(layers=[]))
    assert err.field == "model.layers"
    err = _bad(lambda c: c.update(layers=[{"type": "conv2d", "out_channels": 4, "kernel": 3}]))
    assert err.field == "model.layers" and "flat" in err.message
    err = _bad(lambda c: c["layers"].insert(8, {"type": "conv2d", "out_channels": 4, "kernel": 1}))
    assert err.field == "model.layers[8].type" and "flat" in err.message
    err = _bad(lambda c: c["layers"][2].update(groups=5))
    assert err.field == "model.layers[2].groups"


def test_bad_vision_configs_name_the_field():
    with pytest.raises(InputError) as err:
        spec_from_hf_config({"model_type": "vit", "architectures": ["ViTForMaskedImageModeling"]})
    assert err.value.field == "config.architectures"
    with pytest.raises(InputError) as err:
        spec_from_hf_config({"model_type": "resnet", "layer_type": "dense"})
    assert err.value.field == "config.layer_type"
    with pytest.raises(InputError) as err:
        spec_from_hf_config({"model_type": "resnet", "depths": [3, 4], "hidden_sizes": [64, 128, 256]})
    assert err.value.field == "model.depths"
    with pytest.raises(InputError) as err:  # the workload's image is smaller than one patch
        spec_from_hf_config(get_preset("vit-b-16").config).ledger(ctx(s=8))
    assert err.value.field == "image_size"


def test_importer_types_and_estimate_smoke():
    from costmodel import estimate

    assert isinstance(spec_from_hf_config(get_preset("vit-b-16").config), ViTSpec)
    assert isinstance(spec_from_hf_config(get_preset("resnet-50").config), ResNetSpec)
    est = estimate("resnet-50", task="train", batch=8, image_size=224, precision="fp32")
    assert est.params.total == 25557032
    # weights include the BatchNorm buffers
    assert est.memory_bytes.weights == 25557032 * 4 + 212904
    # training FLOPs: forward + backward, where the stem conv has no input gradient
    assert est.flops.backward == pytest.approx(2 * est.flops.forward - 8 * 236027904)


def test_saved_activations_full_size_resnet18():
    # the same reference at the real size: ResNet-18, 224x224, batch 2, fp32 (about 0.5 s on CPU);
    # 44,406,096 bytes ours vs 44,406,100 autograd (the 4-byte nll_loss total_weight)
    cfg = get_preset("resnet-18").config
    torch.manual_seed(0)
    model = real_model(cfg, meta=False).train()
    x = torch.randn(2, 3, 224, 224)
    y = torch.randint(0, 1000, (2,))
    ref = saved_activation_bytes(lambda: model(pixel_values=x, labels=y), all_params(model))
    ours = total(spec_from_hf_config(cfg).ledger(ctx(2, 224)), "activation_bytes")
    assert ours == pytest.approx(ref, rel=0.03)
    assert abs(ours - ref) <= 4
