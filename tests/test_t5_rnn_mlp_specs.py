"""T5 (encoder-decoder), LSTM/GRU language models and MLPs against independent references:
published parameter counts, the real implementations (HF T5ForConditionalGeneration on the meta
device, torch nn.LSTM / nn.GRU / nn.Sequential), torch's FlopCounterMode, the tensors autograd
really saves (saved_tensors_hooks on tiny CPU models, fp32, train mode), the caches HF generate
and nn.LSTM really keep, and the H100 measurement in benchmarks/results/h100_reference_sample.json."""

import json
from pathlib import Path

import pytest
import torch
import transformers
from torch import nn

from costmodel import estimate
from costmodel.errors import InputError
from costmodel.models import get_preset, load_model
from costmodel.specs import encdec, mlp as mlp_mod
from costmodel.specs.custom import spec_from_costmodel_json
from costmodel.specs.encdec import T5Spec, t5_from_hf
from costmodel.specs.mlp import MLPSpec, build_torch_mlp
from costmodel.specs.rnn import RNNSpec, build_torch_rnn, cudnn_reserve_bytes
from reference import counted_flops, param_count, saved_activation_bytes
import re
from support import make_ctx

pytestmark = pytest.mark.filterwarnings("ignore:TF32 acceleration on top of oneDNN")

# the measured H100 steps (a copy of the reference file, committed with how they were measured)
H100_SAMPLE = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "h100_reference_sample.json"


def ctx(b=2, s=8, training=True, eager=True, nbytes=4, dropout=False, kv_len=None):
    return make_ctx(b, s, kv_len=kv_len, training=training, stream_bytes=nbytes, compute_bytes=nbytes,
                    kv_bytes=nbytes, eager_attention=eager, dropout=dropout)


def total(rows, attr):
    return sum(getattr(r, attr) * r.count for r in rows)


def hf_t5(cfg: dict, meta=True, attn="eager"):
    hf_cfg = {k: v for k, v in cfg.items() if k not in ("model_type", "architectures", "target_len_ratio")}
    config = transformers.T5Config(**{"decoder_start_token_id": 0, **hf_cfg})
    config._attn_implementation = attn
    if meta:
        with torch.device("meta"):
            return transformers.T5ForConditionalGeneration(config)
    return transformers.T5ForConditionalGeneration(config)


# ------------------------------------------------------------------------------------------- T5
@pytest.mark.parametrize("preset_id", ["t5-small", "t5-base"])
def test_t5_preset_params_exact(preset_id):
    # references: the published count in the preset (HF model cards google-t5/t5-small "60M",
    # t5-base "220M"; exact 60,506,624 / 222,903,552) and sum(p.numel()) of transformers'
    # T5ForConditionalGeneration built from the same config.json on the meta device
    pre = get_preset(preset_id)
    ours = total(load_model(preset_id).ledger(ctx()), "params")
    assert ours == pre.published_params
    assert ours == param_count(hf_t5(pre.config))


def test_t5_v11_untied_lm_head_params():
    # google/t5-v1_1-base config.json: gated-gelu, d_ff 2048, tie_word_embeddings false -> the
    # checkpoint has its own lm_head: 247,577,856 params. transformers 5.x builds every T5 config
    # tied (T5Config forces tie_word_embeddings=True; from_pretrained unties when the checkpoint holds
    # both weights), so the reference unties lm_head the way that load does.
    cfg = dict(model_type="t5", d_model=768, d_kv=64, d_ff=2048, num_heads=12, num_layers=12, vocab_size=32128,
               feed_forward_proj="gated-gelu", tie_word_embeddings=False)
    model = hf_t5(cfg)
    model.lm_head.weight = nn.Parameter(torch.empty(32128, 768, device="meta"))
    ours = total(t5_from_hf(cfg).ledger(ctx()), "params")
    assert ours == param_count(model) == 247_577_856
    # relative position bias only in the first layer of each stack: 2 x (32 buckets x 12 heads)
    rows = {r.name: r for r in t5_from_hf(cfg).ledger(ctx())}
    assert rows["encoder.relative_attention_bias"].params == rows["decoder.relative_attention_bias"].params == 32 * 12


