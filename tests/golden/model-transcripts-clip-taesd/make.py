#!/usr/bin/python3
"""CLIP text encoder and AutoencoderTiny config variants, made without torch.

A numpy transcription of
* transformers 4.36's CLIPTextModel / CLIPTextModelWithProjection forward (models/clip/modeling_clip.py:
  CLIPTextEmbeddings, CLIPAttention (eager: q * head_dim^-0.5, + causal mask, + the 4-d padding mask, softmax),
  CLIPMLP with ACT2FN[hidden_act], pre-norm CLIPEncoderLayer, final_layer_norm, the pooled output at argmax(input_ids)
  when eos_token_id == 2 (configs written before transformers 4.31) and at the first position of eos_token_id
  otherwise, text_projection without bias), and
* diffusers 0.25.1's AutoencoderTiny encode / decode / scale_latents / unscale_latents / forward
  (models/autoencoders/autoencoder_tiny.py, vae.py EncoderTiny / DecoderTiny, unet_2d_blocks.py
  AutoencoderTinyBlock, activations.py get_activation).

The networks run in float64 on float32 weights and inputs. They are validated first on the golden tiny text
encoders (tiny-sd/text_encoder, tiny-sdxl/text_encoder and text_encoder_2: README sections C and F) and the golden
tiny-taesd (README section I); the script prints, and fails on, the errors.

Then it builds the variants of CLIP_VARIANTS and TAESD_VARIANTS below (seeded random weights, a model folder each:
transformers layout config.json + model.safetensors for CLIP, diffusers layout config.json +
diffusion_pytorch_model.safetensors for AutoencoderTiny) and writes their inputs and outputs to cases.safetensors,
described by cases.json.

Run from anywhere: /usr/bin/python3 make.py (numpy only; deterministic).
"""
import json
import math
import os
import shutil
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "..")
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(GOLDEN, "transcripts-common"))
from torchlike import (F32, SequentialParams as Params, activation as get_activation,  # noqa: E402
                       conv2d, erf, err, layer_norm, linear,
                       read_safetensors, write_safetensors)

F32_MIN = float(np.finfo(np.float32).min)


# ---------------------------------------------------------------- CLIP text (transformers 4.36 modeling_clip.py)

CLIP_DEFAULTS = dict(vocab_size=49408, hidden_size=512, intermediate_size=2048, projection_dim=512,
                     num_hidden_layers=12, num_attention_heads=8, max_position_embeddings=77, hidden_act="quick_gelu",
                     layer_norm_eps=1e-5, attention_dropout=0.0, initializer_range=0.02, initializer_factor=1.0,
                     pad_token_id=1, bos_token_id=49406, eos_token_id=49407)


def act2fn(name, x):
    """transformers' ACT2FN for the names CLIP configs use."""
    if name == "quick_gelu":
        return x * (1.0 / (1.0 + np.exp(-1.702 * x)))
    if name == "gelu":
        return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))
    if name in ("gelu_new", "gelu_pytorch_tanh"):
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))
    if name == "relu":
        return np.maximum(x, 0.0)
    if name in ("silu", "swish"):
        return x / (1.0 + np.exp(-x))
    raise ValueError(name)


def softmax(x):
    m = x.max(-1, keepdims=True)
    e = np.exp(x - m)
    return e / e.sum(-1, keepdims=True)


def clip_attention(P, name, x, cfg, mask):
    b, s, e = x.shape
    heads = cfg["num_attention_heads"]
    d = e // heads
    q = linear(P, name + ".q_proj", x, e, e) * d ** -0.5
    k = linear(P, name + ".k_proj", x, e, e)
    v = linear(P, name + ".v_proj", x, e, e)

    def split(t):
        return t.reshape(b, s, heads, d).transpose(0, 2, 1, 3)
    w = split(q) @ split(k).transpose(0, 1, 3, 2) + mask     # mask: causal + padding, [b or 1, 1, s, s]
    o = softmax(w) @ split(v)
    o = o.transpose(0, 2, 1, 3).reshape(b, s, e)
    return linear(P, name + ".out_proj", o, e, e)


