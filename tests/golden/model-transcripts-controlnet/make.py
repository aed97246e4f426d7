#!/usr/bin/python3
"""ControlNetModel config variants for diffusers 0.25.1, made without torch.

A numpy transcription of diffusers 0.25.1's ControlNetModel.forward and from_unet (src/diffusers/models/controlnet.py,
with unet_2d_blocks.py, transformer_2d.py, attention.py, attention_processor.py, resnet.py, downsampling.py and
embeddings.py at tag v0.25.1). The network runs in float64 on float32 weights and inputs; the sinusoidal timestep
embeddings are computed in float32 operation by operation as torch does, then widened; guess mode's
torch.logspace(-1, 0, n + 1) scales are float32 values times conditioning_scale rounded to float32, as torch has them.

It is validated first on the golden tiny-sd-controlnet (README section H: the residuals and intermediates of
controlnet/t500 in tiny-sd-controlnet-expected.safetensors) and, for the down path with linear projections,
transformer depth lists and the SDXL "text_time" embedding, on a ControlNet made by from_unet of the golden
tiny-sdxl UNet with a zero conditioning embedding, whose intermediates must equal those diffusers recorded for the UNet
(README section F: unet/t500/intermediate/*). The script prints, and fails on, the errors.

Then it writes the variants of VARIANTS (a diffusers folder each: config.json as diffusers' save_pretrained writes
it, diffusion_pytorch_model.safetensors in float32) and their inputs and outputs to cases.safetensors, described by
cases.json.

Run from anywhere: /usr/bin/python3 make.py (numpy only; deterministic).
"""
import json
import os
import shutil
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.dirname(HERE)
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(GOLDEN, "transcripts-common"))
from torchlike import (F32, NamedSeedParams, activation as act, conv2d, downsample,  # noqa: E402
                       read_safetensors, resnet, spatial_attention, timestep_embedding, timestep_embedding_module,
                       transformer_2d, write_safetensors)

CT = np.float64


# ----------------------------------------------------------------------------------------------- parameters

# the last layer of each residual branch (resnet, attention, feed-forward): drawn at half scale, so that the residual
# streams of deep blocks stay O(1), as in trained networks, and outputs are not needlessly sensitive to float32 rounding
RESIDUAL_BRANCH_OUTPUTS = (".conv2.weight", ".to_out.0.weight", ".ff.net.2.weight")
# likewise the "zero convolutions" (zero at diffusers' init, small in trained ControlNets): residuals of a few units
ZERO_CONVOLUTIONS = ("controlnet_down_blocks.", "controlnet_mid_block.")


class Params(NamedSeedParams):
    """torchlike.NamedSeedParams with the residual branch outputs and the zero convolutions made at half scale."""

    def weight_scale(self, name):
        return 0.5 if name.endswith(RESIDUAL_BRANCH_OUTPUTS) or name.startswith(ZERO_CONVOLUTIONS) else 1.0


# ----------------------------------------------------------------------------------------------- ControlNetModel

DEFAULTS = {   # ControlNetModel.__init__'s arguments and defaults, the keys of the config.json it saves
    "in_channels": 4, "conditioning_channels": 3, "flip_sin_to_cos": True, "freq_shift": 0,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "mid_block_type": "UNetMidBlock2DCrossAttn", "only_cross_attention": False,
    "block_out_channels": [320, 640, 1280, 1280], "layers_per_block": 2, "downsample_padding": 1,
    "mid_block_scale_factor": 1, "act_fn": "silu", "norm_num_groups": 32, "norm_eps": 1e-5,
    "cross_attention_dim": 1280, "transformer_layers_per_block": 1, "encoder_hid_dim": None,
    "encoder_hid_dim_type": None, "attention_head_dim": 8, "num_attention_heads": None,
    "use_linear_projection": False, "class_embed_type": None, "addition_embed_type": None,
    "addition_time_embed_dim": None, "num_class_embeds": None, "upcast_attention": False,
    "resnet_time_scale_shift": "default", "projection_class_embeddings_input_dim": None,
    "controlnet_conditioning_channel_order": "rgb", "conditioning_embedding_out_channels": [16, 32, 96, 256],
    "global_pool_conditions": False, "addition_embed_type_num_heads": 64,
}


def full_config(overrides):
    cfg = dict(DEFAULTS)
    for k, v in overrides.items():
        assert k in DEFAULTS, k
        cfg[k] = v
    if cfg["encoder_hid_dim_type"] is None and cfg["encoder_hid_dim"] is not None:
        cfg["encoder_hid_dim_type"] = "text_proj"     # register_to_config in __init__
    return cfg


