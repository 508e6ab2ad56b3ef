"""The CLI/JSON contract and the hardware catalog, as a user meets them."""

import json
from pathlib import Path

import pytest

from costmodel.catalog import list_hardware, load_hardware
from costmodel.cli import main
from costmodel.errors import InputError
from support import run_cli

ROOT = Path(__file__).resolve().parent.parent





def test_estimate_json_has_the_contract_keys():
    proc = run_cli("estimate", "--model", "gpt2", "--hardware", "a100-sxm-80gb", "--task", "train", "--batch", "8",
                   "--seq", "1024", "--precision", "fp32", "--optimizer", "adamw", "--json")
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert d["params"]["total"] == 124439808  # GPT-2 small, HF model card (tied lm_head)
    assert d["params"]["trainable"] == 124439808
    for key in ("forward", "backward"):
        assert d["flops"][key] > 0
    for key in ("weights", "gradients", "optimizer", "activations", "kv_cache", "peak"):
        assert key in d["memory_bytes"]
    assert d["memory_bytes"]["weights"] == 4 * 124439808  # fp32 weights
    assert d["memory_bytes"]["optimizer"] == 8 * 124439808  # AdamW: two fp32 states
    # backward of every linear is 2x its forward (dX and dW), so backward/forward is 2 up to the
    # embeddings (no FLOPs) and the attention core (also 2x)
    assert d["flops"]["backward"] == pytest.approx(2 * d["flops"]["forward"])


def test_infer_json_kv_cache():
    proc = run_cli("estimate", "--model", "llama-2-7b", "--task", "infer", "--batch", "8", "--prompt", "2048",
                   "--generate", "0", "--precision", "bf16", "--json")
    d = json.loads(proc.stdout)
    assert d["memory_bytes"]["kv_cache"] == 2 * 32 * 8 * 2048 * 4096 * 2  # K,V x layers x b x s x h x bf16
    assert d["flops"]["backward"] == 0


@pytest.mark.parametrize("args,field", [
    (["--batch", "0"], "batch"),
    (["--batch", "two"], "batch"),
    (["--precision", "fp64"], "precision"),
    (["--optimizer", "lion"], "optimizer"),
    (["--hardware", "h900"], "hardware"),
    (["--lora-rank", "8", "--lora-targets", "nope"], "lora_targets"),
    (["--task", "infer", "--prompt", "-3"], "prompt"),
    (["--precision", "int4"], "precision"),  # 4-bit training needs LoRA
])
def test_bad_input_exits_2_with_one_line_naming_the_field(args, field):
    proc = run_cli("estimate", "--model", "gpt2" if "lora" not in args[0] else "llama-2-7b", *args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {field}:"), proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_model_and_bad_config_file(tmp_path, capsys):
    assert main(["estimate", "--model", "no-such-model"]) == 2
    bad = tmp_path / "config.json"
    bad.write_text('{"model_type": "llama", "hidden_size": -5}')
    assert main(["estimate", "--model", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "config.hidden_size" in err


def test_hf_config_file_on_disk(tmp_path):
    # a real config.json as a user has it (Llama-3.2-1B's fields): exact published count 1,235,814,400
    cfg = json.loads((ROOT / "costmodel/assets/presets/llama-3.2-1b.json").read_text())["config"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    proc = run_cli("estimate", "--model", str(path), "--json")
    assert json.loads(proc.stdout)["params"]["total"] == 1235814400


def test_catalog_records_have_sources_and_required_devices():
    ids = {h.id for h in list_hardware()}
    for required in ("a100-sxm-40gb", "a100-sxm-80gb", "h100-sxm-80gb", "h100-pcie-80gb", "h200-sxm-141gb",
                     "b200-sxm-192gb", "l4-24gb", "l40s-48gb", "t4-16gb", "v100-sxm-32gb", "a10g-24gb",
                     "rtx-4090-24gb", "rtx-3090-24gb", "mi300x-192gb", "tpu-v4", "tpu-v5e", "tpu-v5p", "cpu-generic"):
        assert required in ids
    for h in list_hardware():
        assert h.source.strip()
        assert h.peak_flops("fp32") > 0


def test_datasheet_numbers():
    # NVIDIA H100 datasheet: 989.4 TFLOP/s dense bf16 (1,979 with sparsity), 3.35 TB/s HBM3
    h100 = load_hardware("h100-sxm-80gb")
    assert h100.peak_flops("bf16") == 989.4e12
    assert h100.memory_bandwidth_bytes_per_s == 3.35e12
    # NVIDIA A100 datasheet: 312 TFLOP/s dense bf16; no fp8, so fp8 falls back to bf16
    a100 = load_hardware("a100-sxm-80gb")
    assert a100.peak_flops("bf16") == 312e12
    assert a100.peak_flops("fp8") == 312e12


def test_user_hardware_file(tmp_path):
    spec = json.loads((ROOT / "costmodel/assets/hardware/l4-24gb.json").read_text())
    spec.update(id="my-gpu", memory_bandwidth_bytes_per_s=-1)
    path = tmp_path / "my.json"
    path.write_text(json.dumps(spec))
    with pytest.raises(InputError) as err:
        load_hardware(str(path))
    assert err.value.field == "hardware.memory_bandwidth_bytes_per_s"
    spec["memory_bandwidth_bytes_per_s"] = 1e12
    path.write_text(json.dumps(spec))
    assert load_hardware(str(path)).id == "my-gpu"


def test_unsupported_model_type_names_the_field():
    from costmodel.models import load_model

    with pytest.raises(InputError) as err:
        load_model({"model_type": "falcon_mamba", "hidden_size": 512})
    assert err.value.field == "config.model_type"
    # the message lists what is supported, including the non-decoder families
    for mt in ("t5", "vit", "resnet", "llama"):
        assert mt in str(err.value)


def test_t5_vit_resnet_configs_load():
    from costmodel.models import load_model

    # Defaults follow transformers' T5Config/ViTConfig/ResNetConfig.
    assert load_model({"model_type": "t5", "d_model": 512}).family
    assert load_model({"model_type": "vit"}).family
    assert load_model({"model_type": "resnet"}).family