def clip_text(P, cfg, ids, attention_mask=None, with_projection=False):
    """CLIPTextModel(WithProjection).forward(input_ids, attention_mask, output_hidden_states=True)."""
    b, s = ids.shape
    h_dim, inter, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    eps = cfg["layer_norm_eps"]
    pre = "text_model."
    tok = P.get(pre + "embeddings.token_embedding.weight", (cfg["vocab_size"], h_dim), "embedding")
    pos = P.get(pre + "embeddings.position_embedding.weight", (cfg["max_position_embeddings"], h_dim), "embedding")
    assert s <= cfg["max_position_embeddings"]
    h = tok[ids] + pos[np.arange(s)][None]
    # _create_4d_causal_attention_mask: finfo(float32).min above the diagonal
    mask = np.triu(np.full((s, s), F32_MIN), 1)[None, None]
    if attention_mask is not None:      # _prepare_4d_attention_mask: (1 - m) masked_fill min
        inv = 1.0 - attention_mask.astype(np.float64)[:, None, None, :]
        mask = mask + np.where(inv != 0, F32_MIN, 0.0)
    hidden = [h]
    for i in range(layers):
        n = f"{pre}encoder.layers.{i}."
        h = h + clip_attention(P, n + "self_attn", layer_norm(P, n + "layer_norm1", h, eps), cfg, mask)
        m = layer_norm(P, n + "layer_norm2", h, eps)
        m = linear(P, n + "mlp.fc2", act2fn(cfg["hidden_act"], linear(P, n + "mlp.fc1", m, h_dim, inter)), inter, h_dim)
        h = h + m
        hidden.append(h)
    last = layer_norm(P, pre + "final_layer_norm", h, eps)
    if cfg["eos_token_id"] == 2:        # legacy configs (before transformers PR #24773): argmax of the ids
        idx = ids.astype(np.int32).argmax(-1)
    else:                               # first position of eos_token_id (0 when absent)
        idx = (ids == cfg["eos_token_id"]).astype(np.int32).argmax(-1)
    pooled = last[np.arange(b), idx]
    out = dict(last_hidden_state=last, pooled=pooled, hidden_states=hidden, eos_index=idx)
    if with_projection:
        out["text_embeds"] = linear(P, "text_projection", pooled, h_dim, cfg["projection_dim"], bias=False)
    return out


def final_layer_norm(P, cfg, x):
    return layer_norm(P, "text_model.final_layer_norm", x, cfg["layer_norm_eps"])


# ---------------------------------------------------------------- AutoencoderTiny (diffusers 0.25.1): ../transcripts-common/taesd.py

from taesd import (TAESD_DEFAULTS, load_model, print_report, quantize, scale_latents_f32, taesd_decode,  # noqa: E402,F401
                   taesd_encode, unscale_latents_f32, validate_taesd)


# ---------------------------------------------------------------- validation on the goldens