@pytest.mark.parametrize("ratio", [1.0, 0.5])
def test_t5_forward_flops_match_flop_counter(ratio):
    # reference: FlopCounterMode on t5-small built on the meta device (eager attention, 2 FLOPs per
    # MAC), encoder 64 tokens, decoder 64 * target_len_ratio tokens
    cfg = dict(get_preset("t5-small").config, target_len_ratio=ratio)
    model = hf_t5(cfg)
    b, s = 2, 64
    s_dec = round(ratio * s)
    ids = torch.zeros(b, s, dtype=torch.long, device="meta")
    dec = torch.zeros(b, s_dec, dtype=torch.long, device="meta")
    ref = counted_flops(lambda: model(input_ids=ids, decoder_input_ids=dec))
    ours = total(t5_from_hf(cfg).ledger(ctx(b, s)), "forward_flops")
    assert ours == pytest.approx(ref, rel=0.01)


def test_t5_flops_hand_arithmetic():
    # t5-small, b=1, 128 source and 128 target tokens. Encoder layer: q,k,v,o 4*2*128*512*512 +
    # relu FFN 2*2*128*512*2048 + attention 2*2*8*128*128*64 = 838,860,800 FLOPs; a decoder layer
    # adds cross-attention (q,o on the 128 targets, k,v on the 128 sources: 4*2*128*512*512, and its
    # attention 2*2*8*128*128*64): 1,140,850,688; lm_head 2*128*512*32128 = 4,211,081,216.
    rows = load_model("t5-small").ledger(ctx(1, 128))
    enc = sum(r.forward_flops for r in rows if r.block == "encoder.block")
    dec = sum(r.forward_flops for r in rows if r.block == "decoder.block")
    assert enc == 4 * 2 * 128 * 512 * 512 + 2 * 2 * 128 * 512 * 2048 + 2 * 2 * 8 * 128 * 128 * 64 == 838_860_800
    assert dec == enc + 4 * 2 * 128 * 512 * 512 + 2 * 2 * 8 * 128 * 128 * 64 == 1_140_850_688
    assert total(rows, "forward_flops") == 6 * enc + 6 * dec + 4_211_081_216


T5_TINY = dict(model_type="t5", vocab_size=300, d_model=64, d_kv=16, d_ff=128, num_heads=4, num_layers=2,
               num_decoder_layers=3, dropout_rate=0.0)


def fwd_bwd(rows):
    return sum((r.forward_flops + r.input_grad_flops + r.weight_grad_flops) * r.count for r in rows)


def test_t5_forward_backward_flops_match_flop_counter():
    # reference: FlopCounterMode over forward + loss.backward() of a tiny gated-gelu T5 on CPU (eager)
    cfg = dict(T5_TINY, feed_forward_proj="gated-gelu", target_len_ratio=0.5)
    torch.manual_seed(0)
    model = hf_t5(cfg, meta=False).train()
    ids, labels = torch.randint(2, 300, (2, 12)), torch.randint(2, 300, (2, 6))
    ref = counted_flops(lambda: model(input_ids=ids, labels=labels).loss.backward())
    assert fwd_bwd(t5_from_hf(cfg).ledger(ctx(2, 12))) == pytest.approx(ref, rel=0.01)


@pytest.mark.parametrize("ff,tie", [("relu", True), ("gated-gelu", False), ("gelu", True), ("gated-silu", True)])
def test_t5_saved_activations_match_autograd(ff, tie):
    # reference: distinct storages autograd saves (saved_tensors_hooks) in a real CPU fp32 training
    # forward with the loss, eager attention, 12 source and 6 target tokens (target_len_ratio 0.5)
    cfg = dict(T5_TINY, feed_forward_proj=ff, tie_word_embeddings=tie, target_len_ratio=0.5)
    torch.manual_seed(0)
    model = hf_t5(cfg, meta=False).train()
    ids, labels = torch.randint(2, 300, (2, 12)), torch.randint(2, 300, (2, 6))
    ref = saved_activation_bytes(lambda: model(input_ids=ids, labels=labels), model.parameters())
    ours = total(t5_from_hf(cfg).ledger(ctx(2, 12)), "activation_bytes")
    assert ours == pytest.approx(ref, rel=0.01)


