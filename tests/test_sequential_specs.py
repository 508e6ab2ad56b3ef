"""The course articles' models (costmodel.specs.sequential): parameter counts by hand (Keras model.summary()
arithmetic), output shapes as the articles teach them ("28x28 input, 3x3 kernel -> 26x26"), and FLOPs and saved
activations against the same network built here in PyTorch (FlopCounterMode, saved_tensors_hooks)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from costmodel.errors import InputError
from costmodel.layers import Ctx
from costmodel.limits import check_workload, model_limits
from costmodel.models import get_preset, load_model
from costmodel.specs.sequential import sequential_from_dict
from costmodel.workload import Workload
from reference import counted_flops, param_count, saved_activation_bytes


def ctx(b=2, seq=256, image=28, training=True):
    return Ctx(batch=b, seq=seq, kv_len=seq, image_size=image, training=training, stream_bytes=4.0, compute_bytes=4.0,
               kv_bytes=4.0, autocast=False, eager_attention=False, dropout=False)


def total(rows, what):
    return sum(getattr(r, what) * r.count for r in rows)


# ---- parameter counts by hand --------------------------------------------------------------------------------

HAND = {
    # conv 3*3*1*32 + 32 = 320; 28-3+1 = 26, pool -> 13; dense 13*13*32*128 + 128 = 692,352; dense 128*10 + 10 = 1,290
    "course-cnn-28": 320 + 692_352 + 1_290,
    # 896 + 18,496 + 73,856 (224 -> 222 -> 111 -> 109 -> 54 -> 52 -> 26) + 26*26*128*512 + 512 + 512*1000 + 1000
    "course-cnn-224": 896 + 18_496 + 73_856 + (86_528 * 512 + 512) + (512 * 1000 + 1000),
    "course-text-classifier": 10_000 * 16 + (16 * 1 + 1),  # embedding + dense(1)
    "course-teacher-28": 320 + (13 * 13 * 32 * 10 + 10),  # 54,410
    "course-student-28": 160 + (13 * 13 * 16 * 5 + 5),  # 13,685
    "course-simplecnn-28x3": 448 + 4_640 + (32 * 7 * 7 * 128 + 128) + (128 * 10 + 10),  # 207,210
    # wide 10,000 + 1; embeddings 8*1000*32; MLP 272 -> 1024 -> 512 -> 256 -> 1
    "course-wide-deep": 10_001 + 256_000 + (272 * 1024 + 1024) + (1024 * 512 + 512) + (512 * 256 + 256) + 257,
}


@pytest.mark.parametrize("preset", sorted(HAND))
def test_course_presets_match_the_hand_count(preset):
    spec = load_model(preset)
    est_total = sum(r.params * r.count for r in spec.ledger(ctx()))
    assert est_total == HAND[preset] == get_preset(preset).published_params
    assert sum(r["params"] for r in spec.layer_table()) == HAND[preset]


def test_the_two_numbers_the_course_quotes():
    assert HAND["course-cnn-28"] == 693_962
    assert HAND["course-cnn-224"] == 44_909_096


def test_layer_table_teaches_28_by_3_to_26():
    rows = load_model("course-cnn-28").layer_table()
    assert [r["output_shape"] for r in rows] == ["28 x 28 x 1", "26 x 26 x 32", "13 x 13 x 32", "5,408", "128", "10"]
    assert rows[1]["size_arithmetic"] == "(28 - 3) / 1 + 1 = 26"
    assert rows[1]["params_arithmetic"] == "3*3*1*32 + 32 = 320"
    assert rows[3]["size_arithmetic"] == "13 x 13 x 32 = 5,408"
    rows = load_model("course-cnn-224").layer_table()
    assert [r["output_shape"] for r in rows][1:7] == ["222 x 222 x 32", "111 x 111 x 32", "109 x 109 x 64",
                                                      "54 x 54 x 64", "52 x 52 x 128", "26 x 26 x 128"]


# ---- against the same network in PyTorch ---------------------------------------------------------------------

def torch_cnn_28(filters=32, hidden=128, classes=10):
    layers = [nn.Conv2d(1, filters, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten()]
    if hidden:
        layers += [nn.Linear(13 * 13 * filters, hidden), nn.ReLU(), nn.Linear(hidden, classes)]
    else:
        layers += [nn.Linear(13 * 13 * filters, classes)]
    return nn.Sequential(*layers)


TORCH = {"course-cnn-28": lambda: torch_cnn_28(), "course-teacher-28": lambda: torch_cnn_28(32, 0, 10),
         "course-student-28": lambda: torch_cnn_28(16, 0, 5)}


@pytest.mark.parametrize("preset", sorted(TORCH))
def test_flops_and_saved_activations_match_pytorch(preset):
    torch.manual_seed(0)
    model = TORCH[preset]().train()
    spec = load_model(preset)
    assert param_count(model) == HAND[preset]
    x = torch.randn(2, 1, 28, 28)
    y = torch.randint(0, spec.classes, (2,))
    rows = spec.ledger(ctx(2))
    assert total(rows, "forward_flops") == counted_flops(lambda: model(x))
    ref = saved_activation_bytes(lambda: nn.functional.cross_entropy(model(x), y), list(model.parameters()))
    assert abs(total(rows, "activation_bytes") - ref) <= 4  # nll_loss's 4-byte scalar total_weight


def test_hand_flops_course_cnn_28():
    # batch 1: conv 2*26*26*32*1*3*3 = 389,376; dense 2*5,408*128 = 1,384,448; dense 2*128*10 = 2,560
    rows = load_model("course-cnn-28").ledger(ctx(1))
    assert total(rows, "forward_flops") == 389_376 + 1_384_448 + 2_560


def test_text_classifier_matches_pytorch():
    torch.manual_seed(0)
    emb, lin = nn.Embedding(10_000, 16), nn.Linear(16, 1)
    ids = torch.randint(0, 10_000, (2, 256))
    target = torch.rand(2, 1)

    def fwd():
        return nn.functional.binary_cross_entropy_with_logits(lin(emb(ids).mean(1)), target)

    spec = load_model("course-text-classifier")
    rows = spec.ledger(ctx(2, seq=256))
    assert total(rows, "forward_flops") == counted_flops(lambda: lin(emb(ids).mean(1))) == 2 * 2 * 16
    ref = saved_activation_bytes(fwd, [emb.weight, lin.weight, lin.bias])
    # indices 2*256*8 = 4,096; the pooled vector 2*16*4 = 128 (the linear's input); logits 2*4 and targets 2*4
    assert total(rows, "activation_bytes") == 4096 + 128 + 8 + 8 == ref
    assert spec.modality == "text" and model_limits(spec).max_positions == 0  # pools globally: any length


def test_wide_deep_flops_by_hand():
    spec = load_model("course-wide-deep")
    rows = spec.ledger(ctx(4))
    # only the MLP multiplies: 2*4*(272*1024 + 1024*512 + 512*256 + 256*1)
    assert total(rows, "forward_flops") == 2 * 4 * (272 * 1024 + 1024 * 512 + 512 * 256 + 256)
    assert spec.modality == "vector"


# ---- sizes: refused or honoured ------------------------------------------------------------------------------

def test_fixed_head_refuses_another_image_size_and_global_pool_honours_it():
    spec = load_model("course-cnn-28")
    assert model_limits(spec).image_hw == (28, 28)
    with pytest.raises(InputError, match=r"^image_size: must be 28 for course-cnn-28"):
        check_workload(spec, Workload(image_size=64))
    gap = sequential_from_dict({"family": "sequential", "name": "gap", "input": {"shape": [32, 32, 3]},
                                "layers": [{"type": "Conv2D", "filters": 8, "kernel_size": [3, 3], "activation": "relu"},
                                           {"type": "GlobalAveragePooling2D"}, {"type": "Dense", "units": 10}]})
    assert model_limits(gap).image_hw is None
    # conv FLOPs follow the workload's size: 2*b*(s-2)^2*8*3*9
    for s in (32, 64):
        assert total(gap.ledger(ctx(1, image=s)), "forward_flops") == 2 * (s - 2) ** 2 * 8 * 27 + 2 * 8 * 10


def test_round_trip_and_keras_names():
    spec = load_model("course-cnn-224")
    assert sequential_from_dict(spec.to_dict()) == spec
    assert load_model(load_model("course-wide-deep").to_dict()) == load_model("course-wide-deep")


@pytest.mark.parametrize("mutate, field", [
    (lambda c: c["layers"].insert(0, {"type": "dense", "units": 4}), "model.layers[0].type"),
    (lambda c: c["layers"][0].update(kernel=40), "model.layers[0].kernel"),
    (lambda c: c["layers"][0].update(padding="full"), "model.layers[0].padding"),
    (lambda c: c["layers"][3].update(activation="softmax"), "model.layers[3].activation"),
    (lambda c: c["layers"].pop(2), "model.layers[2].type"),
    (lambda c: c["layers"][1].update(type="Pool3D"), "model.layers[1].type"),
    (lambda c: c.update(input={"shape": [28, 28]}), "model.input.shape"),
])
def test_bad_specs_name_the_field(mutate, field):
    cfg = {**get_preset("course-cnn-28").config}
    cfg["layers"] = [dict(L) for L in cfg["layers"]]
    mutate(cfg)
    with pytest.raises(InputError) as e:
        sequential_from_dict(cfg)
    assert e.value.field == field
