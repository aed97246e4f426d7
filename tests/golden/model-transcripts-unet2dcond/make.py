#!/usr/bin/python3
"""numpy transcription of diffusers 0.25.1's UNet2DConditionModel forward (float64 maths on float32 weights/inputs).

Run as `/usr/bin/python3 make.py` in this folder. It first checks the transcription against the golden tiny-sd and
tiny-sdxl UNets (../tiny-sd/unet, ../tiny-sdxl/unet, outputs recorded by diffusers in ../tiny-sd-expected.safetensors
and ../tiny-sdxl-expected.safetensors) and stops if they differ by more than 2e-5; then it writes one diffusers-format
model folder per config variant (<variant>/config.json, <variant>/diffusion_pytorch_model.safetensors) and
expected.safetensors + expected.json (inputs and outputs of each variant). Deterministic: seeded numpy RNGs only.
"""
import functools
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.dirname(HERE)
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(GOLDEN, "transcripts-common"))
import torchlike  # noqa: E402
from torchlike import (F32, conv2d, downsample, group_norm, linear, read_safetensors, softplus_torch,  # noqa: E402
                       spatial_attention, timestep_embedding, transformer_2d, write_safetensors)

CT = np.float64   # compute dtype (float32 only to measure float32 noise, see README)

# Mish here takes torch's softplus (threshold 20) where the other transcriptions take logaddexp
act = functools.partial(torchlike.activation, softplus=softplus_torch)
resnet = functools.partial(torchlike.resnet, softplus=softplus_torch)
timestep_embedding_module = functools.partial(torchlike.timestep_embedding_module, softplus=softplus_torch)

# ----------------------------------------------------------------------------------------------- parameters


class Params(torchlike.NamedSeedParams):
    """Weights by diffusers name (torchlike.NamedSeedParams: stored ones, or made on first use with a seed), returned
    in CT, the compute dtype (float32 while main measures float32 noise)."""

    @property
    def compute_dtype(self):
        return CT


# ----------------------------------------------------------------------------------------------- ops (the shared ones: torchlike.py)


def fourier_projection(P, pre, t, size, flip_sin_to_cos):
    """embeddings.GaussianFourierProjection(size, set_W_to_weight=False, log=False): float32 steps as torch takes
    them for a float32 timestep tensor, x[:, None] * weight[None, :] * 2 * pi."""
    w = P.get(pre + ".weight", (size,), "embedding").astype(F32)
    arg = (np.asarray(t).astype(F32)[:, None] * w[None, :]).astype(F32)
    arg = (arg * F32(2)).astype(F32)
    arg = (arg * F32(np.pi)).astype(F32).astype(np.float64)
    parts = [np.cos(arg), np.sin(arg)] if flip_sin_to_cos else [np.sin(arg), np.cos(arg)]
    return np.concatenate(parts, -1).astype(F32).astype(CT)


# ----------------------------------------------------------------------------------------------- samplers


def upsample(P, pre, x, size=None):
    c, h, w = x.shape[1:]
    oh, ow = (2 * h, 2 * w) if size is None else size
    # torch nearest: src = floor(dst * (in / out)) in float32
    ih = np.minimum(np.floor(np.arange(oh, dtype=F32) * F32(h / oh)).astype(int), h - 1)
    iw = np.minimum(np.floor(np.arange(ow, dtype=F32) * F32(w / ow)).astype(int), w - 1)
    x = x[:, :, ih][:, :, :, iw]
    return conv2d(P, pre + ".conv", x, c, c, 3, padding=1)

# ----------------------------------------------------------------------------------------------- the UNet


def per_block(v, n):
    return list(v) if isinstance(v, list) else [v] * n