def test_t5_saved_activations_bf16():
    # the model cast to bf16: T5LayerNorm then saves an fp32 copy of x, x itself and the bf16
    # normalised tensor (Llama's RMSNorm saves one fewer); reference as above
    cfg = dict(T5_TINY, feed_forward_proj="gated-gelu")
    torch.manual_seed(0)
    model = hf_t5(cfg, meta=False).to(torch.bfloat16).train()
    ids, labels = torch.randint(2, 300, (2, 12)), torch.randint(2, 300, (2, 12))
    ref = saved_activation_bytes(lambda: model(input_ids=ids, labels=labels), model.parameters())
    ours = total(t5_from_hf(cfg).ledger(ctx(2, 12, nbytes=2)), "activation_bytes")
    assert ours == pytest.approx(ref, rel=0.01)


def test_t5_saved_activations_fused_attention():
    # SDPA with T5's position bias as an additive mask. Modelled: the CUDA memory-efficient kernel
    # (q, k, v, output, fp32 logsumexp, the bias mask); the CPU kernel that runs here keeps nearly the
    # same tensors (within 1% on this model)
    cfg = dict(T5_TINY, target_len_ratio=0.5)
    torch.manual_seed(0)
    model = hf_t5(cfg, meta=False, attn="sdpa").train()
    ids, labels = torch.randint(2, 300, (2, 12)), torch.randint(2, 300, (2, 6))
    ref = saved_activation_bytes(lambda: model(input_ids=ids, labels=labels), model.parameters())
    ours = total(t5_from_hf(cfg).ledger(ctx(2, 12, eager=False)), "activation_bytes")
    assert ours == pytest.approx(ref, rel=0.05)


def test_t5_dropout_masks(monkeypatch):
    # with dropout_rate 0.1 every nn.Dropout keeps a mask: a bool (1 byte) on CUDA, a float32 noise
    # tensor on CPU. Set the mask width to CPU's 4 bytes and the ledger matches autograd exactly.
    cfg = dict(T5_TINY, dropout_rate=0.1, target_len_ratio=0.5)
    torch.manual_seed(0)
    model = hf_t5(cfg, meta=False).train()
    ids, labels = torch.randint(2, 300, (2, 12)), torch.randint(2, 300, (2, 6))
    ref = saved_activation_bytes(lambda: model(input_ids=ids, labels=labels), model.parameters())
    monkeypatch.setattr(encdec, "DROPOUT_MASK_BYTES", 4.0)
    ours = total(t5_from_hf(cfg).ledger(ctx(2, 12, dropout=True)), "activation_bytes")
    assert ours == pytest.approx(ref, rel=0.01)


def test_t5_generation_cache_matches_hf_generate():
    # reference: the EncoderDecoderCache HF generate really holds after 5 new tokens on an 11-token
    # prompt (batch 3, fp32): self-attention K/V of 5 positions + cross-attention K/V of the 11 prompt
    # positions, per decoder layer. Ours: prefill caches the cross K/V (2*b*prompt*heads*d_kv*4 bytes
    # per decoder layer), decode adds the self-attention positions.
    cfg = dict(model_type="t5", vocab_size=100, d_model=32, d_kv=8, d_ff=64, num_heads=4, num_layers=2,
               eos_token_id=1, pad_token_id=0)
    torch.manual_seed(0)
    model = hf_t5(cfg, meta=False).eval()
    out = model.generate(input_ids=torch.randint(2, 100, (3, 11)), max_new_tokens=5, min_new_tokens=5,
                         do_sample=False, return_dict_in_generate=True)
    cache = out.past_key_values
    ref = sum(t.numel() * t.element_size() for c in (cache.self_attention_cache, cache.cross_attention_cache)
              for layer in c.layers for t in (layer.keys, layer.values))
    spec = t5_from_hf(cfg)
    est = estimate(spec, task="infer", batch=3, prompt=11, generate=5, precision="fp32")
    assert est.memory_bytes.kv_cache == ref == 2 * 2 * 3 * 32 * (11 + 5) * 4
    prefill = spec.ledger(ctx(3, 11, training=False))
    assert total(prefill, "kv_cache_bytes") == 2 * 2 * 3 * 11 * 32 * 4  # cross K/V only
    # prefill runs the encoder and the cross K/V projections, no decoder token
    assert sum(r.forward_flops for r in prefill if r.name.startswith("decoder.block.*.self_attn")) == 0