def validate_clip():
    report = {}
    exp = read_safetensors(os.path.join(GOLDEN, "tiny-sd-expected.safetensors"))
    cfg, w = load_model("tiny-sd", "text_encoder")
    cfg = {**CLIP_DEFAULTS, **cfg}
    P = Params(w)
    o = clip_text(P, cfg, exp["tokenizer/input_ids"])
    report["tiny-sd text_encoder/last_hidden_state"] = err(o["last_hidden_state"], exp["text_encoder/last_hidden_state"])
    report["tiny-sd text_encoder/pooler_output"] = err(o["pooled"], exp["text_encoder/pooler_output"])
    hs = np.stack(o["hidden_states"])[:, :2]
    report["tiny-sd text_encoder/hidden_states_prompts01"] = err(hs, exp["text_encoder/hidden_states_prompts01"])
    assert set(w) == P.used, set(w) - P.used

    exp = read_safetensors(os.path.join(GOLDEN, "tiny-sdxl-expected.safetensors"))
    for sub, ids_key, proj in [("text_encoder", "tokenizer/input_ids", False),
                               ("text_encoder_2", "tokenizer_2/input_ids", True)]:
        cfg, w = load_model("tiny-sdxl", sub)
        cfg = {**CLIP_DEFAULTS, **cfg}
        P = Params(w)
        o = clip_text(P, cfg, exp[ids_key], with_projection=proj)
        report[f"tiny-sdxl {sub}/last_hidden_state"] = err(o["last_hidden_state"], exp[sub + "/last_hidden_state"])
        if proj:
            report[f"tiny-sdxl {sub}/text_embeds"] = err(o["text_embeds"], exp[sub + "/text_embeds"])
        else:
            report[f"tiny-sdxl {sub}/pooler_output"] = err(o["pooled"], exp[sub + "/pooler_output"])
        report[f"tiny-sdxl {sub}/hidden_states_penultimate"] = err(o["hidden_states"][-2],
                                                                   exp[sub + "/hidden_states_penultimate"])
        report[f"tiny-sdxl {sub}/hidden_states_all_prompt0"] = err(np.stack(o["hidden_states"])[:, 0],
                                                                   exp[sub + "/hidden_states_all_prompt0"])
        assert set(w) == P.used, set(w) - P.used
    return report


# ---------------------------------------------------------------- variants

def clip_config(name, cfg, with_projection, dtype=F32):
    arch = "CLIPTextModelWithProjection" if with_projection else "CLIPTextModel"
    out = {"_name_or_path": f"model-transcripts-clip-taesd/{name}", "architectures": [arch],
           **{k: v for k, v in {**CLIP_DEFAULTS, **cfg}.items() if k != "use_attention_mask"},
           "dropout": 0.0, "model_type": "clip_text_model", "torch_dtype": np.dtype(dtype).name,
           "transformers_version": cfg.get("_transformers_version", "4.36.2")}
    out.pop("_transformers_version", None)
    if "use_attention_mask" in cfg:
        out["use_attention_mask"] = cfg["use_attention_mask"]
    return out