def per_block(v, n):
    return list(v) if isinstance(v, (list, tuple)) else [v] * n


def cond_embedding(P, cfg, cond):
    """controlnet.ControlNetConditioningEmbedding: conv_in, SiLU, (conv, SiLU, stride-2 conv, SiLU) per further
    entry, conv_out (no activation)."""
    ch = cfg["conditioning_embedding_out_channels"]
    e = act("silu", conv2d(P, "controlnet_cond_embedding.conv_in", cond, cfg["conditioning_channels"], ch[0], 3, padding=1))
    for i in range(len(ch) - 1):
        e = act("silu", conv2d(P, f"controlnet_cond_embedding.blocks.{2 * i}", e, ch[i], ch[i], 3, padding=1))
        e = act("silu", conv2d(P, f"controlnet_cond_embedding.blocks.{2 * i + 1}", e, ch[i], ch[i + 1], 3, stride=2, padding=1))
    return conv2d(P, "controlnet_cond_embedding.conv_out", e, ch[-1], cfg["block_out_channels"][0], 3, padding=1)


def logspace_scales(n, conditioning_scale):
    """torch.logspace(-1, 0, n) (float32: torch's CPU kernel takes base ** (start + i * step) for the first half and
    base ** (end - (n - 1 - i) * step) for the rest) times conditioning_scale, rounded to float32."""
    step = (0.0 - -1.0) / (n - 1)
    vals = []
    for i in range(n):
        e = -1.0 + i * step if i < n // 2 else 0.0 - (n - 1 - i) * step
        vals.append(F32(10.0 ** e))
    return (np.array(vals, dtype=F32) * F32(conditioning_scale)).astype(F32)