def test_t5_decode_step_flops():
    # one decode step of t5-small, b=1, 100 cached positions (prompt + generated): per decoder layer
    # self q,k,v,o 4*2*512*512 + cross q,o 2*2*512*512 (cross k,v are cached) + FFN 2*2*512*2048 +
    # attention over the 100 positions 2*2*8*100*64 = 7,544,832 FLOPs; lm_head 2*512*32128
    rows = load_model("t5-small").ledger(ctx(1, 1, training=False, kv_len=100))
    step = 4 * 2 * 512 * 512 + 2 * 2 * 512 * 512 + 2 * 2 * 512 * 2048 + 2 * 2 * 8 * 100 * 64
    assert step == 7_544_832
    assert total(rows, "forward_flops") == 6 * step + 2 * 512 * 32128
    assert sum(r.forward_flops * r.count for r in rows if r.name.startswith("encoder")) == 0


def test_t5_bad_config_names_field():
    with pytest.raises(InputError) as err:
        t5_from_hf(dict(model_type="t5", feed_forward_proj="gated-swish"))
    assert err.value.field == "config.feed_forward_proj"
    with pytest.raises(InputError) as err:
        t5_from_hf(dict(model_type="t5", d_model=-4))
    assert err.value.field == "config.d_model"
    with pytest.raises(InputError) as err:
        T5Spec(name="x", target_len_ratio=0)
    assert err.value.field == "model.target_len_ratio"


def test_t5_to_dict_round_trips():
    spec = load_model("t5-base")
    assert load_model(spec.to_dict()) == spec
    v11 = t5_from_hf(dict(model_type="t5", feed_forward_proj="gated-gelu", tie_word_embeddings=False,
                          target_len_ratio=0.25))
    assert load_model(v11.to_dict()) == v11


# ------------------------------------------------------------------------------------ LSTM / GRU
class HandLM(nn.Module):
    """Hand-written reference of the sample's model: Embedding + nn.LSTM/GRU + Linear."""

    def __init__(self, cell, vocab, emb, hidden, layers):
        super().__init__()
        self.emb = nn.Embedding(vocab, emb)
        self.rnn = (nn.LSTM if cell == "lstm" else nn.GRU)(emb, hidden, layers, batch_first=True)
        self.out = nn.Linear(hidden, vocab)


@pytest.mark.parametrize("preset_id,cell", [("lstm-2x1024", "lstm"), ("gru-2x1024", "gru")])
def test_rnn_preset_params_exact(preset_id, cell):
    # references: sum(p.numel()) of Embedding(10000,1024) + nn.LSTM/GRU(1024,1024,2) + Linear(1024,10000)
    # written by hand here (meta device), and the preset's published count: 37,283,600 is params_total
    # of the h100_sample.json LSTM entry; the GRU's is the hand count 33,085,200
    pre = get_preset(preset_id)
    spec = load_model(preset_id)
    ours = total(spec.ledger(ctx()), "params")
    with torch.device("meta"):
        hand = HandLM(cell, 10000, 1024, 1024, 2)
        built = build_torch_rnn(spec)
    assert ours == pre.published_params == param_count(hand) == param_count(built)
    assert [p.shape for p in hand.parameters()] == [p.shape for p in built.parameters()]
    if cell == "lstm":
        sample = {r["name"]: r for r in json.loads(H100_SAMPLE.read_text())["results"]}
        assert ours == sample["lstm_2x1024_bs64_seq256_fp32"]["params_total"]


def test_rnn_tied_and_single_layer_params():
    # tied head: the Linear's weight is the embedding's (counted once); bias still its own
    spec = RNNSpec(name="t", cell="gru", vocab_size=500, embed_dim=64, hidden=64, layers=1, tie_embeddings=True)
    with torch.device("meta"):
        model = build_torch_rnn(spec)
    assert total(spec.ledger(ctx()), "params") == param_count(model) == 500 * 64 + 3 * 64 * 128 + 6 * 64 + 500


