#!/usr/bin/python3
"""UNet2DModel and AutoencoderKL config variants for diffusers 0.25.1, made without torch.

A numpy transcription of diffusers 0.25.1's UNet2DModel forward (src/diffusers/models/unet_2d.py,
unet_2d_blocks.py, resnet.py, upsampling.py, downsampling.py, attention_processor.py, embeddings.py at tag
v0.25.1) and of AutoencoderKL's encode / decode (models/autoencoders/autoencoder_kl.py, vae.py). The networks run in
float64 on float32 weights and inputs; the timestep embeddings (sinusoidal and Gaussian Fourier) are computed in
float32 operation by operation as torch does (their arguments reach ~1e3, where float32 rounding of the argument is
visible in the output), then widened.

It is validated first on the golden tiny-ddpm UNet (README section A: every case of unet/* in
tiny-ddpm-expected.safetensors and the t=500 intermediates) and the golden tiny-sd VAE (section C: encode, decode,
reconstruct and their intermediates); the script prints, and fails on, the errors.

Then it builds the variants of VARIANTS and VAE_VARIANTS below (seeded random weights, a diffusers folder each with
config.json and diffusion_pytorch_model.safetensors) and writes their inputs and outputs to cases.safetensors,
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
from torchlike import (F32, SequentialParams as Params, activation, check_intermediates, conv2d,  # noqa: E402
                       downsample, err, group_norm, linear, read_safetensors, silu, spatial_attention,
                       timestep_embedding, timestep_embedding_module, upsample_nearest2x, write_safetensors)


# ---------------------------------------------------------------- layers (float64; the shared ones: torchlike.py)

def avg_pool2x(x):
    """AvgPool2d(2, 2) as a mean over each 2x2 window (odd sizes cropped); not torchlike.avg_pool2's sum of four."""
    n, c, h, w = x.shape
    return x[:, :, :h // 2 * 2, :w // 2 * 2].reshape(n, c, h // 2, 2, w // 2, 2).mean(axis=(3, 5))


# ---------------------------------------------------------------- embeddings (float32 as torch)

def gaussian_fourier(P, name, x, size):
    # GaussianFourierProjection(embedding_size, scale=16), set_W_to_weight=True, log=True, flip_sin_to_cos=False
    w = P.get(name + ".W", (size,), "fourier").astype(F32)
    x = np.log(np.asarray(x).astype(F32)).astype(F32)
    proj = ((x[:, None] * w[None, :]).astype(F32) * F32(2)).astype(F32)
    proj = (proj * F32(np.pi)).astype(F32)
    p64 = proj.astype(np.float64)
    return np.concatenate([np.sin(p64), np.cos(p64)], axis=-1).astype(F32)


# ---------------------------------------------------------------- blocks

def resnet(P, name, x, temb, cin, cout, groups, eps, act, tss, osf=1.0, up=False, down=False):
    h = activation(act, group_norm(P, name + ".norm1", x, groups, eps))
    if up:
        x = upsample_nearest2x(x)
        h = upsample_nearest2x(h)
    elif down:
        x = avg_pool2x(x)
        h = avg_pool2x(h)
    h = conv2d(P, name + ".conv1", h, cin, cout, 3, padding=1)
    t = None
    if temb is not None:
        tch = temb.shape[1]
        t = linear(P, name + ".time_emb_proj", activation(act, temb), tch, cout * (2 if tss == "scale_shift" else 1))
        t = t[:, :, None, None]
    if t is not None and tss == "default":
        h = h + t
    h = group_norm(P, name + ".norm2", h, groups, eps)
    if t is not None and tss == "scale_shift":
        s, b = t[:, :cout], t[:, cout:]
        h = h * (1 + s) + b
    h = conv2d(P, name + ".conv2", activation(act, h), cout, cout, 3, padding=1)
    if cin != cout:
        x = conv2d(P, name + ".conv_shortcut", x, cin, cout, 1)
    return (x + h) / osf


def down_block(P, name, kind, x, temb, cin, cout, cfg, add_down):
    g, eps, act, tss = cfg["norm_num_groups"], cfg["norm_eps"], cfg["act_fn"], cfg["resnet_time_scale_shift"]
    hd = cfg["attention_head_dim"] if cfg["attention_head_dim"] is not None else cout
    states = []
    for i in range(cfg["layers_per_block"]):
        x = resnet(P, f"{name}.resnets.{i}", x, temb, cin if i == 0 else cout, cout, g, eps, act, tss)
        if kind == "AttnDownBlock2D":
            x = spatial_attention(P, f"{name}.attentions.{i}", x, hd, g, eps)
        states.append(x)
    if add_down:
        resnet_down = kind == "ResnetDownsampleBlock2D" or (kind == "AttnDownBlock2D" and cfg["downsample_type"] == "resnet")
        if resnet_down:
            x = resnet(P, f"{name}.downsamplers.0", x, temb, cout, cout, g, eps, act, tss, down=True)
        else:
            x = downsample(P, f"{name}.downsamplers.0", x, cfg["downsample_padding"])
        states.append(x)
    return x, states


def up_block(P, name, kind, x, skips, temb, cin, prev, cout, cfg, add_up):
    g, eps, act, tss = cfg["norm_num_groups"], cfg["norm_eps"], cfg["act_fn"], cfg["resnet_time_scale_shift"]
    hd = cfg["attention_head_dim"] if cfg["attention_head_dim"] is not None else cout
    n = cfg["layers_per_block"] + 1
    for i in range(n):
        skip_ch = cin if i == n - 1 else cout
        rin = prev if i == 0 else cout
        x = np.concatenate([x, skips.pop()], axis=1)
        x = resnet(P, f"{name}.resnets.{i}", x, temb, rin + skip_ch, cout, g, eps, act, tss)
        if kind == "AttnUpBlock2D":
            x = spatial_attention(P, f"{name}.attentions.{i}", x, hd, g, eps)
    if add_up:
        resnet_up = kind == "ResnetUpsampleBlock2D" or (kind == "AttnUpBlock2D" and cfg["upsample_type"] == "resnet")
        if resnet_up:
            x = resnet(P, f"{name}.upsamplers.0", x, temb, cout, cout, g, eps, act, tss, up=True)
        else:
            x = conv2d(P, f"{name}.upsamplers.0.conv", upsample_nearest2x(x), cout, cout, 3, padding=1)
    return x


def mid_block(P, x, temb, ch, cfg):
    g, eps, act, tss = cfg["norm_num_groups"], cfg["norm_eps"], cfg["act_fn"], cfg["resnet_time_scale_shift"]
    osf = cfg["mid_block_scale_factor"]
    attn_groups = cfg["attn_norm_num_groups"]
    if attn_groups is None:
        attn_groups = g if tss == "default" else None
    x = resnet(P, "mid_block.resnets.0", x, temb, ch, ch, g, eps, act, tss, osf)
    if cfg["add_attention"]:
        hd = cfg["attention_head_dim"] if cfg["attention_head_dim"] is not None else ch
        x = spatial_attention(P, "mid_block.attentions.0", x, hd, attn_groups, eps, rescale=osf)
    return resnet(P, "mid_block.resnets.1", x, temb, ch, ch, g, eps, act, tss, osf)


DEFAULTS = dict(
    sample_size=None, in_channels=3, out_channels=3, center_input_sample=False, time_embedding_type="positional",
    freq_shift=0, flip_sin_to_cos=True,
    down_block_types=["DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"],
    up_block_types=["AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
    block_out_channels=[224, 448, 672, 896], layers_per_block=2, mid_block_scale_factor=1, downsample_padding=1,
    downsample_type="conv", upsample_type="conv", dropout=0.0, act_fn="silu", attention_head_dim=8,
    norm_num_groups=32, attn_norm_num_groups=None, norm_eps=1e-5, resnet_time_scale_shift="default",
    add_attention=True, class_embed_type=None, num_class_embeds=None, num_train_timesteps=None)


def unet2d(P, cfg, sample, timesteps, class_labels=None, hook=None):
    cfg = {**DEFAULTS, **cfg}
    boc = cfg["block_out_channels"]
    ted = boc[0] * 4
    x = np.asarray(sample, dtype=np.float64)
    if cfg["center_input_sample"]:
        x = 2 * x - 1.0
    n = x.shape[0]
    t = np.asarray(timesteps)
    if t.ndim == 0:
        t = t[None]
    t = t * np.ones(n, dtype=t.dtype)

    tet = cfg["time_embedding_type"]

    def time_proj(v):
        if tet == "fourier":
            return gaussian_fourier(P, "time_proj", v, boc[0])
        if tet == "positional":
            return timestep_embedding(v, boc[0], cfg["flip_sin_to_cos"], cfg["freq_shift"], exp_dtype=F32)
        return P.get("time_proj.weight", (cfg["num_train_timesteps"], boc[0]), "embedding")[np.asarray(v)].astype(F32)

    tin = 2 * boc[0] if tet == "fourier" else boc[0]
    t_emb = time_proj(t)
    if hook:
        hook("time_proj", t_emb)
    emb = timestep_embedding_module(P, "time_embedding", t_emb.astype(np.float64), tin, ted)
    if hook:
        hook("time_embedding", emb)

    cet = cfg["class_embed_type"]
    if cet is None and cfg["num_class_embeds"] is not None:
        emb = emb + P.get("class_embedding.weight", (cfg["num_class_embeds"], ted), "embedding")[np.asarray(class_labels)]
    elif cet == "timestep":
        emb = emb + timestep_embedding_module(P, "class_embedding", time_proj(class_labels).astype(np.float64), tin, ted)
    elif cet == "identity":
        emb = emb + np.asarray(class_labels, dtype=np.float64)

    x = conv2d(P, "conv_in", x, cfg["in_channels"], boc[0], 3, padding=1)
    if hook:
        hook("conv_in", x)
    skips = [x]
    out_ch = boc[0]
    for i, kind in enumerate(cfg["down_block_types"]):
        in_ch, out_ch = out_ch, boc[i]
        x, states = down_block(P, f"down_blocks.{i}", kind, x, emb, in_ch, out_ch, cfg, i < len(boc) - 1)
        skips += states
        if hook:
            hook(f"down_blocks.{i}", x)
    x = mid_block(P, x, emb, boc[-1], cfg)
    if hook:
        hook("mid_block", x)
    rev = list(reversed(boc))
    out_ch = rev[0]
    for i, kind in enumerate(cfg["up_block_types"]):
        prev, out_ch = out_ch, rev[i]
        in_ch = rev[min(i + 1, len(boc) - 1)]
        x = up_block(P, f"up_blocks.{i}", kind, x, skips, emb, in_ch, prev, out_ch, cfg, i < len(boc) - 1)
        if hook:
            hook(f"up_blocks.{i}", x)
    assert not skips
    x = group_norm(P, "conv_norm_out", x, cfg["norm_num_groups"], cfg["norm_eps"])
    if hook:
        hook("conv_norm_out", x)
    x = conv2d(P, "conv_out", silu(x), boc[0], cfg["out_channels"], 3, padding=1)
    if hook:
        hook("conv_out", x)
    if tet == "fourier":
        x = x / t.astype(np.float64).reshape(n, 1, 1, 1)
    return x


# ---------------------------------------------------------------- AutoencoderKL (autoencoder_kl.py, vae.py)

VAE_DEFAULTS = dict(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"],
                    up_block_types=["UpDecoderBlock2D"], block_out_channels=[64], layers_per_block=1, act_fn="silu",
                    latent_channels=4, norm_num_groups=32, sample_size=32, scaling_factor=0.18215, force_upcast=True)
VAE_EPS = 1e-6   # Encoder / Decoder: resnet_eps, the mid attention's eps and conv_norm_out's eps


def vae_mid(P, name, x, ch, groups, act):
    # UNetMidBlock2D(temb_channels=None, attention_head_dim=ch (one head), resnet_groups=attn_groups=groups)
    x = resnet(P, name + ".resnets.0", x, None, ch, ch, groups, VAE_EPS, act, "default")
    x = spatial_attention(P, name + ".attentions.0", x, ch, groups, VAE_EPS)
    return resnet(P, name + ".resnets.1", x, None, ch, ch, groups, VAE_EPS, act, "default")


def vae_encode(P, cfg, x, hook=None):
    cfg = {**VAE_DEFAULTS, **cfg}
    boc, g, act, nl = cfg["block_out_channels"], cfg["norm_num_groups"], cfg["act_fn"], cfg["layers_per_block"]
    lat = cfg["latent_channels"]
    h = conv2d(P, "encoder.conv_in", np.asarray(x, dtype=np.float64), cfg["in_channels"], boc[0], 3, padding=1)
    if hook:
        hook("encoder.conv_in", h)
    out = boc[0]
    for i in range(len(boc)):
        cin, out = out, boc[i]
        for j in range(nl):
            h = resnet(P, f"encoder.down_blocks.{i}.resnets.{j}", h, None, cin if j == 0 else out, out, g, VAE_EPS,
                       act, "default")
        if i < len(boc) - 1:   # Downsample2D(padding=0): pad right and bottom by one, then a stride-2 conv
            h = downsample(P, f"encoder.down_blocks.{i}.downsamplers.0", h, 0)
        if hook:
            hook(f"encoder.down_blocks.{i}", h)
    h = vae_mid(P, "encoder.mid_block", h, boc[-1], g, act)
    if hook:
        hook("encoder.mid_block", h)
    h = group_norm(P, "encoder.conv_norm_out", h, g, VAE_EPS)
    if hook:
        hook("encoder.conv_norm_out", h)
    h = conv2d(P, "encoder.conv_out", silu(h), boc[-1], 2 * lat, 3, padding=1)
    if hook:
        hook("encoder.conv_out", h)
    moments = conv2d(P, "quant_conv", h, 2 * lat, 2 * lat, 1)
    if hook:
        hook("quant_conv", moments)
    return moments


def posterior(moments):
    # DiagonalGaussianDistribution(moments)
    lat = moments.shape[1] // 2
    mean, logvar = moments[:, :lat], np.clip(moments[:, lat:], -30.0, 20.0)
    return dict(mean=mean, logvar=logvar, std=np.exp(0.5 * logvar), var=np.exp(logvar))


def blend_v(a, b, extent):
    extent = min(a.shape[2], b.shape[2], extent)
    for y in range(extent):
        b[:, :, y, :] = a[:, :, -extent + y, :] * F32(1 - y / extent) + b[:, :, y, :] * F32(y / extent)
    return b


def blend_h(a, b, extent):
    extent = min(a.shape[3], b.shape[3], extent)
    for x in range(extent):
        b[:, :, :, x] = a[:, :, :, -extent + x] * F32(1 - x / extent) + b[:, :, :, x] * F32(x / extent)
    return b


def tiled(x, tile_in, overlap, blend, row_limit, run):
    # AutoencoderKL.tiled_encode / tiled_decode: every tile first, then in-place blending row by row
    rows = [[run(x[:, :, i:i + tile_in, j:j + tile_in]) for j in range(0, x.shape[3], overlap)]
            for i in range(0, x.shape[2], overlap)]
    out_rows = []
    for i, row in enumerate(rows):
        out_row = []
        for j, tile in enumerate(row):
            if i > 0:
                tile = blend_v(rows[i - 1][j], tile, blend)
            if j > 0:
                tile = blend_h(row[j - 1], tile, blend)
            out_row.append(tile[:, :, :row_limit, :row_limit])
        out_rows.append(np.concatenate(out_row, axis=3))
    return np.concatenate(out_rows, axis=2)


def tile_sizes(cfg):
    cfg = {**VAE_DEFAULTS, **cfg}
    sample = cfg["sample_size"]
    latent = int(sample / (2 ** (len(cfg["block_out_channels"]) - 1)))
    return sample, latent, 0.25


def vae_tiled_encode(P, cfg, x):
    sample, latent, f = tile_sizes(cfg)
    blend = int(latent * f)
    return tiled(np.asarray(x, dtype=np.float64), sample, int(sample * (1 - f)), blend, latent - blend,
                 lambda t: vae_encode(P, cfg, t))


def vae_tiled_decode(P, cfg, z):
    sample, latent, f = tile_sizes(cfg)
    blend = int(sample * f)
    return tiled(np.asarray(z, dtype=np.float64), latent, int(latent * (1 - f)), blend, sample - blend,
                 lambda t: vae_decode(P, cfg, t))


def vae_decode(P, cfg, z, hook=None):
    cfg = {**VAE_DEFAULTS, **cfg}
    boc, g, act, nl = cfg["block_out_channels"], cfg["norm_num_groups"], cfg["act_fn"], cfg["layers_per_block"]
    lat = cfg["latent_channels"]
    z = conv2d(P, "post_quant_conv", np.asarray(z, dtype=np.float64), lat, lat, 1)
    if hook:
        hook("post_quant_conv", z)
    h = conv2d(P, "decoder.conv_in", z, lat, boc[-1], 3, padding=1)
    if hook:
        hook("decoder.conv_in", h)
    h = vae_mid(P, "decoder.mid_block", h, boc[-1], g, act)
    if hook:
        hook("decoder.mid_block", h)
    rev = list(reversed(boc))
    out = rev[0]
    for i in range(len(boc)):
        prev, out = out, rev[i]
        for j in range(nl + 1):
            h = resnet(P, f"decoder.up_blocks.{i}.resnets.{j}", h, None, prev if j == 0 else out, out, g, VAE_EPS,
                       act, "default")
        if i < len(boc) - 1:
            h = conv2d(P, f"decoder.up_blocks.{i}.upsamplers.0.conv", upsample_nearest2x(h), out, out, 3, padding=1)
        if hook:
            hook(f"decoder.up_blocks.{i}", h)
    h = group_norm(P, "decoder.conv_norm_out", h, g, VAE_EPS)
    if hook:
        hook("decoder.conv_norm_out", h)
    h = conv2d(P, "decoder.conv_out", silu(h), boc[0], cfg["out_channels"], 3, padding=1)
    if hook:
        hook("decoder.conv_out", h)
    return h


# ---------------------------------------------------------------- validation on golden A


def validate_tiny_ddpm():
    cfg = json.load(open(os.path.join(GOLDEN, "tiny-ddpm", "unet", "config.json")))
    cfg = {k: v for k, v in cfg.items() if not k.startswith("_")}
    w = read_safetensors(os.path.join(GOLDEN, "tiny-ddpm", "unet", "diffusion_pytorch_model.safetensors"))
    exp = read_safetensors(os.path.join(GOLDEN, "tiny-ddpm-expected.safetensors"))
    P = Params(w)
    worst = 0.0
    report = {}
    for case in ["t999", "t500", "t0", "t250_5_float", "batch2"]:
        x = exp["unet/x_batch2" if case == "batch2" else "unet/x"]
        t = exp[f"unet/{case}/timestep"]
        inter = {}
        out = unet2d(P, cfg, x, t, hook=lambda k, v: inter.__setitem__(k, v))
        a, r = err(out, exp[f"unet/{case}/out"])
        report[case] = (a, r)
        worst = max(worst, a)
        if case == "t500":
            for k, v in inter.items():
                key = f"unet/t500/intermediate/{k}"
                if key in exp:
                    a2, _ = err(v, exp[key])
                    report["t500/" + k] = (a2, None)
                    worst = max(worst, a2)
            up0 = inter["up_blocks.0"]
            a2, _ = err(up0[:, :, :8, :8], exp["unet/t500/intermediate/up_blocks.0#corner8"])
            worst = max(worst, a2)
    unused = set(w) - P.used
    assert not unused, unused
    for k, (a, r) in report.items():
        print(f"  tiny-ddpm {k}: max abs {a:.3e}" + (f", max rel {r:.3e}" if r is not None else ""))
    if worst > 2e-5:
        sys.exit(f"transcription does not reproduce tiny-ddpm: max abs error {worst:.3e}")
    return worst, report


def validate_tiny_sd_vae():
    cfg = json.load(open(os.path.join(GOLDEN, "tiny-sd", "vae", "config.json")))
    cfg = {k: v for k, v in cfg.items() if not k.startswith("_")}
    w = read_safetensors(os.path.join(GOLDEN, "tiny-sd", "vae", "diffusion_pytorch_model.safetensors"))
    exp = read_safetensors(os.path.join(GOLDEN, "tiny-sd-expected.safetensors"))
    P = Params(w)
    report, worst = {}, 0.0
    inter = {}
    post = posterior(vae_encode(P, cfg, exp["vae/image"], hook=lambda k, v: inter.__setitem__(k, v)))
    worst = max(worst, check_intermediates(exp, "vae/encode_intermediate/", inter, report))
    for k in ["mean", "std", "logvar", "var"]:
        report["vae/encode/" + k] = err(post[k], exp["vae/encode/" + k])
    inter = {}
    dec = vae_decode(P, cfg, exp["vae/z"], hook=lambda k, v: inter.__setitem__(k, v))
    worst = max(worst, check_intermediates(exp, "vae/decode_intermediate/", inter, report))
    report["vae/decode"] = err(dec, exp["vae/decode"])
    report["vae/reconstruct_mode"] = err(vae_decode(P, cfg, post["mean"]), exp["vae/reconstruct_mode"])
    worst = max([worst] + [a for a, _ in report.values()])
    unused = set(w) - P.used
    assert not unused, unused
    for k, (a, r) in report.items():
        print(f"  tiny-sd {k}: max abs {a:.3e}" + (f", max rel {r:.3e}" if r is not None else ""))
    if worst > 2e-5:
        sys.exit(f"transcription does not reproduce the tiny-sd VAE: max abs error {worst:.3e}")
    return worst, report


# ---------------------------------------------------------------- variants

VARIANTS = []


def variant(name, desc, config, cases, legacy_attention_names=False, fourier_both_keys=False):
    VARIANTS.append(dict(name=name, desc=desc, config=config, cases=cases,
                         legacy=legacy_attention_names, fourier_both=fourier_both_keys))


# google/ddpm-cifar10-32's layout (narrowed): attention_head_dim null (one head), downsample_padding 0,
# flip_sin_to_cos false + freq_shift 1, norm_eps 1e-6; weights saved with the pre-refactor attention names.
variant("ddpm-legacy", "google/ddpm-* layout: 3 levels, head dim null, downsample_padding 0, flip_sin_to_cos false, "
        "freq_shift 1, eps 1e-6, legacy query/key/value/proj_attn weight names",
        dict(sample_size=16, in_channels=3, out_channels=3, block_out_channels=[4, 8, 8], layers_per_block=2,
             down_block_types=["DownBlock2D", "AttnDownBlock2D", "DownBlock2D"],
             up_block_types=["UpBlock2D", "AttnUpBlock2D", "UpBlock2D"], attention_head_dim=None,
             downsample_padding=0, flip_sin_to_cos=False, freq_shift=1, norm_eps=1e-6, norm_num_groups=2),
        [dict(name="t999", shape=[1, 3, 16, 16], t=("int", [999])),
         dict(name="batch2", shape=[2, 3, 16, 16], t=("int", [3, 640]))],
        legacy_attention_names=True)

variant("scale-shift", "resnet_time_scale_shift scale_shift (mid attention without GroupNorm), layers_per_block 1, "
        "attention_head_dim 4, in 4 / out 6 channels, non-square sample",
        dict(sample_size=[16, 8], in_channels=4, out_channels=6, block_out_channels=[8, 12], layers_per_block=1,
             down_block_types=["AttnDownBlock2D", "AttnDownBlock2D"], up_block_types=["AttnUpBlock2D", "AttnUpBlock2D"],
             attention_head_dim=4, norm_num_groups=4, resnet_time_scale_shift="scale_shift"),
        [dict(name="t10", shape=[1, 4, 16, 8], t=("int", [10])),
         dict(name="t777_float", shape=[2, 4, 16, 8], t=("float", [777.25]))])

variant("scale-shift-attn-groups", "scale_shift with attn_norm_num_groups 2 (the mid attention gets a GroupNorm of "
        "2 groups), act_fn mish, mid_block_scale_factor sqrt(2)",
        dict(sample_size=8, in_channels=3, out_channels=3, block_out_channels=[8, 8], layers_per_block=1,
             down_block_types=["DownBlock2D", "AttnDownBlock2D"], up_block_types=["AttnUpBlock2D", "UpBlock2D"],
             attention_head_dim=8, norm_num_groups=4, attn_norm_num_groups=2, resnet_time_scale_shift="scale_shift",
             act_fn="mish", mid_block_scale_factor=math.sqrt(2.0)),
        [dict(name="t321", shape=[1, 3, 8, 8], t=("int", [321]))])

variant("fourier", "time_embedding_type fourier (score-SDE style: GaussianFourierProjection of log sigma, output "
        "divided by sigma), state dict with both time_proj.W and time_proj.weight",
        dict(sample_size=8, in_channels=3, out_channels=3, block_out_channels=[8, 8], layers_per_block=1,
             down_block_types=["DownBlock2D", "AttnDownBlock2D"], up_block_types=["AttnUpBlock2D", "UpBlock2D"],
             attention_head_dim=None, norm_num_groups=4, time_embedding_type="fourier", flip_sin_to_cos=True,
             mid_block_scale_factor=math.sqrt(2.0)),
        [dict(name="sigma_batch2", shape=[2, 3, 8, 8], t=("float", [0.75, 38.5])),
         dict(name="sigma_scalar", shape=[1, 3, 8, 8], t=("float0d", 5.0))],
        fourier_both_keys=True)

variant("fourier-w-only", "time_embedding_type fourier with only time_proj.W in the file (as older .bin "
        "checkpoints keep it), gelu resnets, no mid attention",
        dict(sample_size=8, in_channels=2, out_channels=2, block_out_channels=[8, 8], layers_per_block=1,
             down_block_types=["DownBlock2D", "DownBlock2D"], up_block_types=["UpBlock2D", "UpBlock2D"],
             norm_num_groups=2, time_embedding_type="fourier", act_fn="gelu", add_attention=False),
        [dict(name="sigma", shape=[1, 2, 8, 8], t=("float", [12.0]))])

variant("resnet-updown", "ResnetDownsampleBlock2D / ResnetUpsampleBlock2D and AttnDown/AttnUp blocks with "
        "downsample_type and upsample_type resnet (avg-pool / nearest resnets), 3 levels",
        dict(sample_size=16, in_channels=3, out_channels=3, block_out_channels=[8, 8, 8], layers_per_block=1,
             down_block_types=["ResnetDownsampleBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"],
             up_block_types=["AttnUpBlock2D", "AttnUpBlock2D", "ResnetUpsampleBlock2D"],
             attention_head_dim=8, norm_num_groups=4, downsample_type="resnet", upsample_type="resnet"),
        [dict(name="t42", shape=[1, 3, 16, 16], t=("int", [42]))])

variant("class-table", "num_class_embeds 5 with class_embed_type null (an embedding table), center_input_sample, "
        "layers_per_block 2, relu",
        dict(sample_size=8, in_channels=3, out_channels=3, block_out_channels=[8, 8], layers_per_block=2,
             down_block_types=["DownBlock2D", "AttnDownBlock2D"], up_block_types=["AttnUpBlock2D", "UpBlock2D"],
             attention_head_dim=4, norm_num_groups=4, num_class_embeds=5, center_input_sample=True, act_fn="relu"),
        [dict(name="labels", shape=[2, 3, 8, 8], t=("int", [100, 900]), labels=("int", [3, 0]))])

variant("class-timestep", "class_embed_type timestep (class labels through time_proj and a second "
        "TimestepEmbedding), flip_sin_to_cos false, freq_shift 1",
        dict(sample_size=8, in_channels=3, out_channels=3, block_out_channels=[8, 8], layers_per_block=1,
             down_block_types=["DownBlock2D", "AttnDownBlock2D"], up_block_types=["AttnUpBlock2D", "UpBlock2D"],
             attention_head_dim=8, norm_num_groups=4, class_embed_type="timestep", flip_sin_to_cos=False, freq_shift=1),
        [dict(name="labels", shape=[2, 3, 8, 8], t=("int", [500]), labels=("int", [20, 350])),
         dict(name="one_label_for_batch2", shape=[2, 3, 8, 8], t=("int", [40, 60]), labels=("int", [999]))])

variant("class-identity", "class_embed_type identity (class labels are embeddings of the time embedding's width)",
        dict(sample_size=8, in_channels=3, out_channels=3, block_out_channels=[8, 8], layers_per_block=1,
             down_block_types=["DownBlock2D", "AttnDownBlock2D"], up_block_types=["AttnUpBlock2D", "UpBlock2D"],
             attention_head_dim=8, norm_num_groups=4, class_embed_type="identity"),
        [dict(name="labels", shape=[1, 3, 8, 8], t=("int", [250]), labels=("float", [1, 32]))])

variant("learned", "time_embedding_type learned (an nn.Embedding of num_train_timesteps rows), norm_num_groups 1",
        dict(sample_size=8, in_channels=1, out_channels=1, block_out_channels=[8, 8], layers_per_block=1,
             down_block_types=["DownBlock2D", "AttnDownBlock2D"], up_block_types=["AttnUpBlock2D", "UpBlock2D"],
             attention_head_dim=8, norm_num_groups=1, time_embedding_type="learned", num_train_timesteps=50),
        [dict(name="t", shape=[2, 1, 8, 8], t=("int", [0, 49]))])

variant("headdim-not-dividing", "attention_head_dim 8 on 12 channels: one head of 8, to_q/k/v 12 -> 8, "
        "to_out 8 -> 12; attn_norm_num_groups 2 with default time scale",
        dict(sample_size=8, in_channels=3, out_channels=3, block_out_channels=[6, 12], layers_per_block=1,
             down_block_types=["DownBlock2D", "AttnDownBlock2D"], up_block_types=["AttnUpBlock2D", "UpBlock2D"],
             attention_head_dim=8, norm_num_groups=3, attn_norm_num_groups=2),
        [dict(name="t600", shape=[1, 3, 8, 8], t=("int", [600]))])

VAE_VARIANTS = [
    dict(name="vae-3level-lpb2", desc="3 levels, layers_per_block 2 (3 resnets per decoder block), GroupNorm 2; "
         "mid-block attention weights saved under the legacy names query/key/value/proj_attn",
         config=dict(in_channels=3, out_channels=3, block_out_channels=[4, 8, 8], layers_per_block=2,
                     latent_channels=4, norm_num_groups=2, sample_size=16),
         image=[1, 3, 16, 16], z=[1, 4, 4, 4], legacy=True,
         tiled_image=[1, 3, 28, 20], tiled_z=[1, 4, 7, 5]),
    dict(name="vae-latent16-one-level", desc="one level (no down/up sampler), latent_channels 16, in 1 / out 2 "
         "channels, act_fn mish, a 8x12 batch of 2, scaling_factor 0.3611",
         config=dict(in_channels=1, out_channels=2, block_out_channels=[8], layers_per_block=1,
                     down_block_types=["DownEncoderBlock2D"], up_block_types=["UpDecoderBlock2D"],
                     latent_channels=16, norm_num_groups=2, sample_size=8, act_fn="mish", scaling_factor=0.3611),
         image=[2, 1, 8, 12], z=[2, 16, 8, 12], tiled_image=[2, 1, 13, 8], tiled_z=[1, 16, 8, 15]),
    dict(name="vae-4level-logvar-clamp", desc="4 levels of [4, 8, 8, 8], GroupNorm 2, gelu; quant_conv's logvar "
         "biases set to +25 / -35 on two channels so DiagonalGaussianDistribution clamps logvar to [-30, 20]",
         config=dict(in_channels=3, out_channels=3, block_out_channels=[4, 8, 8, 8], layers_per_block=1,
                     latent_channels=4, norm_num_groups=2, sample_size=16, act_fn="gelu", force_upcast=False,
                     scaling_factor=0.13025),
         image=[1, 3, 16, 16], z=[1, 4, 2, 2], logvar_bias={0: 25.0, 1: -35.0},
         tiled_image=[1, 3, 24, 32], tiled_z=[1, 4, 3, 4]),
]
for v in VAE_VARIANTS:
    v["config"]["down_block_types"] = ["DownEncoderBlock2D"] * len(v["config"]["block_out_channels"])
    v["config"]["up_block_types"] = ["UpDecoderBlock2D"] * len(v["config"]["block_out_channels"])


def build_vae_variants(tensors):
    cases = []
    for vi, v in enumerate(VAE_VARIANTS):
        folder = os.path.join(HERE, v["name"])
        if os.path.isdir(folder):
            shutil.rmtree(folder)
        os.makedirs(folder)
        P = Params(rng=np.random.default_rng(3000 + vi))
        cfg = {**VAE_DEFAULTS, **v["config"]}
        rng = np.random.default_rng(7000 + vi)
        image = np.tanh(rng.standard_normal(v["image"])).astype(F32)
        z = rng.standard_normal(v["z"]).astype(F32)
        lat = cfg["latent_channels"]
        if "logvar_bias" in v:   # make quant_conv first, then move the logvar biases out of [-30, 20]
            P.get("quant_conv.bias", (2 * lat,), "bias")
            for ch, b in v["logvar_bias"].items():
                P.t["quant_conv.bias"][lat + ch] = F32(b)
        post = posterior(vae_encode(P, cfg, image))
        dec = vae_decode(P, cfg, z)
        rec = vae_decode(P, cfg, post["mean"])
        if "tiled_image" in v:   # enable_tiling(): inputs larger than a tile
            timage = np.tanh(rng.standard_normal(v["tiled_image"])).astype(F32)
            tz = rng.standard_normal(v["tiled_z"]).astype(F32)
            tpost = posterior(vae_tiled_encode(P, cfg, timage))
            tdec = vae_tiled_decode(P, cfg, tz)
            tensors[v["name"] + "/tiled/image"] = timage
            tensors[v["name"] + "/tiled/z"] = tz
            tensors[v["name"] + "/tiled/encode/mean"] = tpost["mean"].astype(F32)
            tensors[v["name"] + "/tiled/encode/logvar"] = tpost["logvar"].astype(F32)
            tensors[v["name"] + "/tiled/decode"] = tdec.astype(F32)
        key = v["name"]
        tensors[key + "/image"] = image
        for k in ["mean", "std", "logvar", "var"]:
            tensors[f"{key}/encode/{k}"] = post[k].astype(F32)
        tensors[key + "/z"] = z
        tensors[key + "/decode"] = dec.astype(F32)
        tensors[key + "/reconstruct_mode"] = rec.astype(F32)
        assert set(P.t) == P.used
        config = {"_class_name": "AutoencoderKL", "_diffusers_version": "0.25.1", **cfg}
        with open(os.path.join(folder, "config.json"), "w") as f:
            json.dump(config, f, indent=2, sort_keys=True)
            f.write("\n")
        weights = dict(P.t)
        if v.get("legacy"):
            weights = {legacy_name(k): a for k, a in weights.items()}
        write_safetensors(os.path.join(folder, "diffusion_pytorch_model.safetensors"), weights, {"format": "pt"})
        cases.append(dict(id=key, model=key, description=v["desc"], parameters=int(sum(a.size for a in P.t.values())),
                          image_shape=list(image.shape), latent_shape=list(post["mean"].shape),
                          decode_shape=list(dec.shape), std_max=float(post["std"].max()), tiled="tiled_image" in v,
                          decode_abs_max=float(np.abs(dec).max())))
    return cases


variant("one-level", "a single level (block_out_channels of length 1: no downsampler or upsampler), "
        "AttnDownBlock2D / AttnUpBlock2D with layers_per_block 2, act_fn swish, one timestep for a batch of 2",
        dict(sample_size=8, in_channels=3, out_channels=3, block_out_channels=[8], layers_per_block=2,
             down_block_types=["AttnDownBlock2D"], up_block_types=["AttnUpBlock2D"], attention_head_dim=4,
             norm_num_groups=4, act_fn="swish"),
        [dict(name="t13", shape=[2, 3, 8, 8], t=("int", [13]))])

variant("odd-embedding", "block_out_channels[0] 9 (odd): the 9-wide sinusoidal embedding is zero-padded by one, "
        "attention_head_dim 3 (3 heads), GroupNorm 3, act_fn \"Mish\" (get_activation lowercases it)",
        dict(sample_size=8, in_channels=3, out_channels=3, block_out_channels=[9, 9], layers_per_block=1,
             down_block_types=["DownBlock2D", "AttnDownBlock2D"], up_block_types=["AttnUpBlock2D", "UpBlock2D"],
             attention_head_dim=3, norm_num_groups=3, act_fn="Mish"),
        [dict(name="t901", shape=[1, 3, 8, 8], t=("int", [901]))])

variant("resnet-updown-scale-shift", "AttnDownBlock2D / AttnUpBlock2D with resnet down/up samplers and "
        "resnet_time_scale_shift scale_shift (the samplers' resnets scale and shift too), ResnetDownsampleBlock2D "
        "at the bottom",
        dict(sample_size=16, in_channels=3, out_channels=3, block_out_channels=[8, 8, 8], layers_per_block=1,
             down_block_types=["AttnDownBlock2D", "ResnetDownsampleBlock2D", "AttnDownBlock2D"],
             up_block_types=["AttnUpBlock2D", "ResnetUpsampleBlock2D", "AttnUpBlock2D"], attention_head_dim=8,
             norm_num_groups=4, downsample_type="resnet", upsample_type="resnet",
             resnet_time_scale_shift="scale_shift"),
        [dict(name="t77", shape=[1, 3, 16, 16], t=("int", [77]))])

LEGACY = [(".to_q.", ".query."), (".to_k.", ".key."), (".to_v.", ".value."), (".to_out.0.", ".proj_attn.")]


def legacy_name(k):
    """The pre-refactor attention names diffusers still converts on load (query, key, value, proj_attn)."""
    if ".attentions." in k:
        for old, new in LEGACY:
            k = k.replace(old, new)
    return k


def make_input(rng, spec):
    kind, v = spec
    if kind == "int":
        return np.array(v, dtype=np.int64)
    if kind == "float":
        if isinstance(v[0], float):
            return np.array(v, dtype=F32)
        return rng.standard_normal(v).astype(F32)   # a shape: random embeddings
    if kind == "float0d":
        return np.array(v, dtype=F32)
    raise ValueError(kind)


def build_variants():
    tensors, cases = {}, []
    for vi, v in enumerate(VARIANTS):
        folder = os.path.join(HERE, v["name"])
        if os.path.isdir(folder):
            shutil.rmtree(folder)
        os.makedirs(folder)
        P = Params(rng=np.random.default_rng(1000 + vi))
        cfg = {**DEFAULTS, **v["config"]}
        for ci, c in enumerate(v["cases"]):
            rng = np.random.default_rng(5000 + 100 * vi + ci)
            x = rng.standard_normal(c["shape"]).astype(F32)
            if cfg["center_input_sample"]:
                x = (0.5 + 0.25 * x).astype(F32)
            t = make_input(rng, c["t"])
            labels = make_input(rng, c["labels"]) if "labels" in c else None
            out = unet2d(P, cfg, x, t, labels)
            key = f"{v['name']}/{c['name']}"
            tensors[key + "/sample"] = x
            tensors[key + "/timestep"] = t
            if labels is not None:
                tensors[key + "/class_labels"] = labels
            tensors[key + "/out"] = out.astype(F32)
            cases.append(dict(id=key, model=v["name"], timestep_dtype=str(t.dtype), timestep_shape=list(t.shape),
                              class_labels=labels is not None, out_shape=list(out.shape),
                              out_abs_max=float(np.abs(out).max())))
        weights = dict(P.t)
        assert set(weights) == P.used
        if v["legacy"]:
            weights = {legacy_name(k): a for k, a in weights.items()}
        if cfg["time_embedding_type"] == "fourier":
            w = weights.pop("time_proj.W")
            weights["time_proj.W"] = w
            if v["fourier_both"]:
                weights["time_proj.weight"] = w
        config = {"_class_name": "UNet2DModel", "_diffusers_version": "0.25.1", **cfg}
        with open(os.path.join(folder, "config.json"), "w") as f:
            json.dump(config, f, indent=2, sort_keys=True)
            f.write("\n")
        write_safetensors(os.path.join(folder, "diffusion_pytorch_model.safetensors"), weights, {"format": "pt"})
        v["n_params"] = int(sum(a.size for a in weights.values()))
    return tensors, cases


def main():
    print("validating on golden tiny-ddpm (README section A):")
    worst, report = validate_tiny_ddpm()
    print("validating on the golden tiny-sd VAE (README section C):")
    vae_worst, vae_report = validate_tiny_sd_vae()
    tensors, cases = build_variants()
    vae_cases = build_vae_variants(tensors)
    write_safetensors(os.path.join(HERE, "cases.safetensors"), tensors)
    doc = dict(
        generator="make.py: numpy float64 transcription of diffusers 0.25.1 UNet2DModel.forward",
        validation=dict(golden="tiny-ddpm (README section A)", max_abs_error=worst,
                        cases={k: a for k, (a, _) in report.items()}),
        variants=[dict(name=v["name"], description=v["desc"], parameters=v["n_params"],
                       legacy_attention_names=v["legacy"]) for v in VARIANTS],
        cases=cases,
        vae_validation=dict(golden="tiny-sd vae (README section C)", max_abs_error=vae_worst,
                            cases={k: a for k, (a, _) in vae_report.items()}),
        vae_cases=vae_cases)
    with open(os.path.join(HERE, "cases.json"), "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    for c in cases:
        print(f"  {c['id']}: out {c['out_shape']} |out| max {c['out_abs_max']:.3f}")
    for c in vae_cases:
        print(f"  {c['id']}: latents {c['latent_shape']}, std max {c['std_max']:.4g}, decode {c['decode_shape']} "
              f"|decode| max {c['decode_abs_max']:.3f}")


if __name__ == "__main__":
    main()