def controlnet_forward(P, cfg, sample, timestep, ehs, cond, conditioning_scale=1.0, class_labels=None, added=None,
                       guess_mode=False, hook=None, attention_mask=None):
    """ControlNetModel.forward(sample, timestep, encoder_hidden_states, controlnet_cond, conditioning_scale,
    class_labels, added_cond_kwargs=added, guess_mode) -> (down_block_res_samples, mid_block_res_sample)."""
    c = cfg
    hook = hook or (lambda name, value: None)
    n = len(c["down_block_types"])
    boc = c["block_out_channels"]
    heads = per_block(c["num_attention_heads"] or c["attention_head_dim"], n)
    head_dims = per_block(c["attention_head_dim"], n)
    only_cross = per_block(c["only_cross_attention"], n)
    tlpb = per_block(c["transformer_layers_per_block"], n)
    lpb = c["layers_per_block"]
    groups, eps, act_fn = c["norm_num_groups"], c["norm_eps"], c["act_fn"]
    flip, shift = c["flip_sin_to_cos"], c["freq_shift"]
    ra = {"groups": groups, "eps": eps, "act": act_fn, "tss": c["resnet_time_scale_shift"]}
    b = sample.shape[0]
    ted = boc[0] * 4

    if c["controlnet_conditioning_channel_order"] == "bgr":
        cond = cond[:, ::-1]
    mask = None
    if attention_mask is not None:     # (1 - mask) * -10000, unsqueeze(1)
        mask = ((1 - attention_mask.astype(CT)) * -10000.0)[:, None, :]

    # 1. time
    t = np.broadcast_to(np.asarray(timestep).reshape(-1), (b,))
    t_emb = timestep_embedding(t, boc[0], flip, shift).astype(CT)
    emb = timestep_embedding_module(P, "time_embedding", t_emb, boc[0], ted, act_fn)
    hook("time_embedding", emb)
    cet = c["class_embed_type"]
    if cet is None and c["num_class_embeds"] is not None:
        emb = emb + P.get("class_embedding.weight", (c["num_class_embeds"], ted), "embedding")[class_labels]
    elif cet == "timestep":
        emb = emb + timestep_embedding_module(P, "class_embedding", timestep_embedding(class_labels, boc[0], flip, shift).astype(CT),
                                              boc[0], ted)
    elif cet == "identity":
        emb = emb + class_labels.astype(CT)
    elif cet == "projection":
        emb = emb + timestep_embedding_module(P, "class_embedding", class_labels.astype(CT),
                                              c["projection_class_embeddings_input_dim"], ted)
    else:
        assert cet is None, cet
    if c["addition_embed_type"] == "text_time":
        text_embeds, time_ids = added["text_embeds"].astype(CT), added["time_ids"]
        time_embeds = timestep_embedding(time_ids.reshape(-1), c["addition_time_embed_dim"], flip, shift).astype(CT)
        add = np.concatenate([text_embeds, time_embeds.reshape(text_embeds.shape[0], -1)], -1)
        aug = timestep_embedding_module(P, "add_embedding", add, c["projection_class_embeddings_input_dim"], ted)
        hook("add_embedding", aug)
        emb = emb + aug
    else:
        assert c["addition_embed_type"] is None
    if c["encoder_hid_dim"] is not None:    # built, never applied by 0.25.1's ControlNet forward
        P.get("encoder_hid_proj.weight", (c["cross_attention_dim"], c["encoder_hid_dim"]), "weight")
        P.get("encoder_hid_proj.bias", (c["cross_attention_dim"],), "bias")

    # 2. pre-process
    x = conv2d(P, "conv_in", sample, c["in_channels"], boc[0], 3, padding=1)
    hook("conv_in", x)
    ce = cond_embedding(P, c, cond)
    hook("controlnet_cond_embedding", ce)
    x = x + ce

    # 3. down
    skips = [x]
    for i, typ in enumerate(c["down_block_types"]):
        cout = boc[i]
        pre = f"down_blocks.{i}"
        depths = tlpb[i] if isinstance(tlpb[i], list) else [tlpb[i]] * lpb
        for j in range(lpb):
            x = resnet(P, f"{pre}.resnets.{j}", x, emb, cout, ra)
            if typ == "CrossAttnDownBlock2D":
                x = transformer_2d(P, f"{pre}.attentions.{j}", x, ehs, heads[i], depths[j], c["cross_attention_dim"],
                                   groups, c["use_linear_projection"], only_cross[i], mask, hook=hook)
                hook(f"{pre}.attentions.{j}", x)
            elif typ == "AttnDownBlock2D":   # get_down_block hands it attention_head_dim[i] as the head *dim*
                x = spatial_attention(P, f"{pre}.attentions.{j}", x, head_dims[i] or cout, groups, eps)
            else:
                assert typ in ("DownBlock2D", "ResnetDownsampleBlock2D"), typ
            skips.append(x)
        if i < n - 1:
            if typ == "ResnetDownsampleBlock2D":   # skip_time_act False, output_scale_factor 1 (ControlNet passes neither)
                x = resnet(P, f"{pre}.downsamplers.0", x, emb, cout, ra, "down")
            else:
                x = downsample(P, f"{pre}.downsamplers.0", x, c["downsample_padding"])
            skips.append(x)
        hook(pre, x)

    # 4. mid
    ma = dict(ra, out_scale=c["mid_block_scale_factor"])
    if c["mid_block_type"] == "UNetMidBlock2DCrossAttn":
        d = tlpb[-1][0] if isinstance(tlpb[-1], list) else tlpb[-1]
        x = resnet(P, "mid_block.resnets.0", x, emb, boc[-1], ma)
        x = transformer_2d(P, "mid_block.attentions.0", x, ehs, heads[-1], d, c["cross_attention_dim"], groups,
                           c["use_linear_projection"], False, mask, hook=hook)
        hook("mid_block.attentions.0", x)
        x = resnet(P, "mid_block.resnets.1", x, emb, boc[-1], ma)
    else:
        assert c["mid_block_type"] == "UNetMidBlock2D"   # num_layers=0: one resnet
        x = resnet(P, "mid_block.resnets.0", x, emb, boc[-1], ma)
    hook("mid_block", x)

    # 5. zero convolutions
    down = [conv2d(P, f"controlnet_down_blocks.{j}", s, s.shape[1], s.shape[1], 1) for j, s in enumerate(skips)]
    mid = conv2d(P, "controlnet_mid_block", x, boc[-1], boc[-1], 1)

    # 6. scaling
    if guess_mode and not c["global_pool_conditions"]:
        scales = logspace_scales(len(down) + 1, conditioning_scale).astype(CT)
        down = [s * scales[j] for j, s in enumerate(down)]
        mid = mid * scales[-1]
    else:
        s = CT(F32(conditioning_scale))
        down = [d * s for d in down]
        mid = mid * s
    if c["global_pool_conditions"]:
        down = [d.mean(axis=(2, 3), keepdims=True) for d in down]
        mid = mid.mean(axis=(2, 3), keepdims=True)
    return down, mid