def test_lstm_flops_flop_counter_misses():
    # FlopCounterMode counts nothing for the fused LSTM kernels: on CPU torch runs oneDNN's
    # mkldnn_rnn_layer (on CUDA _cudnn_rnn), so only the head's matmul is counted. The gates are,
    # per token, 2 FLOPs x 4 gates x h x (in + h) for each of the 2 layers: here
    # 2*4*48*(32+48) + 2*4*48*(48+48) = 67,584 FLOPs per token, 2,027,520 for 30 tokens.
    spec = RNNSpec(name="l", cell="lstm", vocab_size=100, embed_dim=32, hidden=48, layers=2, kernel="onednn")
    model = build_torch_rnn(spec)
    ids = torch.randint(0, 100, (3, 10))
    counted = counted_flops(lambda: model(ids))
    rows = {r.name: r for r in spec.ledger(ctx(3, 10))}
    assert counted == rows["head"].forward_flops == 2 * 30 * 48 * 100
    gates = sum(r.forward_flops * r.count for r in rows.values() if r.kind == "lstm")
    assert gates == 30 * (2 * 4 * 48 * (32 + 48) + 2 * 4 * 48 * (48 + 48)) == 2_027_520
    # with oneDNN off torch decomposes the cells into addmm per step and FlopCounterMode sees them
    with torch.backends.mkldnn.flags(enabled=False):
        assert counted_flops(lambda: model(ids)) == pytest.approx(counted + gates, rel=0.01)


def test_gru_flops_match_flop_counter_on_cpu():
    # the CPU GRU is torch's decomposed cell (addmm per step): FlopCounterMode counts its
    # 2*3*h*(in+h) per token and layer, which ours must match (on CUDA, cuDNN hides them again)
    spec = RNNSpec(name="g", cell="gru", vocab_size=120, embed_dim=40, hidden=56, layers=3, kernel="native")
    model = build_torch_rnn(spec)
    ids = torch.randint(0, 120, (2, 9))
    assert total(spec.ledger(ctx(2, 9)), "forward_flops") == pytest.approx(counted_flops(lambda: model(ids)),
                                                                            rel=0.01)


def test_gru_forward_backward_flops_match_flop_counter_on_cpu():
    # forward + backward of the decomposed CPU GRU; ours counts backward = 2x forward, which
    # overcounts by the dh_0 matmul autograd skips (2*3*h*h per sample and layer: 0.5% here)
    spec = RNNSpec(name="g", cell="gru", vocab_size=120, embed_dim=40, hidden=56, layers=3, kernel="native")
    model = build_torch_rnn(spec)
    ids = torch.randint(0, 120, (2, 32))
    ref = counted_flops(lambda: nn.functional.cross_entropy(model(ids).reshape(-1, 120), ids.reshape(-1)).backward())
    assert fwd_bwd(spec.ledger(ctx(2, 32))) == pytest.approx(ref, rel=0.01)


def test_lstm_h100_sample_flops_and_peak():
    # benchmarks/results/h100_reference_sample.json, lstm_2x1024_bs64_seq256_fp32 (AdamW, fp32):
    # - FlopCounterMode counted only the head on the H100 (cuDNN LSTM invisible to it):
    #   infer 335,544,320,000 = 2*64*256*1024*10000; fwd+bwd 1,006,632,960,000 = 3x that.
    # - peak_steady_step_bytes 3,357,335,552: weights + AdamW states + saved tensors (cuDNN reserve,
    #   see cudnn_reserve_bytes) + the two fp32 T x V loss gradients at the start of backward.
    est = estimate("lstm-2x1024", task="train", batch=64, seq=256, precision="fp32", optimizer="adamw")
    rows = {r.name: r for r in load_model("lstm-2x1024").ledger(ctx(64, 256))}
    assert rows["head"].forward_flops == 335_544_320_000
    assert 3 * rows["head"].forward_flops == 1_006_632_960_000
    # what FlopCounterMode missed: 2 layers x 2*4*1024*2048 per token x 16384 tokens
    assert est.flops.forward - rows["head"].forward_flops == 2 * 2 * 4 * 1024 * 2048 * 16384
    assert est.memory_bytes.peak == pytest.approx(3_357_335_552, rel=0.01)
    sample = {r["name"]: r for r in json.loads(H100_SAMPLE.read_text())["results"]}
    assert est.memory_bytes.peak == pytest.approx(sample["lstm_2x1024_bs64_seq256_fp32"]
                                                      ["peak_steady_step_bytes"], rel=0.01)


