"""diffusers 0.25.1's AutoencoderTiny (EncoderTiny / DecoderTiny / AutoencoderTinyBlock, scale_latents / unscale_latents)
in numpy, shared by model-transcripts-clip-taesd and model-transcripts-taesd-tiling (validated on tiny-taesd by both)."""
import json
import os
import sys

import numpy as np

from torchlike import (F32, SequentialParams as Params, activation as get_activation, check_intermediates, conv2d,
                       err, read_safetensors)

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

# ---------------------------------------------------------------- AutoencoderTiny (diffusers 0.25.1)

TAESD_DEFAULTS = dict(in_channels=3, out_channels=3, encoder_block_out_channels=[64, 64, 64, 64],
                      decoder_block_out_channels=[64, 64, 64, 64], act_fn="relu", latent_channels=4,
                      upsampling_scaling_factor=2, num_encoder_blocks=[1, 3, 3, 3], num_decoder_blocks=[3, 3, 3, 1],
                      latent_magnitude=3, latent_shift=0.5, force_upcast=False, scaling_factor=1.0)


def tiny_block(P, name, x, c, act):
    """AutoencoderTinyBlock(c, c): relu(conv(x) + x), conv = conv3 act conv3 act conv3 (layers conv.0/2/4)."""
    h = conv2d(P, name + ".conv.0", x, c, c, 3, padding=1)
    h = conv2d(P, name + ".conv.2", get_activation(act, h), c, c, 3, padding=1)
    h = conv2d(P, name + ".conv.4", get_activation(act, h), c, c, 3, padding=1)
    return np.maximum(h + x, 0.0)


def taesd_encode(P, cfg, x, hook=None):
    h = (x.astype(np.float64) + 1.0) / 2.0
    i = 0
    boc, act = cfg["encoder_block_out_channels"], cfg["act_fn"]
    for s, nb in enumerate(cfg["num_encoder_blocks"]):
        c = boc[s]
        if s == 0:
            h = conv2d(P, f"encoder.layers.{i}", h, cfg["in_channels"], c, 3, padding=1)
        else:
            h = conv2d(P, f"encoder.layers.{i}", h, c, c, 3, stride=2, padding=1, bias=False)
        if hook:
            hook(f"encoder.layers.{i}", h)
        i += 1
        for _ in range(nb):
            h = tiny_block(P, f"encoder.layers.{i}", h, c, act)
            if hook:
                hook(f"encoder.layers.{i}", h)
            i += 1
    h = conv2d(P, f"encoder.layers.{i}", h, boc[-1], cfg["latent_channels"], 3, padding=1)
    if hook:
        hook(f"encoder.layers.{i}", h)
    return h


def taesd_decode(P, cfg, z, hook=None):
    h = np.tanh(z.astype(np.float64) / 3.0) * 3.0
    boc, act, f = cfg["decoder_block_out_channels"], cfg["act_fn"], cfg["upsampling_scaling_factor"]
    h = conv2d(P, "decoder.layers.0", h, cfg["latent_channels"], boc[0], 3, padding=1)
    if hook:
        hook("decoder.layers.0", h)
    h = get_activation(act, h)
    if hook:
        hook("decoder.layers.1", h)
    i = 2
    nbs = cfg["num_decoder_blocks"]
    for s, nb in enumerate(nbs):
        final = s == len(nbs) - 1
        c = boc[s]
        for _ in range(nb):
            h = tiny_block(P, f"decoder.layers.{i}", h, c, act)
            if hook:
                hook(f"decoder.layers.{i}", h)
            i += 1
        if not final:   # nn.Upsample(scale_factor=f): nearest
            h = h.repeat(f, axis=2).repeat(f, axis=3)
            if hook:
                hook(f"decoder.layers.{i}", h)
            i += 1
        h = conv2d(P, f"decoder.layers.{i}", h, c, cfg["out_channels"] if final else c, 3, padding=1, bias=final)
        if hook:
            hook(f"decoder.layers.{i}", h)
        i += 1
    return h * 2.0 - 1.0


def scale_latents_f32(cfg, x):
    """scale_latents in float32 as torch runs it: x.div(2 * magnitude).add(shift).clamp(0, 1)."""
    x = np.asarray(x, dtype=F32)
    y = (x / F32(2 * cfg["latent_magnitude"])).astype(F32)
    y = (y + F32(cfg["latent_shift"])).astype(F32)
    return np.clip(y, F32(0), F32(1))


def unscale_latents_f32(cfg, x):
    x = np.asarray(x, dtype=F32)
    return ((x - F32(cfg["latent_shift"])).astype(F32) * F32(2 * cfg["latent_magnitude"])).astype(F32)


def quantize(cfg, latents):
    """scale_latents(latents).mul_(255).round_().byte(), and the float32 value before rounding."""
    pre = (scale_latents_f32(cfg, latents) * F32(255)).astype(F32)
    return np.round(pre).astype(np.int64), pre


# ---------------------------------------------------------------- validation on the golden tiny-taesd (README section I)

def load_model(*parts, weights="model.safetensors"):
    folder = os.path.join(GOLDEN, *parts)
    cfg = json.load(open(os.path.join(folder, "config.json")))
    w = read_safetensors(os.path.join(folder, weights))
    return cfg, w


def validate_taesd():
    report = {}
    exp = read_safetensors(os.path.join(GOLDEN, "tiny-taesd-expected.safetensors"))
    cfg, w = load_model("tiny-taesd", weights="diffusion_pytorch_model.safetensors")
    cfg = {**TAESD_DEFAULTS, **{k: v for k, v in cfg.items() if not k.startswith("_")}}
    P = Params(w)
    inter = {}
    lat = taesd_encode(P, cfg, exp["taesd/image"], hook=lambda k, v: inter.__setitem__(k, v))
    check_intermediates(exp, "taesd/encode_intermediate/", inter, report, with_rel=True)
    report["taesd/encode/latents"] = err(lat, exp["taesd/encode/latents"])
    inter = {}
    dec = taesd_decode(P, cfg, exp["taesd/z"], hook=lambda k, v: inter.__setitem__(k, v))
    check_intermediates(exp, "taesd/decode_intermediate/", inter, report, with_rel=True)
    report["taesd/decode"] = err(dec, exp["taesd/decode"])
    report["taesd/scale_latents"] = err(scale_latents_f32(cfg, lat), exp["taesd/scale_latents"])
    q, pre = quantize(cfg, lat.astype(F32))
    margin = float(np.abs(pre - np.floor(pre) - 0.5).min())
    report["taesd/quantized_uint8 (count of differing values)"] = (float((q != exp["taesd/quantized_uint8"]).sum()), None)
    unscaled = unscale_latents_f32(cfg, (q.astype(F32) / F32(255.0)).astype(F32))
    report["taesd/unscaled"] = err(unscaled, exp["taesd/unscaled"])
    report["taesd/forward"] = err(taesd_decode(P, cfg, unscaled), exp["taesd/forward"])
    assert set(w) == P.used, set(w) - P.used
    return report, margin


def print_report(report, limit, what):
    worst = 0.0
    for k, (a, r) in report.items():
        print(f"  {k}: max abs {a:.3e}" + (f", max rel {r:.3e}" if r is not None else ""))
        if "count" not in k:
            worst = max(worst, a)
        elif a != 0:
            sys.exit(f"{what}: {k} = {a}")
    if worst > limit:
        sys.exit(f"transcription does not reproduce {what}: max abs error {worst:.3e}")
    return worst