FROM_UNET_KEYS = [   # from_unet's cls(...) arguments taken from the UNet's config (controlnet.py, v0.25.1)
    "encoder_hid_dim", "encoder_hid_dim_type", "addition_embed_type", "addition_time_embed_dim",
    "transformer_layers_per_block", "in_channels", "flip_sin_to_cos", "freq_shift", "down_block_types",
    "only_cross_attention", "block_out_channels", "layers_per_block", "downsample_padding", "mid_block_scale_factor",
    "act_fn", "norm_num_groups", "norm_eps", "cross_attention_dim", "attention_head_dim", "num_attention_heads",
    "use_linear_projection", "class_embed_type", "num_class_embeds", "upcast_attention", "resnet_time_scale_shift",
    "projection_class_embeddings_input_dim", "mid_block_type",
]
FROM_UNET_PREFIXES = ("conv_in.", "time_embedding.", "class_embedding.", "down_blocks.", "mid_block.")


def from_unet_config(unet_cfg, controlnet_conditioning_channel_order="rgb",
                     conditioning_embedding_out_channels=(16, 32, 96, 256), conditioning_channels=3):
    over = {k: unet_cfg[k] for k in FROM_UNET_KEYS if k in unet_cfg}
    over["controlnet_conditioning_channel_order"] = controlnet_conditioning_channel_order
    over["conditioning_embedding_out_channels"] = list(conditioning_embedding_out_channels)
    over["conditioning_channels"] = conditioning_channels
    return full_config(over)


# ----------------------------------------------------------------------------------------------- validation

def max_err(a, b):
    return float(np.abs(np.asarray(a, dtype=CT) - np.asarray(b, dtype=CT)).max())


def validate():
    report = {}
    g = read_safetensors(os.path.join(GOLDEN, "tiny-sd-controlnet-expected.safetensors"))
    cfg = full_config({k: v for k, v in json.load(open(os.path.join(GOLDEN, "tiny-sd-controlnet/config.json"))).items()
                       if not k.startswith("_")})
    P = Params(read_safetensors(os.path.join(GOLDEN, "tiny-sd-controlnet/diffusion_pytorch_model.safetensors")))
    inter = {}
    down, mid = controlnet_forward(P, cfg, g["controlnet/x"].astype(CT), 500, g["controlnet/encoder_hidden_states"].astype(CT),
                                   g["controlnet/controlnet_cond"].astype(CT), hook=lambda k, v: inter.__setitem__(k, v))
    P.check_all_used()
    pre = "controlnet/t500/"
    for j, d in enumerate(down):
        report[f"tiny-sd-controlnet {pre}down_block_res_sample_{j}"] = max_err(d, g[f"{pre}down_block_res_sample_{j}"])
    report[f"tiny-sd-controlnet {pre}mid_block_res_sample"] = max_err(mid, g[pre + "mid_block_res_sample"])
    for k in ("time_embedding", "conv_in", "controlnet_cond_embedding", "mid_block"):
        report[f"tiny-sd-controlnet {pre}intermediate/{k}"] = max_err(inter[k], g[f"{pre}intermediate/{k}"])

    # from_unet(tiny-sdxl UNet) with a zero conditioning embedding: the down path is the UNet's
    xl = read_safetensors(os.path.join(GOLDEN, "tiny-sdxl-expected.safetensors"))
    ucfg = json.load(open(os.path.join(GOLDEN, "tiny-sdxl/unet/config.json")))
    uw = read_safetensors(os.path.join(GOLDEN, "tiny-sdxl/unet/diffusion_pytorch_model.safetensors"))
    cfg = from_unet_config(ucfg, conditioning_embedding_out_channels=(4,))
    stored = {k: v for k, v in uw.items() if k.startswith(FROM_UNET_PREFIXES) or k.startswith("add_embedding.")}
    P = Params(stored, seed=1)
    zero = {"controlnet_cond_embedding.conv_out.weight": np.zeros((cfg["block_out_channels"][0], 4, 3, 3), F32),
            "controlnet_cond_embedding.conv_out.bias": np.zeros((cfg["block_out_channels"][0],), F32)}
    P.stored.update(zero)
    inter = {}
    x = xl["unet/x"].astype(CT)
    controlnet_forward(P, cfg, x, 500, xl["unet/encoder_hidden_states"].astype(CT),
                       np.zeros((1, 3) + x.shape[2:]), added={"text_embeds": xl["unet/text_embeds"], "time_ids": xl["unet/time_ids"]},
                       hook=lambda k, v: inter.__setitem__(k, v))
    unused = sorted(set(stored) - P.used)
    assert not unused, unused
    for k in ("time_embedding", "add_embedding", "conv_in", "down_blocks.0", "down_blocks.1.attentions.0", "down_blocks.1",
              "down_blocks.2.attentions.0.transformer_blocks.1", "down_blocks.2", "mid_block.attentions.0", "mid_block"):
        report[f"tiny-sdxl from_unet unet/t500/intermediate/{k}"] = max_err(inter[k], xl[f"unet/t500/intermediate/{k}"])

    for k, v in report.items():
        print(f"  {k}: max abs error {v:.2e}")
    worst = max(report.values())
    if worst > 2e-5:
        sys.exit(f"the transcription does not reproduce the golden data (max abs error {worst:.2e})")
    return report