# CLIP: each variant has cases of token ids (rows of a batch) chosen by hand: bos, words, eos, then padding.
CLIP_VARIANTS = [
    dict(name="clip-sd2-gelu-legacy-eos",
         desc="SD 2.x text_encoder shape: hidden_act gelu, eos_token_id 2 / bos 0 / pad 1 as the Hub configs written "
              "before transformers 4.31 carry (pooled at argmax(input_ids)), 4 layers, 3 heads of 8, "
              "a position_ids buffer in the file (transformers < 4.31 saved it)",
         projection=False, position_ids_in_file=True,
         config=dict(vocab_size=64, hidden_size=24, intermediate_size=40, num_hidden_layers=4, num_attention_heads=3,
                     max_position_embeddings=16, hidden_act="gelu", bos_token_id=0, eos_token_id=2, pad_token_id=1,
                     projection_dim=24, _transformers_version="4.25.0.dev0"),
         # the tokenizer's bos/eos are 61/62 (the highest ids of the base vocabulary); 63 is an added token
         # (textual inversion) that argmax pooling picks instead of the eos
         cases=[dict(name="pad_bang", ids=[[61, 5, 17, 40, 62] + [0] * 11,             # SD 2's "!" padding
                                           [61, 33, 8, 9, 10, 11, 62] + [0] * 9]),
                dict(name="pad_eos", ids=[[61, 7, 62] + [62] * 13]),                    # SD 1's eos padding
                dict(name="added_token", ids=[[61, 63, 12, 62] + [0] * 12])],
         ),
    dict(name="clip-eos-id-eps",
         desc="CLIPTextModel with a real eos_token_id (pooled at its first position, 0 when absent), quick_gelu, "
              "layer_norm_eps 1e-3, 2 layers of 2 heads, max_position_embeddings 20 with inputs of 20 and 9 tokens",
         projection=False,
         config=dict(vocab_size=50, hidden_size=16, intermediate_size=24, num_hidden_layers=2, num_attention_heads=2,
                     max_position_embeddings=20, hidden_act="quick_gelu", bos_token_id=47, eos_token_id=48,
                     pad_token_id=48, layer_norm_eps=1e-3, projection_dim=16),
         cases=[dict(name="full_length", ids=[[47, 3, 4, 49, 48] + [48] * 15,                 # 49: an added token
                                              [47, 20, 21, 22, 23, 24, 25, 26, 48] + [48] * 11]),
                dict(name="short", ids=[[47, 10, 49, 11, 48, 48, 48, 48, 48],
                                        [47, 30, 31, 32, 33, 34, 35, 36, 37]])]),          # no eos: position 0
    dict(name="clip-proj-gelu-legacy-eos",
         desc="SDXL text_encoder_2 shape: CLIPTextModelWithProjection, gelu, eos_token_id 2 (argmax pooling), "
              "projection_dim 12 != hidden_size 32, 3 layers of 8 heads of 4",
         projection=True,
         config=dict(vocab_size=40, hidden_size=32, intermediate_size=48, num_hidden_layers=3, num_attention_heads=8,
                     max_position_embeddings=12, hidden_act="gelu", bos_token_id=0, eos_token_id=2, pad_token_id=1,
                     projection_dim=12, _transformers_version="4.32.0.dev0"),
         cases=[dict(name="batch3", ids=[[38, 4, 5, 6, 39, 0, 0, 0, 0, 0, 0, 0],
                                         [38, 39, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                                         [38, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 39]])]),
    dict(name="clip-proj-eos-id-mask",
         desc="CLIPTextModelWithProjection with a real eos id, quick_gelu, one layer of one head, use_attention_mask "
              "true (the SD pipeline then passes the tokenizer's mask: padding keys masked with finfo.min); weights "
              "saved in float16 (torch_dtype float16), loaded into a float32 model as transformers does without "
              "torch_dtype",
         projection=True, dtype=np.float16,
         config=dict(vocab_size=30, hidden_size=8, intermediate_size=16, num_hidden_layers=1, num_attention_heads=1,
                     max_position_embeddings=10, hidden_act="quick_gelu", bos_token_id=28, eos_token_id=29,
                     pad_token_id=29, projection_dim=6, use_attention_mask=True),
         cases=[dict(name="masked", ids=[[28, 3, 4, 29, 29, 29, 29, 29, 29, 29],
                                         [28, 5, 6, 7, 8, 9, 29, 29, 29, 29]],
                     mask=[[1, 1, 1, 1, 0, 0, 0, 0, 0, 0],
                           [1, 1, 1, 1, 1, 1, 1, 0, 0, 0]]),
                dict(name="unmasked", ids=[[28, 3, 4, 29, 29, 29, 29, 29, 29, 29]]),
                # left padding and a row of zeros: rows whose every key is masked see finfo.min everywhere at and
                # before the diagonal (min + min = -inf after it), so softmax spreads evenly over those keys
                dict(name="left_padded_and_empty", ids=[[29, 29, 29, 28, 5, 6, 29, 29, 29, 29],
                                                        [28, 3, 29, 29, 29, 29, 29, 29, 29, 29]],
                     mask=[[0, 0, 0, 1, 1, 1, 1, 0, 0, 0],
                           [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]])]),
]
for act in ["gelu_new", "gelu_pytorch_tanh", "relu", "silu", "swish"]:
    CLIP_VARIANTS.append(dict(
        name=f"clip-act-{act.replace('_', '-')}", desc=f"hidden_act {act}, one layer of 2 heads",
        projection=False,
        config=dict(vocab_size=20, hidden_size=8, intermediate_size=12, num_hidden_layers=1, num_attention_heads=2,
                    max_position_embeddings=8, hidden_act=act, bos_token_id=18, eos_token_id=19, pad_token_id=19,
                    projection_dim=8),
        cases=[dict(name="ids", ids=[[18, 1, 2, 3, 19, 19, 19, 19]])]))


TAESD_VARIANTS = [
    dict(name="taesd-3stage-up3",
         desc="3 stages of 8 channels, num_encoder_blocks [1, 2, 1], num_decoder_blocks [1, 0, 2] (a stage without "
              "blocks), upsampling_scaling_factor 3 (nearest x3), latent_channels 6, latent_magnitude 0.5 and "
              "latent_shift 0.25 (scale_latents clamps), act_fn relu",
         config=dict(encoder_block_out_channels=[8, 8, 8], decoder_block_out_channels=[8, 8, 8],
                     num_encoder_blocks=[1, 2, 1], num_decoder_blocks=[1, 0, 2], upsampling_scaling_factor=3,
                     latent_channels=6, latent_magnitude=0.5, latent_shift=0.25),
         image=[1, 3, 16, 12], z=[1, 6, 5, 4], bands=True),
    dict(name="taesd-silu-latent16",
         desc="act_fn silu, latent_channels 16, encoder of 3 stages of 12 channels and decoder of 2 stages of 8 "
              "(encoder and decoder need not match), in 1 / out 2 channels, batch of 2",
         config=dict(in_channels=1, out_channels=2, encoder_block_out_channels=[12, 12, 12],
                     decoder_block_out_channels=[8, 8], num_encoder_blocks=[1, 1, 1], num_decoder_blocks=[2, 1],
                     latent_channels=16, act_fn="silu", latent_magnitude=3, latent_shift=0.5),
         image=[2, 1, 16, 16], z=[2, 16, 10, 6], bands=True),
    dict(name="taesd-gelu-upper",
         desc="act_fn \"GELU\" (get_activation lowercases it), 2 stages of 8, upsampling_scaling_factor 2, "
              "latent_magnitude 3.0 / latent_shift 0.5 as floats, scaling_factor 0.5, an odd 13x17 image (7x9 latents)",
         config=dict(encoder_block_out_channels=[8, 8], decoder_block_out_channels=[8, 8], num_encoder_blocks=[2, 1],
                     num_decoder_blocks=[1, 2], act_fn="GELU", latent_magnitude=3.0, latent_shift=0.5,
                     scaling_factor=0.5),
         image=[1, 3, 13, 17], z=[1, 4, 5, 7]),
    dict(name="taesd-mish-one-stage",
         desc="one stage each (no stride-2 conv, no upsample), act_fn mish, num blocks [2] / [3], latent_magnitude 4, "
              "latent_shift 0.3; weights saved in float16, loaded into a float32 model as diffusers does without "
              "torch_dtype",
         dtype=np.float16,
         config=dict(encoder_block_out_channels=[8], decoder_block_out_channels=[8], num_encoder_blocks=[2],
                     num_decoder_blocks=[3], act_fn="mish", latent_magnitude=4, latent_shift=0.3),
         image=[1, 3, 8, 8], z=[1, 4, 8, 8]),
    dict(name="taesd-wide32",
         desc="32 channels at 32x32 (the width and positions where DiffusersSharp's fp32 convolutions take the "
              "Winograd path and the decoder's upsample fuses into the convolution after it), "
              "num_encoder_blocks [1, 0], num_decoder_blocks [0, 1]; float16 weights",
         config=dict(encoder_block_out_channels=[32, 32], decoder_block_out_channels=[32, 32],
                     num_encoder_blocks=[1, 0], num_decoder_blocks=[0, 1]),
         dtype=np.float16, image=[1, 3, 32, 32], z=[1, 4, 16, 16], bands=True),
]


def build_clip_variants(tensors):
    cases = []
    for vi, v in enumerate(CLIP_VARIANTS):
        folder = os.path.join(HERE, v["name"])
        if os.path.isdir(folder):
            shutil.rmtree(folder)
        os.makedirs(folder)
        cfg = {**CLIP_DEFAULTS, **{k: x for k, x in v["config"].items() if not k.startswith("_")}}
        P = Params(rng=np.random.default_rng(2000 + vi), dtype=v.get("dtype", F32))
        for c in v["cases"]:
            ids = np.array(c["ids"], dtype=np.int64)
            mask = np.array(c["mask"], dtype=np.int64) if "mask" in c else None
            o = clip_text(P, cfg, ids, mask, with_projection=v["projection"])
            key = f"{v['name']}/{c['name']}"
            tensors[key + "/input_ids"] = ids
            if mask is not None:
                tensors[key + "/attention_mask"] = mask
            tensors[key + "/last_hidden_state"] = o["last_hidden_state"].astype(F32)
            hs = np.stack(o["hidden_states"])
            tensors[key + "/hidden_states"] = hs.astype(F32)
            # SD's clip_skip=1: final_layer_norm(hidden_states[-2])
            tensors[key + "/final_layer_norm_penultimate"] = final_layer_norm(P, cfg, hs[-2]).astype(F32)
            if v["projection"]:
                tensors[key + "/text_embeds"] = o["text_embeds"].astype(F32)
            else:
                tensors[key + "/pooler_output"] = o["pooled"].astype(F32)
            cases.append(dict(id=key, model=v["name"], projection=v["projection"], input_shape=list(ids.shape),
                              attention_mask=mask is not None, pooled_positions=[int(i) for i in o["eos_index"]],
                              last_abs_max=float(np.abs(o["last_hidden_state"]).max())))
        assert set(P.t) == P.used
        weights = dict(P.t)
        if v.get("position_ids_in_file"):
            weights["text_model.embeddings.position_ids"] = np.arange(cfg["max_position_embeddings"],
                                                                      dtype=np.int64)[None]
        with open(os.path.join(folder, "config.json"), "w") as f:
            json.dump(clip_config(v["name"], v["config"], v["projection"], v.get("dtype", F32)), f, indent=2, sort_keys=True)
            f.write("\n")
        write_safetensors(os.path.join(folder, "model.safetensors"), weights, {"format": "pt"})
        v["n_params"] = int(sum(a.size for a in P.t.values()))
    return cases


def build_taesd_variants(tensors):
    cases = []
    for vi, v in enumerate(TAESD_VARIANTS):
        folder = os.path.join(HERE, v["name"])
        if os.path.isdir(folder):
            shutil.rmtree(folder)
        os.makedirs(folder)
        cfg = {**TAESD_DEFAULTS, **v["config"]}
        P = Params(rng=np.random.default_rng(4000 + vi), dtype=v.get("dtype", F32))
        rng = np.random.default_rng(8000 + vi)
        z = (2.0 * rng.standard_normal(v["z"])).astype(F32)     # beyond +-3: the decoder's tanh clamp matters
        dec = taesd_decode(P, cfg, z)
        # forward() rounds scale_latents(latents) * 255: images are drawn until no value lies within 2e-4 of a
        # rounding boundary (float32 differences of an implementation, ~1e-5 there, cannot flip a byte)
        for _ in range(50):
            image = np.tanh(rng.standard_normal(v["image"])).astype(F32)
            lat = taesd_encode(P, cfg, image)
            q, pre = quantize(cfg, lat.astype(F32))
            margin = float(np.abs(pre - np.floor(pre) - 0.5).min())
            if margin > 2e-4:
                break
        assert margin > 2e-4, (v["name"], margin)
        unscaled = unscale_latents_f32(cfg, (q.astype(F32) / F32(255.0)).astype(F32))
        fwd = taesd_decode(P, cfg, unscaled)
        key = v["name"]
        tensors[key + "/image"] = image
        tensors[key + "/encode/latents"] = lat.astype(F32)
        tensors[key + "/z"] = z
        tensors[key + "/decode"] = dec.astype(F32)
        tensors[key + "/scale_latents"] = scale_latents_f32(cfg, lat.astype(F32))
        tensors[key + "/quantized_uint8"] = q
        tensors[key + "/unscaled"] = unscaled
        tensors[key + "/forward"] = fwd.astype(F32)
        assert set(P.t) == P.used
        config = {"_class_name": "AutoencoderTiny", "_diffusers_version": "0.25.1", **cfg,
                  "block_out_channels": cfg["decoder_block_out_channels"]}
        with open(os.path.join(folder, "config.json"), "w") as f:
            json.dump(config, f, indent=2, sort_keys=True)
            f.write("\n")
        write_safetensors(os.path.join(folder, "diffusion_pytorch_model.safetensors"), P.t, {"format": "pt"})
        sl = scale_latents_f32(cfg, lat.astype(F32))
        cases.append(dict(id=key, model=key, description=v["desc"], parameters=int(sum(a.size for a in P.t.values())),
                          image_shape=list(image.shape), latent_shape=list(lat.shape), decode_shape=list(dec.shape),
                          bands=bool(v.get("bands")), rounding_margin=margin,
                          clamped_fraction=float(((sl == 0) | (sl == 1)).mean()),
                          z_abs_max=float(np.abs(z).max()), decode_abs_max=float(np.abs(dec).max())))
    return cases


def main():
    print("validating CLIP on the golden tiny text encoders (README sections C and F):")
    clip_report = validate_clip()
    clip_worst = print_report(clip_report, 2e-5, "the golden text encoders")
    print("validating AutoencoderTiny on golden tiny-taesd (README section I):")
    taesd_report, taesd_margin = validate_taesd()
    taesd_worst = print_report(taesd_report, 2e-5, "tiny-taesd")
    print(f"  tiny-taesd quantization: nearest distance of scale_latents * 255 to a rounding boundary {taesd_margin:.2e}")
    tensors = {}
    clip_cases = build_clip_variants(tensors)
    taesd_cases = build_taesd_variants(tensors)
    write_safetensors(os.path.join(HERE, "cases.safetensors"), tensors)
    doc = dict(
        generator="make.py: numpy float64 transcription of transformers 4.36 CLIPTextModel(WithProjection) and "
                  "diffusers 0.25.1 AutoencoderTiny",
        clip_validation=dict(golden="tiny-sd text_encoder (README C), tiny-sdxl text_encoder / text_encoder_2 "
                                    "(README F)", max_abs_error=clip_worst,
                             cases={k: a for k, (a, _) in clip_report.items()}),
        clip_variants=[dict(name=v["name"], description=v["desc"], projection=v["projection"],
                            parameters=v["n_params"]) for v in CLIP_VARIANTS],
        clip_cases=clip_cases,
        taesd_validation=dict(golden="tiny-taesd (README I)", max_abs_error=taesd_worst,
                              cases={k: a for k, (a, _) in taesd_report.items()}),
        taesd_cases=taesd_cases)
    with open(os.path.join(HERE, "cases.json"), "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    for c in clip_cases:
        print(f"  {c['id']}: ids {c['input_shape']}, pooled at {c['pooled_positions']}, "
              f"|last| max {c['last_abs_max']:.3f}")
    for c in taesd_cases:
        print(f"  {c['id']}: latents {c['latent_shape']}, decode {c['decode_shape']}, rounding margin "
              f"{c['rounding_margin']:.2e}, clamped {c['clamped_fraction']:.2f}, |decode| max {c['decode_abs_max']:.3f}")


if __name__ == "__main__":
    main()