def unet_forward(P, cfg, sample, timestep, ehs, class_labels=None, timestep_cond=None, added=None, enc_mask=None,
                 attn_mask=None):
    c = dict(cfg)
    down_types, up_types = c["down_block_types"], c["up_block_types"]
    n = len(down_types)
    boc = c["block_out_channels"]
    assert c.get("num_attention_heads") is None
    heads = per_block(c.get("attention_head_dim", 8), n)
    cross = per_block(c.get("cross_attention_dim", 1280), n)
    lpb = per_block(c.get("layers_per_block", 2), n)
    tlpb = per_block(c.get("transformer_layers_per_block", 1), n)
    only_cross = per_block(c.get("only_cross_attention", False), n)
    groups = c.get("norm_num_groups", 32)
    eps = c.get("norm_eps", 1e-5)
    act_fn = c.get("act_fn", "silu")
    flip, shift = c.get("flip_sin_to_cos", True), c.get("freq_shift", 0)
    use_linear = c.get("use_linear_projection", False)
    ra = {"groups": groups, "eps": eps, "act": act_fn, "tss": c.get("resnet_time_scale_shift", "default")}
    # ResnetDownsampleBlock2D / ResnetUpsampleBlock2D get these two; get_down_block / get_up_block give no other block them
    rra = dict(ra, skip_time_act=c.get("resnet_skip_time_act", False), out_scale=c.get("resnet_out_scale_factor", 1.0))
    b = sample.shape[0]

    fwd_up_size = any(d % (2 ** (n - 1)) for d in sample.shape[-2:])
    if enc_mask is not None:
        enc_mask = ((1 - enc_mask.astype(CT)) * -10000.0)[:, None, :]
    if attn_mask is not None:
        attn_mask = ((1 - attn_mask.astype(CT)) * -10000.0)[:, None, :]
    masks = (attn_mask, enc_mask)
    x = sample
    if c.get("center_input_sample", False):
        x = 2 * x - 1.0

    # 1. time
    t = np.broadcast_to(np.asarray(timestep).reshape(-1), (b,))
    if c.get("time_embedding_type", "positional") == "fourier":
        ted = c.get("time_embedding_dim") or boc[0] * 2
        tin = ted
        time_proj = lambda v: fourier_projection(P, "time_proj", v, ted // 2, flip)
    else:
        ted = c.get("time_embedding_dim") or boc[0] * 4
        tin = boc[0]
        time_proj = lambda v: timestep_embedding(v, boc[0], flip, shift).astype(CT)
    t_emb = time_proj(t)
    emb = timestep_embedding_module(P, "time_embedding", t_emb, tin, ted, act_fn, c.get("timestep_post_act"),
                                    timestep_cond, c.get("time_cond_proj_dim"))
    cet = c.get("class_embed_type")
    class_emb = None
    if cet is None and c.get("num_class_embeds") is not None:
        class_emb = P.get("class_embedding.weight", (c["num_class_embeds"], ted), "embedding")[class_labels]
    elif cet == "timestep":
        class_emb = timestep_embedding_module(P, "class_embedding", time_proj(class_labels), tin, ted, act_fn)
    elif cet == "identity":
        class_emb = class_labels.astype(CT)
    elif cet == "projection":
        class_emb = timestep_embedding_module(P, "class_embedding", class_labels, c["projection_class_embeddings_input_dim"], ted)
    elif cet == "simple_projection":
        class_emb = linear(P, "class_embedding", class_labels, c["projection_class_embeddings_input_dim"], ted)
    if class_emb is not None:
        emb = np.concatenate([emb, class_emb], -1) if c.get("class_embeddings_concat", False) else emb + class_emb
    if c.get("addition_embed_type") == "text_time":
        text_embeds, time_ids = added["text_embeds"], added["time_ids"]
        te = timestep_embedding(time_ids.reshape(-1), c["addition_time_embed_dim"], flip, shift).astype(CT).reshape(text_embeds.shape[0], -1)
        add = np.concatenate([text_embeds, te], -1)
        emb = emb + timestep_embedding_module(P, "add_embedding", add, c["projection_class_embeddings_input_dim"], ted)
    if c.get("time_embedding_act_fn") is not None:
        emb = act(c["time_embedding_act_fn"], emb)
    if c.get("encoder_hid_dim") is not None:
        ehs = linear(P, "encoder_hid_proj", ehs, c["encoder_hid_dim"], cross[0])

    # 2. pre-process
    k = c.get("conv_in_kernel", 3)
    x = conv2d(P, "conv_in", x, c["in_channels"], boc[0], k, padding=(k - 1) // 2)

    # 3. down
    skips = [x]
    out_ch = boc[0]
    for i, typ in enumerate(down_types):
        out_ch = boc[i]
        pre = f"down_blocks.{i}"
        depths = tlpb[i] if isinstance(tlpb[i], list) else [tlpb[i]] * lpb[i]
        for j in range(lpb[i]):
            x = resnet(P, f"{pre}.resnets.{j}", x, emb, out_ch, rra if typ == "ResnetDownsampleBlock2D" else ra)
            if typ == "CrossAttnDownBlock2D":
                x = transformer_2d(P, f"{pre}.attentions.{j}", x, ehs, heads[i], depths[j], cross[i], groups, use_linear,
                                   only_cross[i], *masks)
            elif typ == "ResnetDownsampleBlock2D":
                pass
            else:
                assert typ == "DownBlock2D", typ
            skips.append(x)
        if i < n - 1:
            if typ == "ResnetDownsampleBlock2D":
                x = resnet(P, f"{pre}.downsamplers.0", x, emb, out_ch, rra, "down")
            else:
                x = downsample(P, f"{pre}.downsamplers.0", x, c.get("downsample_padding", 1))
            skips.append(x)

    # 4. mid
    mid = c.get("mid_block_type", "UNetMidBlock2DCrossAttn")
    ma = dict(ra, out_scale=c.get("mid_block_scale_factor", 1))
    if mid == "UNetMidBlock2DCrossAttn":
        d = tlpb[-1][0] if isinstance(tlpb[-1], list) else tlpb[-1]
        x = resnet(P, "mid_block.resnets.0", x, emb, boc[-1], ma)
        x = transformer_2d(P, "mid_block.attentions.0", x, ehs, heads[-1], d, cross[-1], groups, use_linear, False, *masks)
        x = resnet(P, "mid_block.resnets.1", x, emb, boc[-1], ma)
    elif mid == "UNetMidBlock2D":
        x = resnet(P, "mid_block.resnets.0", x, emb, boc[-1], ma)
    else:
        assert mid is None, mid

    # 5. up
    rboc, rheads, rlpb, rcross = boc[::-1], heads[::-1], lpb[::-1], cross[::-1]
    rtlpb = c.get("reverse_transformer_layers_per_block") or tlpb[::-1]
    ronly = only_cross[::-1]
    for i, typ in enumerate(up_types):
        pre = f"up_blocks.{i}"
        out_ch = rboc[i]
        nl = rlpb[i] + 1
        depths = rtlpb[i] if isinstance(rtlpb[i], list) else [rtlpb[i]] * nl
        for j in range(nl):
            res = skips.pop()
            x = np.concatenate([x, res], 1)
            x = resnet(P, f"{pre}.resnets.{j}", x, emb, out_ch, rra if typ == "ResnetUpsampleBlock2D" else ra)
            if typ == "CrossAttnUpBlock2D":
                x = transformer_2d(P, f"{pre}.attentions.{j}", x, ehs, rheads[i], depths[j], rcross[i], groups, use_linear,
                                   ronly[i], *masks)
            elif typ == "AttnUpBlock2D":
                # get_up_block gets attention_head_dim[i] of the down order (not reversed) as the head *dim* here
                x = spatial_attention(P, f"{pre}.attentions.{j}", x, heads[i], groups, eps)
            else:
                assert typ in ("UpBlock2D", "ResnetUpsampleBlock2D"), typ
        if i < n - 1:
            if typ == "ResnetUpsampleBlock2D":
                x = resnet(P, f"{pre}.upsamplers.0", x, emb, out_ch, rra, "up")
            else:   # AttnUpBlock2D / ResnetUpsampleBlock2D upsample x2 whatever the skip sizes; the others to them
                size = skips[-1].shape[2:] if fwd_up_size and typ != "AttnUpBlock2D" else None
                x = upsample(P, f"{pre}.upsamplers.0", x, size)

    # 6. post-process
    x = group_norm(P, "conv_norm_out", x, groups, eps)
    x = act(act_fn, x)
    k = c.get("conv_out_kernel", 3)
    x = conv2d(P, "conv_out", x, boc[0], c["out_channels"], k, padding=(k - 1) // 2)
    return x

# ----------------------------------------------------------------------------------------------- validation


def validate():
    """The golden tiny-sd and tiny-sdxl UNets against diffusers' recorded outputs."""
    errors = {}
    sd = read_safetensors(os.path.join(GOLDEN, "tiny-sd-expected.safetensors"))
    cfg = json.load(open(os.path.join(GOLDEN, "tiny-sd/unet/config.json")))
    P = Params(read_safetensors(os.path.join(GOLDEN, "tiny-sd/unet/diffusion_pytorch_model.safetensors")))
    x, e = sd["unet/x"].astype(np.float64), sd["unet/encoder_hidden_states"].astype(np.float64)
    for t in (500, 1, 999):
        out = unet_forward(P, cfg, x, t, e)
        errors[f"tiny-sd unet/t{t}/out"] = out - sd[f"unet/t{t}/out"]
    P.check_all_used()
    out = unet_forward(P, cfg, sd["unet/x_batch2"].astype(np.float64), sd["unet/batch2/timestep"],
                       sd["unet/encoder_hidden_states_batch2"].astype(np.float64))
    errors["tiny-sd unet/batch2/out"] = out - sd["unet/batch2/out"]

    xl = read_safetensors(os.path.join(GOLDEN, "tiny-sdxl-expected.safetensors"))
    cfg = json.load(open(os.path.join(GOLDEN, "tiny-sdxl/unet/config.json")))
    P = Params(read_safetensors(os.path.join(GOLDEN, "tiny-sdxl/unet/diffusion_pytorch_model.safetensors")))
    for key, t in (("unet", 500), ("unet/batch2", None)):
        g = "unet/" if key == "unet" else "unet/batch2/"
        ts = 500 if t else xl["unet/batch2/timestep"]
        out = unet_forward(P, cfg, xl[g + "x"].astype(np.float64), ts, xl[g + "encoder_hidden_states"].astype(np.float64),
                           added={"text_embeds": xl[g + "text_embeds"].astype(np.float64), "time_ids": xl[g + "time_ids"]})
        errors[f"tiny-sdxl {key}/{'t500/' if t else ''}out"] = out - xl[(g + "t500/out") if t else g + "out"]
    P.check_all_used()
    rcfg = json.load(open(os.path.join(GOLDEN, "tiny-sdxl-refiner/unet/config.json")))
    P = Params(read_safetensors(os.path.join(GOLDEN, "tiny-sdxl-refiner/unet/diffusion_pytorch_model.safetensors")))
    g = "refiner_unet/"
    out = unet_forward(P, rcfg, xl[g + "x"].astype(np.float64), 300, xl[g + "encoder_hidden_states"].astype(np.float64),
                       added={"text_embeds": xl[g + "text_embeds"].astype(np.float64), "time_ids": xl[g + "time_ids"]})
    errors["tiny-sdxl-refiner refiner_unet/t300/out"] = out - xl[g + "t300/out"]
    P.check_all_used()
    report = {k: float(np.abs(v).max()) for k, v in errors.items()}
    for k, v in report.items():
        print(f"  {k}: max abs error {v:.2e}")
    worst = max(report.values())
    if worst > 2e-5:
        sys.exit(f"transcription does not reproduce the golden UNets (max abs error {worst:.2e})")
    return report


# ----------------------------------------------------------------------------------------------- variants

# every __init__ key of diffusers 0.25.1's UNet2DConditionModel, as save_pretrained writes them, at tiny sizes
BASE = {
    "_class_name": "UNet2DConditionModel", "_diffusers_version": "0.25.1",
    "act_fn": "silu", "addition_embed_type": None, "addition_embed_type_num_heads": 64,
    "addition_time_embed_dim": None, "attention_head_dim": 2, "attention_type": "default",
    "block_out_channels": [4, 8], "center_input_sample": False, "class_embed_type": None,
    "class_embeddings_concat": False, "conv_in_kernel": 3, "conv_out_kernel": 3, "cross_attention_dim": 6,
    "cross_attention_norm": None, "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
    "downsample_padding": 1, "dropout": 0.0, "dual_cross_attention": False, "encoder_hid_dim": None,
    "encoder_hid_dim_type": None, "flip_sin_to_cos": True, "freq_shift": 0, "in_channels": 4,
    "layers_per_block": 1, "mid_block_only_cross_attention": None, "mid_block_scale_factor": 1,
    "mid_block_type": "UNetMidBlock2DCrossAttn", "norm_eps": 1e-05, "norm_num_groups": 2,
    "num_attention_heads": None, "num_class_embeds": None, "only_cross_attention": False, "out_channels": 4,
    "projection_class_embeddings_input_dim": None, "resnet_out_scale_factor": 1.0, "resnet_skip_time_act": False,
    "resnet_time_scale_shift": "default", "reverse_transformer_layers_per_block": None, "sample_size": 8,
    "time_cond_proj_dim": None, "time_embedding_act_fn": None, "time_embedding_dim": None,
    "time_embedding_type": "positional", "timestep_post_act": None, "transformer_layers_per_block": 1,
    "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"], "upcast_attention": False,
    "use_linear_projection": False,
}
CROSS2 = {"down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
          "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]}

# (name, what it covers, config overrides, cases: (case name, input options))
VARIANTS = [
    ("sd2-linear-headlist-upcast",
     "SD 2.x: use_linear_projection, attention_head_dim per block (the head count; reversed for the up blocks), "
     "upcast_attention; a case with encoder_attention_mask",
     dict(CROSS2, use_linear_projection=True, attention_head_dim=[2, 4], upcast_attention=True),
     [("t500", {}), ("masked", {"mask": True, "timestep": [37, 801]})]),
    ("sd1-lists",
     "SD 1.x conv projection with attention_head_dim [4, 2], layers_per_block [1, 2], cross_attention_dim [6, 6], "
     "transformer_layers_per_block 2; a case with encoder_attention_mask",
     dict(CROSS2, attention_head_dim=[4, 2], layers_per_block=[1, 2], cross_attention_dim=[6, 6],
          transformer_layers_per_block=2),
     [("t500", {}), ("masked", {"mask": True})]),
    ("x4-upscaler-like",
     "SD x4 upscaler layout: in_channels 7, num_class_embeds (class_embed_type null: an nn.Embedding of the noise "
     "level), only_cross_attention per block [true, false] (reversed for the up blocks), linear projection",
     dict(CROSS2, in_channels=7, num_class_embeds=10, only_cross_attention=[True, False], use_linear_projection=True,
          attention_head_dim=2),
     [("t500", {"class_labels": "int10"})]),
    ("only-cross-all",
     "only_cross_attention true for every block (the mid block keeps self-attention)",
     dict(CROSS2, only_cross_attention=True),
     [("t500", {})]),
    ("lcm-time-cond",
     "LCM: time_cond_proj_dim with a timestep_cond (guidance embedding), fractional timestep",
     dict(time_cond_proj_dim=6),
     [("t500", {"timestep_cond": 6}), ("t250_5", {"timestep_cond": 6, "timestep": 250.5})]),
    ("sdxl-nested-depths",
     "SDXL text_time added embedding with per-layer transformer_layers_per_block lists and "
     "reverse_transformer_layers_per_block, odd sample size (9x11: the up path upsamples to the skip sizes)",
     dict(CROSS2, use_linear_projection=True, attention_head_dim=[2, 4], addition_embed_type="text_time",
          addition_time_embed_dim=4, projection_class_embeddings_input_dim=10 + 6 * 4, layers_per_block=2,
          transformer_layers_per_block=[[1, 2], [2, 1]], reverse_transformer_layers_per_block=[[2, 1, 1], [1, 2, 1]],
          cross_attention_dim=6),
     [("t500", {"text_time": (10, 6), "size": (9, 11)})]),
    ("class-timestep-noflip",
     "class_embed_type timestep (class labels through time_proj), flip_sin_to_cos false, freq_shift 1",
     dict(class_embed_type="timestep", flip_sin_to_cos=False, freq_shift=1),
     [("t500", {"class_labels": "timesteps"})]),
    ("class-projection",
     "class_embed_type projection (a TimestepEmbedding of projection_class_embeddings_input_dim), as Stable unCLIP",
     dict(class_embed_type="projection", projection_class_embeddings_input_dim=6),
     [("t500", {"class_labels": 6})]),
    ("class-simple-projection-concat",
     "class_embed_type simple_projection with class_embeddings_concat (blocks get a time embedding twice as wide)",
     dict(class_embed_type="simple_projection", projection_class_embeddings_input_dim=5, class_embeddings_concat=True),
     [("t500", {"class_labels": 5})]),
    ("class-identity",
     "class_embed_type identity (class labels of the time embedding's width added as they are)",
     dict(class_embed_type="identity"),
     [("t500", {"class_labels": 16})]),
    ("scale-shift-mish",
     "resnet_time_scale_shift scale_shift, act_fn mish, time_embedding_act_fn gelu, timestep_post_act silu, "
     "norm_eps 1e-6, mid_block_scale_factor 1.5",
     dict(resnet_time_scale_shift="scale_shift", act_fn="mish", time_embedding_act_fn="gelu", timestep_post_act="silu",
          norm_eps=1e-6, mid_block_scale_factor=1.5),
     [("t500", {})]),
    ("kernels-mid2d-gelu",
     "conv_in_kernel 1, conv_out_kernel 5, time_embedding_dim 24, mid_block_type UNetMidBlock2D, downsample_padding 0, "
     "center_input_sample, act_fn gelu, norm_num_groups 4",
     dict(conv_in_kernel=1, conv_out_kernel=5, time_embedding_dim=24, mid_block_type="UNetMidBlock2D",
          downsample_padding=0, center_input_sample=True, act_fn="gelu", norm_num_groups=4),
     [("t500", {})]),
    ("text-proj-no-mid",
     "encoder_hid_dim 20 (encoder_hid_dim_type null becomes text_proj: a Linear to cross_attention_dim), "
     "mid_block_type null",
     dict(encoder_hid_dim=20, mid_block_type=None),
     [("t500", {"ehs_dim": 20})]),
    ("ignored-options",
     "options diffusers passes only to blocks this UNet does not have (DownBlock2D / CrossAttn*Block2D / the "
     "CrossAttn mid block ignore them): resnet_out_scale_factor 2, resnet_skip_time_act, cross_attention_norm "
     "layer_norm, mid_block_only_cross_attention true, dropout 0.1 (eval)",
     dict(resnet_out_scale_factor=2.0, resnet_skip_time_act=True, cross_attention_norm="layer_norm",
          mid_block_only_cross_attention=True, dropout=0.1),
     [("t500", {})]),
    ("self-attention-mask",
     "attention_mask (B, H*W) on the self-attention, with and without encoder_attention_mask: attention only at full "
     "resolution (CrossAttnDownBlock2D + DownBlock2D, mid_block_type null), where one mask fits every attn1",
     dict(down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"], up_block_types=["UpBlock2D", "CrossAttnUpBlock2D"],
          mid_block_type=None),
     [("self_mask", {"self_mask": True}), ("both_masks", {"self_mask": True, "mask": True})]),
    ("attn-up-block",
     "AttnUpBlock2D after a CrossAttnUpBlock2D, attention_head_dim [2, 4]: get_up_block hands AttnUpBlock2D "
     "attention_head_dim[i] of the down order (not reversed; here 4: 1 head of 4 channels) as a head *dim*, "
     "and the CrossAttnUpBlock2D the reversed head count (4)",
     dict(up_block_types=["CrossAttnUpBlock2D", "AttnUpBlock2D"], attention_head_dim=[2, 4]),
     [("t500", {})]),
    ("resnet-sampling-blocks",
     "ResnetDownsampleBlock2D (avg-pool resnet downsampler) and ResnetUpsampleBlock2D (nearest resnet upsampler) with "
     "resnet_skip_time_act, resnet_out_scale_factor 1.5 and resnet_time_scale_shift scale_shift (the blocks of IF / "
     "unCLIP decoders; the CrossAttn blocks ignore the two resnet_* options)",
     dict(down_block_types=["ResnetDownsampleBlock2D", "CrossAttnDownBlock2D"],
          up_block_types=["ResnetUpsampleBlock2D", "CrossAttnUpBlock2D"], resnet_skip_time_act=True,
          resnet_out_scale_factor=1.5, resnet_time_scale_shift="scale_shift"),
     [("t500", {})]),
    ("fourier-time",
     "time_embedding_type fourier (GaussianFourierProjection of time_embedding_dim / 2 frequencies, weight "
     "time_proj.weight) with class_embed_type timestep (class labels through the same projection), flip_sin_to_cos "
     "false, sigma-like float timesteps",
     dict(time_embedding_type="fourier", time_embedding_dim=12, class_embed_type="timestep", flip_sin_to_cos=False),
     [("sigmas", {"timestep": [0.05, 0.4], "class_labels": "sigmas"})]),
]


def make_case(rng, cfg, opts):
    b, s = 2, 5
    h, w = opts.get("size", (8, 8))
    f = lambda *shape: rng.standard_normal(shape).astype(F32)
    inp = {"sample": f(b, cfg["in_channels"], h, w),
           "encoder_hidden_states": f(b, s, opts.get("ehs_dim", per_block(cfg["cross_attention_dim"], 1)[0]))}
    t = opts.get("timestep", 500)
    if isinstance(t, float) or (isinstance(t, list) and isinstance(t[0], float)):
        inp["timestep"] = np.array(t if isinstance(t, list) else [t], dtype=F32)
    else:
        inp["timestep"] = np.array(t if isinstance(t, list) else [t], dtype=np.int64)
    cl = opts.get("class_labels")
    if cl == "int10":
        inp["class_labels"] = np.array([3, 7], dtype=np.int64)
    elif cl == "timesteps":
        inp["class_labels"] = np.array([20, 700], dtype=np.int64)
    elif cl == "sigmas":
        inp["class_labels"] = np.array([0.1, 0.7], dtype=F32)
    elif cl is not None:
        inp["class_labels"] = f(b, cl)
    if "timestep_cond" in opts:
        inp["timestep_cond"] = f(b, opts["timestep_cond"])
    if "text_time" in opts:
        te, ti = opts["text_time"]
        inp["text_embeds"] = f(b, te)
        inp["time_ids"] = np.array([[9, 11, 0, 0, 9, 11], [18, 22, 2, 1, 9, 11]], dtype=F32)
    if opts.get("mask"):
        inp["encoder_attention_mask"] = np.array([[1, 1, 1, 0, 0], [1, 0, 1, 1, 1]], dtype=np.int64)
    if opts.get("self_mask"):   # (B, H*W): keep the left 5 columns of the first sample, all but the top row of the second
        inp["attention_mask"] = np.stack([np.tile(np.arange(w) < 5, h), np.arange(h * w) >= w]).astype(np.int64)
    return inp


def run_case(P, cfg, inp):
    d = lambda k: inp[k].astype(CT) if k in inp and inp[k].dtype == F32 else inp.get(k)
    added = {"text_embeds": d("text_embeds"), "time_ids": d("time_ids")} if "text_embeds" in inp else None
    return unet_forward(P, cfg, d("sample"), inp["timestep"].astype(np.float64), d("encoder_hidden_states"),
                        class_labels=d("class_labels"), timestep_cond=d("timestep_cond"), added=added,
                        enc_mask=inp.get("encoder_attention_mask"), attn_mask=inp.get("attention_mask"))


def main():
    print("validating against the golden UNets:")
    report = validate()
    tensors, index = {}, {"validation_max_abs_error": report, "variants": {}}
    for vi, (name, what, overrides, cases) in enumerate(VARIANTS):
        cfg = dict(BASE, **overrides)
        P = Params(seed=vi + 1)
        rng = np.random.RandomState(1000 + vi)
        entry = {"covers": what, "cases": {}}
        for case, opts in cases:
            inp = make_case(rng, cfg, opts)
            out = run_case(P, cfg, inp)
            global CT
            CT = np.float32       # the same pass in numpy float32: how far float32 rounding alone moves this case
            noise = float(np.abs(run_case(Params(P.made), cfg, inp) - out).max())
            CT = np.float64
            for k, v in inp.items():
                tensors[f"{name}/{case}/{k}"] = v
            tensors[f"{name}/{case}/out"] = out.astype(F32)
            entry["cases"][case] = {"inputs": sorted(inp), "out_abs_max": float(np.abs(out).max()),
                                    "out_std": float(out.std()), "float32_noise": noise}
        os.makedirs(os.path.join(HERE, name), exist_ok=True)
        with open(os.path.join(HERE, name, "config.json"), "w") as fh:
            json.dump(cfg, fh, indent=2, sort_keys=True)
            fh.write("\n")
        write_safetensors(os.path.join(HERE, name, "diffusion_pytorch_model.safetensors"), P.made, {"format": "pt"})
        entry["num_parameters"] = int(sum(a.size for a in P.made.values()))
        index["variants"][name] = entry
        print(f"  {name}: {entry['num_parameters']} parameters, "
              + ", ".join(f"{c}: |out| max {e['out_abs_max']:.2f}, float32 noise {e['float32_noise']:.1e}" for c, e in entry["cases"].items()))
    write_safetensors(os.path.join(HERE, "expected.safetensors"), tensors)
    with open(os.path.join(HERE, "expected.json"), "w") as fh:
        json.dump(index, fh, indent=2, sort_keys=True)
        fh.write("\n")


if __name__ == "__main__":
    main()