# ----------------------------------------------------------------------------------------------- variants

SD15 = {   # runwayml/stable-diffusion-v1-5 ControlNets (lllyasviel/sd-controlnet-*, control_v11p_sd15_*), narrowed
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "block_out_channels": [8, 8, 8, 16], "norm_num_groups": 2, "attention_head_dim": 2, "cross_attention_dim": 12,
    "layers_per_block": 2,
}

VARIANTS = [
    # name, config overrides, note
    ("sd15", dict(SD15, conditioning_embedding_out_channels=[4, 8, 8, 16]),
     "SD 1.5 layout (4 levels, 3 cross-attention down blocks + DownBlock2D, layers_per_block 2, 2 heads), the default "
     "4-entry conditioning embedding narrowed to [4, 8, 8, 16] (three stride-2 convolutions: the control image is 8x the latents)"),
    ("sd15-bgr-lpb1-depth2", dict(SD15, controlnet_conditioning_channel_order="bgr", layers_per_block=1,
                                  transformer_layers_per_block=2, conditioning_embedding_out_channels=[6, 8]),
     "\"bgr\" channel order (the control image flipped first), layers_per_block 1, transformer_layers_per_block 2 "
     "(every attention, the mid block's included), a 2-entry conditioning embedding [6, 8] (one stride-2 step)"),
    ("sd21-linear-upcast", {
        "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
        "block_out_channels": [8, 8, 16, 16], "norm_num_groups": 4, "attention_head_dim": [1, 2, 4, 4],
        "cross_attention_dim": 16, "layers_per_block": 2, "use_linear_projection": True, "upcast_attention": True,
        "conditioning_embedding_out_channels": [4, 8, 16]},
     "SD 2.x ControlNets (thibaud/controlnet-sd21-*): use_linear_projection, upcast_attention, attention_head_dim per "
     "block [1, 2, 4, 4] (as SD 2.1's [5, 10, 20, 20] heads; the mid block takes the last), "
     "a 3-entry conditioning embedding"),
    ("sdxl-text-time", {
        "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
        "block_out_channels": [8, 8, 16], "norm_num_groups": 2, "attention_head_dim": [1, 2, 2],
        "cross_attention_dim": 12, "transformer_layers_per_block": [1, 2, 3], "use_linear_projection": True,
        "upcast_attention": None, "addition_embed_type": "text_time", "addition_time_embed_dim": 4,
        "projection_class_embeddings_input_dim": 32, "conditioning_embedding_out_channels": [4, 8, 16]},
     "SDXL ControlNets (diffusers/controlnet-*-sdxl-1.0): DownBlock2D then two cross-attention blocks, "
     "transformer_layers_per_block [1, 2, 3] (the mid block takes 3), linear projections, upcast_attention null as SDXL "
     "configs write it, addition_embed_type \"text_time\" (text_embeds of 8 and 6 time ids through add_time_proj of 4 "
     "and add_embedding: projection_class_embeddings_input_dim 32)"),
    ("sdxl-depth0", {
        "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
        "block_out_channels": [8, 8, 16], "norm_num_groups": 2, "attention_head_dim": [1, 2, 2],
        "cross_attention_dim": 12, "transformer_layers_per_block": [0, 0, 1], "use_linear_projection": True,
        "addition_embed_type": "text_time", "addition_time_embed_dim": 4, "projection_class_embeddings_input_dim": 28,
        "conditioning_embedding_out_channels": [4, 8]},
     "the reduced SDXL ControlNets' transformer_layers_per_block [0, 0, 1] (diffusers/controlnet-*-sdxl-1.0-small / -mid "
     "style): the cross-attention down blocks keep their Transformer2DModel with no transformer block (GroupNorm, "
     "proj_in, proj_out and the residual), the mid block one; text_embeds of 4"),
    ("global-pool", dict(SD15, block_out_channels=[8, 8], down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"],
                         global_pool_conditions=True, conditioning_embedding_out_channels=[4, 8]),
     "global_pool_conditions (lllyasviel/control_v11e_sd15_shuffle): every residual averaged over height and width to "
     "(B, C, 1, 1); guess mode does not change the scaling then"),
    ("heads-onlycross-mid2d", {
        "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D"], "block_out_channels": [8, 16],
        "norm_num_groups": 2, "attention_head_dim": 8, "num_attention_heads": [2, 4], "only_cross_attention": [True, False],
        "cross_attention_dim": 6, "layers_per_block": 1, "mid_block_type": "UNetMidBlock2D", "act_fn": "mish",
        "resnet_time_scale_shift": "scale_shift", "mid_block_scale_factor": 1.414, "downsample_padding": 0,
        "flip_sin_to_cos": False, "freq_shift": 1, "norm_eps": 1e-6, "in_channels": 5, "conditioning_channels": 1,
        "conditioning_embedding_out_channels": [4]},
     "num_attention_heads [2, 4] (ControlNetModel takes it; attention_head_dim then unused), only_cross_attention per "
     "block [true, false], mid_block_type UNetMidBlock2D (one resnet, no attention), act_fn mish, scale_shift resnets, "
     "mid_block_scale_factor 1.414, downsample_padding 0, flip_sin_to_cos false with freq_shift 1, 5 input channels, "
     "a 1-channel control image, a 1-entry conditioning embedding (no stride: control image at latent size)"),
    ("class-timestep", dict(SD15, block_out_channels=[8, 8], down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"],
                            class_embed_type="timestep", conditioning_embedding_out_channels=[4, 8]),
     "class_embed_type \"timestep\" (class labels through time_proj and a second TimestepEmbedding, SiLU)"),
    ("class-projection", dict(SD15, block_out_channels=[8, 8], down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"],
                              class_embed_type="projection", projection_class_embeddings_input_dim=5,
                              conditioning_embedding_out_channels=[4, 8]),
     "class_embed_type \"projection\" (class_labels are (B, 5) vectors through a TimestepEmbedding)"),
    ("class-identity-nested-depths", dict(SD15, block_out_channels=[8, 8], down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
                                          class_embed_type="identity", transformer_layers_per_block=[1, [2, 1]],
                                          act_fn="gelu", conditioning_embedding_out_channels=[4, 8]),
     "class_embed_type \"identity\" (class_labels are (B, 4 * block_out_channels[0]) embeddings added as they are), "
     "transformer_layers_per_block [1, [2, 1]] (a depth per attention layer of down block 1, as asymmetric UNets write it; "
     "the mid block takes the first entry of the last list, 2), act_fn gelu"),
    ("encoder-hid-dim-unused", dict(SD15, block_out_channels=[8, 8], down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"],
                                    encoder_hid_dim=10, act_fn="relu", conditioning_embedding_out_channels=[4, 8]),
     "encoder_hid_dim 10 (diffusers sets encoder_hid_dim_type \"text_proj\" and builds encoder_hid_proj, which 0.25.1's "
     "ControlNet forward never applies: the encoder hidden states keep cross_attention_dim), act_fn relu"),
    ("only-cross-attention-mask", dict(SD15, block_out_channels=[8, 8], down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
                                       only_cross_attention=True, mid_block_type="UNetMidBlock2D",
                                       conditioning_embedding_out_channels=[4, 8]),
     "only_cross_attention true with an attention_mask (ControlNetModel makes it the bias (1 - mask) * -10000 and hands it to "
     "the blocks as attention_mask: attn1, which attends to the encoder hidden states here; diffusers cannot apply it "
     "to a self-attention of another length, hence the UNetMidBlock2D mid block)"),
    ("attn-resnet-down-blocks", {
        "down_block_types": ["AttnDownBlock2D", "ResnetDownsampleBlock2D", "CrossAttnDownBlock2D"],
        "block_out_channels": [8, 8, 16], "norm_num_groups": 2, "attention_head_dim": [4, 8, 2], "norm_eps": 1e-6,
        "cross_attention_dim": 12, "layers_per_block": 2, "conditioning_embedding_out_channels": [4, 8]},
     "the other down blocks ControlNetModel's get_down_block builds: AttnDownBlock2D (self-attention with GroupNorm, "
     "biased q/k/v, residual; attention_head_dim[0] 4 is its head *dim*: 2 heads) and ResnetDownsampleBlock2D (its "
     "downsampler a resnet with down=True: 2x2 average pool), then a CrossAttnDownBlock2D (attention_head_dim[2] 2 heads, "
     "as the mid block); norm_eps 1e-6 (the self-attention's GroupNorm eps too)"),
    ("class-table", dict(SD15, block_out_channels=[8, 8], down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"],
                         num_class_embeds=3, conditioning_embedding_out_channels=[4, 8],
                         transformer_layers_per_block=[1, 1, 3], mid_block_scale_factor=1.414),
     "num_class_embeds 3 with class_embed_type null (an nn.Embedding table added to the time embedding); "
     "transformer_layers_per_block [1, 1, 3], longer than the two down blocks: diffusers reads entry i for down block i "
     "and the last, 3, for the cross-attention mid block; mid_block_scale_factor 1.414 (its resnets' output_scale_factor)"),
]