def test_cudnn_reserve_matches_pytorch_issue_2895():
    # pytorch/pytorch#2895 printed cudnnGetRNNTrainingReserveSize for a 4-layer, hidden-320 network
    # (its printed parameter counts 3,038,090 LSTM / 2,279,370 GRU fit input 123, 10 outputs):
    # LSTM 736,000,000 and GRU 864,000,000 bytes = 23 and 27 x 32,000,000 (25,000 tokens x 320 x 4 B):
    # (6*4 - 1) and (7*4 - 1) hidden-sized fp32 vectors per token
    assert cudnn_reserve_bytes("lstm", 4, 25_000, 320) == 736_000_000
    assert cudnn_reserve_bytes("gru", 4, 25_000, 320) == 864_000_000
    # the shapes: the issue's printed counts are nn.LSTM/GRU(123, 320, 4) + Linear(320, 10)
    with torch.device("meta"):
        assert param_count(nn.LSTM(123, 320, 4)) + param_count(nn.Linear(320, 10)) == 3_038_090
        assert param_count(nn.GRU(123, 320, 4)) + param_count(nn.Linear(320, 10)) == 2_279_370


RNN_CASES = [("lstm", "onednn", True), ("lstm", "native", False), ("gru", "native", True)]


@pytest.mark.parametrize("cell,kernel,onednn", RNN_CASES)
@pytest.mark.parametrize("shape", [(100, 32, 48, 2, 3, 10), (300, 128, 128, 2, 8, 33), (50, 40, 96, 1, 2, 7)])
def test_rnn_saved_activations_match_autograd(cell, kernel, onednn, shape):
    # reference: saved_tensors_hooks over a real CPU fp32 training forward with cross-entropy.
    # kernel "onednn": torch's mkldnn_rnn_layer (CPU LSTM), "native": the decomposed cells
    # (CPU GRU, or the LSTM with oneDNN off). cuDNN (the default, GPU) is checked above.
    V, E, H, L, b, T = shape
    spec = RNNSpec(name="r", cell=cell, vocab_size=V, embed_dim=E, hidden=H, layers=L, kernel=kernel)
    torch.manual_seed(0)
    model = build_torch_rnn(spec).train()
    x, y = torch.randint(0, V, (b, T)), torch.randint(0, V, (b, T))
    with torch.backends.mkldnn.flags(enabled=onednn):
        ref = saved_activation_bytes(lambda: nn.functional.cross_entropy(model(x).reshape(-1, V), y.reshape(-1)),
                                     model.parameters())
    ours = total(spec.ledger(ctx(b, T)), "activation_bytes")
    assert ours == pytest.approx(ref, rel=0.05)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_rnn_recurrent_state_matches_torch(cell):
    # reference: the (h_n, c_n) nn.LSTM / h_n nn.GRU return: the state a decode step carries
    spec = RNNSpec(name="s", cell=cell, vocab_size=50, embed_dim=16, hidden=24, layers=3)
    rnn = (nn.LSTM if cell == "lstm" else nn.GRU)(16, 24, 3, batch_first=True)
    _, state = rnn(torch.randn(5, 7, 16))
    state = state if isinstance(state, tuple) else (state,)
    ref = sum(t.numel() * t.element_size() for t in state)
    assert total(spec.ledger(ctx(5, 1, training=False, kv_len=8)), "kv_cache_bytes") == ref


# -------------------------------------------------------------------------------------------- MLP
def test_mlp_preset_params_exact():
    # Keras examples mnist_mlp.py model.summary(): "Total params: 669,706"; and sum(p.numel()) of
    # nn.Sequential(Linear(784,512), ReLU, Linear(512,512), ReLU, Linear(512,10)) written by hand
    spec = load_model("mlp-mnist")
    hand = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))
    ours = total(spec.ledger(ctx()), "params")
    assert ours == get_preset("mlp-mnist").published_params == 669_706 == param_count(hand)
    assert param_count(build_torch_mlp(spec)) == ours


MLP_CASES = [dict(activation="relu"), dict(activation="gelu", norm="layernorm"),
             dict(activation="tanh", norm="batchnorm"), dict(activation="sigmoid", dropout=0.3),
             dict(activation="gelu", norm="batchnorm", dropout=0.2, bias=False)]