FROM_UNET = ("from-unet-sdxl", "tiny-sdxl/unet", dict(conditioning_embedding_out_channels=(4, 8)),
             "ControlNetModel.from_unet(tiny-sdxl's UNet, conditioning_embedding_out_channels=(4, 8)): config and "
             "conv_in / time_embedding / down_blocks / mid_block weights from the golden tiny-sdxl UNet; "
             "add_embedding, the conditioning embedding and the zero convolutions are seeded here (0.25.1's from_unet "
             "does not copy add_embedding)")


def variant_inputs(rng, cfg, batch, hw):
    n_down = len(cfg["conditioning_embedding_out_channels"]) - 1
    h, w = hw
    x = rng.standard_normal((batch, cfg["in_channels"], h, w)).astype(F32)
    ehs = rng.standard_normal((batch, 5, cfg["cross_attention_dim"])).astype(F32)
    cond = ((np.tanh(rng.standard_normal((batch, cfg["conditioning_channels"], h << n_down, w << n_down))) + 1) / 2).astype(F32)
    return x, ehs, cond


def make_cases(name, cfg, rng):
    """(case name, inputs dict, forward kwargs) per case."""
    cases = []
    sdxl = cfg["addition_embed_type"] == "text_time"
    ted = cfg["block_out_channels"][0] * 4

    def extra(batch):
        d = {}
        if sdxl:
            d["text_embeds"] = rng.standard_normal((batch, cfg["projection_class_embeddings_input_dim"]
                                                    - 6 * cfg["addition_time_embed_dim"])).astype(F32)
            d["time_ids"] = np.array([[64, 64, 0, 0, 64, 64], [48, 80, 8, 4, 64, 72]][:batch], dtype=F32)
        cet = cfg["class_embed_type"]
        if cet is None and cfg["num_class_embeds"] is not None:
            d["class_labels"] = np.array([2, 0][:batch], dtype=np.int64)
        elif cet == "timestep":
            d["class_labels"] = np.array([17, 640][:batch], dtype=np.int64)
        elif cet == "projection":
            d["class_labels"] = rng.standard_normal((batch, cfg["projection_class_embeddings_input_dim"])).astype(F32)
        elif cet == "identity":
            d["class_labels"] = rng.standard_normal((batch, ted)).astype(F32)
        return d

    hw = (8, 8)
    x, ehs, cond = variant_inputs(rng, cfg, 1, hw)
    cases.append(("t500", dict(sample=x, timestep=np.array(500, dtype=np.int64), encoder_hidden_states=ehs,
                               controlnet_cond=cond, **extra(1)), dict(conditioning_scale=1.0, guess_mode=False)))
    small = name == "sd15"     # three stride-2 steps: keep the control images small
    x, ehs, cond = variant_inputs(rng, cfg, 2, (4, 4) if small else (8, 4))
    cases.append(("batch2-guess0.7", dict(sample=x, timestep=np.array([981, 20], dtype=np.int64), encoder_hidden_states=ehs,
                                          controlnet_cond=cond, **extra(2)), dict(conditioning_scale=0.7, guess_mode=True)))
    if name in ("sd15", "sdxl-text-time", "global-pool", "sd21-linear-upcast"):
        x, ehs, cond = variant_inputs(rng, cfg, 2, (2, 4) if small else (4, 8))
        cases.append(("batch2-scale0.5-float-t", dict(sample=x, timestep=np.array(333.5, dtype=F32), encoder_hidden_states=ehs,
                                                      controlnet_cond=cond, **extra(2)),
                      dict(conditioning_scale=0.5, guess_mode=False)))
    if name == "only-cross-attention-mask":
        for case in cases:
            case[1]["attention_mask"] = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 0]][:case[1]["sample"].shape[0]], dtype=np.int64)
    if name == "sd15-bgr-lpb1-depth2":   # a control image of odd size: the stride-2 convolution gives 8x4 all the same
        x, ehs, _ = variant_inputs(rng, cfg, 1, (8, 4))
        cond = ((np.tanh(rng.standard_normal((1, 3, 15, 7))) + 1) / 2).astype(F32)
        cases.append(("odd-control-size", dict(sample=x, timestep=np.array([250], dtype=np.int64), encoder_hidden_states=ehs,
                                               controlnet_cond=cond), dict(conditioning_scale=1.3, guess_mode=False)))
    return cases


def run_case(P, cfg, inp, kw):
    added = {k: inp[k] for k in ("text_embeds", "time_ids") if k in inp} or None
    return controlnet_forward(P, cfg, inp["sample"].astype(CT), inp["timestep"], inp["encoder_hidden_states"].astype(CT),
                              inp["controlnet_cond"].astype(CT), kw["conditioning_scale"], inp.get("class_labels"), added,
                              kw["guess_mode"], attention_mask=inp.get("attention_mask"))


def write_folder(name, cfg, weights):
    d = os.path.join(HERE, name)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    out = {"_class_name": "ControlNetModel", "_diffusers_version": "0.25.1"}
    out.update(cfg)
    with open(os.path.join(d, "config.json"), "w") as f:
        f.write(json.dumps(out, indent=2, sort_keys=True) + "\n")
    write_safetensors(os.path.join(d, "diffusion_pytorch_model.safetensors"), weights, {"format": "pt"})


def main():
    print("validation against the golden data:")
    report = validate()
    tensors, index = {}, {"validation_max_abs_error": report, "variants": [], "cases": []}

    def add_case(name, cname, inp, kw, down, mid):
        cid = f"{name}/{cname}"
        for k, v in inp.items():
            tensors[f"{cid}/{k}"] = v
        for j, d in enumerate(down):
            tensors[f"{cid}/down_block_res_sample_{j}"] = d.astype(F32)
        tensors[f"{cid}/mid_block_res_sample"] = mid.astype(F32)
        index["cases"].append({"id": cid, "model": name, "conditioning_scale": kw["conditioning_scale"],
                               "guess_mode": kw["guess_mode"], "inputs": sorted(inp), "num_down": len(down)})
        lo = min(float(d.min()) for d in down + [mid])
        hi = max(float(d.max()) for d in down + [mid])
        print(f"  {cid}: {len(down)} down residuals, values in [{lo:.3f}, {hi:.3f}]")

    print("variants:")
    for vi, (name, over, note) in enumerate(VARIANTS):
        cfg = full_config(over)
        P = Params(seed=100 + vi)
        rng = np.random.RandomState(1000 + vi)
        for cname, inp, kw in make_cases(name, cfg, rng):
            down, mid = run_case(P, cfg, inp, kw)
            add_case(name, cname, inp, kw, down, mid)
        write_folder(name, cfg, P.weights())
        index["variants"].append({"name": name, "note": note})

    name, unet_dir, kwargs, note = FROM_UNET
    ucfg = json.load(open(os.path.join(GOLDEN, unet_dir, "config.json")))
    uw = read_safetensors(os.path.join(GOLDEN, unet_dir, "diffusion_pytorch_model.safetensors"))
    cfg = from_unet_config(ucfg, **kwargs)
    P = Params({k: v for k, v in uw.items() if k.startswith(FROM_UNET_PREFIXES)}, seed=200)
    rng = np.random.RandomState(2000)
    for cname, inp, kw in make_cases(name, cfg, rng):
        down, mid = run_case(P, cfg, inp, kw)
        add_case(name, cname, inp, kw, down, mid)
    P.check_all_used()
    # not a model folder: the config from_unet gives, and the weights from_unet does not take from the UNet
    d = os.path.join(HERE, name)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    with open(os.path.join(d, "expected_config.json"), "w") as f:
        f.write(json.dumps(dict({"_class_name": "ControlNetModel", "_diffusers_version": "0.25.1"}, **cfg), indent=2,
                           sort_keys=True) + "\n")
    write_safetensors(os.path.join(d, "not_from_unet.safetensors"),
                      {k: v for k, v in P.weights().items() if not k.startswith(FROM_UNET_PREFIXES)}, {"format": "pt"})
    index["variants"].append({"name": name, "note": note, "from_unet": unet_dir,
                              "from_unet_kwargs": {k: list(v) for k, v in kwargs.items()}})

    write_safetensors(os.path.join(HERE, "cases.safetensors"), tensors)
    with open(os.path.join(HERE, "cases.json"), "w") as f:
        f.write(json.dumps(index, indent=2) + "\n")
    size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(HERE) for f in fs)
    print(f"wrote {len(index['cases'])} cases of {len(index['variants'])} variants ({size} bytes in the folder)")


if __name__ == "__main__":
    main()