@pytest.mark.parametrize("kw", MLP_CASES)
def test_mlp_flops_params_saved_match_torch(kw, monkeypatch):
    # references: sum(p.numel()), FlopCounterMode and saved_tensors_hooks of build_torch_mlp's
    # nn.Sequential on CPU (fp32, train mode, cross-entropy). Parameters and BatchNorm's running
    # statistics (buffers) are not activations. CPU dropout keeps a float32 noise tensor, so the
    # mask width is set to 4 bytes for this comparison (CUDA keeps 1-byte masks).
    spec = MLPSpec(name="m", input_dim=50, hidden=(64, 32), output_dim=7, **kw)
    torch.manual_seed(0)
    model = build_torch_mlp(spec).train()
    x, y = torch.randn(16, 50), torch.randint(0, 7, (16,))
    monkeypatch.setattr(mlp_mod, "DROPOUT_MASK_BYTES", 4.0)
    rows = spec.ledger(ctx(16, 1, dropout=True))
    assert total(rows, "params") == param_count(model)
    assert total(rows, "forward_flops") == pytest.approx(counted_flops(lambda: model(x)), rel=0.01)
    fb = counted_flops(lambda: nn.functional.cross_entropy(model(x), y).backward())
    assert fwd_bwd(rows) == pytest.approx(fb, rel=0.01)
    ref = saved_activation_bytes(lambda: nn.functional.cross_entropy(model(x), y),
                                 [*model.parameters(), *model.buffers()])
    assert total(rows, "activation_bytes") == pytest.approx(ref, rel=0.05)


# ---------------------------------------------------------------------------- costmodel spec JSON
def test_custom_json_round_trips():
    for preset_id in ("lstm-2x1024", "gru-2x1024", "mlp-mnist"):
        spec = load_model(preset_id)
        assert spec_from_costmodel_json(spec.to_dict()) == spec
    cnn = spec_from_costmodel_json(get_preset("simple-cnn-28").config)
    assert spec_from_costmodel_json(cnn.to_dict()) == cnn


BAD_JSON = [
    ({"family": "lstm", "vocab_size": 100, "layers": 2}, "model.hidden"),
    ({"family": "lstm", "vocab_size": 100, "hidden": 64, "layers": 0}, "model.layers"),
    ({"family": "gru", "vocab_size": 100, "hidden": "wide"}, "model.hidden"),
    ({"family": "gru", "vocab_size": 100, "hidden": 64, "kernel": "onednn"}, "model.kernel"),
    ({"family": "lstm", "vocab_size": 100, "hidden": 64, "embed_dim": 32, "tie_embeddings": True},
     "model.tie_embeddings"),
    ({"family": "lstm", "vocab_size": 100, "hidden": 64, "dropout": 1.5}, "model.dropout"),
    ({"family": "lstm", "vocab_size": 100, "hidden": 64, "bias": "yes"}, "model.bias"),
    ({"family": "lstm", "vocab_size": 100, "hidden": 64, "cells": 2}, "model.cells"),
    ({"family": "mlp", "input_dim": 784, "hidden": [512, -1], "output_dim": 10}, "model.hidden[1]"),
    ({"family": "mlp", "input_dim": 784, "hidden": 512, "output_dim": 10}, "model.hidden"),
    ({"family": "mlp", "input_dim": 784, "hidden": [512], "output_dim": 10, "activation": "swish"},
     "model.activation"),
    ({"family": "mlp", "hidden": [512], "output_dim": 10}, "model.input_dim"),
    ({"family": "mlp", "input_dim": 784, "hidden": [512], "output_dim": 10, "norm": "groupnorm"}, "model.norm"),
    ({"family": "transformer"}, "model.family"),
    ({"family": "cnn", "input": {"channels": 1, "height": 28, "width": 28},
      "layers": [{"type": "conv2d", "out_channels": 8}]}, "model.layers[0].kernel"),
]


@pytest.mark.parametrize("data,field", BAD_JSON)
def test_custom_json_errors_name_the_field(data, field):
    with pytest.raises(InputError) as err:
        load_model(data)
    assert err.value.field == field
    # the message says what is allowed: a range, a list of choices or a required shape
    assert re.search(r"must|one of|required|expected|from \d|>=|positive|not supported|unknown|use |needs ", err.value.message), \
        err.value.message
