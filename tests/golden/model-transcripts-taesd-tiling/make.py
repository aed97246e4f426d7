#!/usr/bin/python3
"""AutoencoderTiny tiling (enable_tiling) of diffusers 0.25.1, made without torch.

A numpy transcription of diffusers 0.25.1's AutoencoderTiny (models/autoencoders/autoencoder_tiny.py at tag v0.25.1:
_tiled_encode / _tiled_decode with tile_sample_min_size 512, tile_overlap_factor 0.125, spatial_scale_factor =
2 ** out_channels (not the encoder's or decoder's real scale), tile_latent_min_size = 512 // spatial_scale_factor,
its clamped linear blend masks and its float32 output of 4 latent / 3 image channels; vae.py EncoderTiny /
DecoderTiny, unet_2d_blocks.py AutoencoderTinyBlock, activations.py get_activation). The network functions are
copied from ../model-transcripts-clip-taesd/make.py (float64 on the float32 weights, each tile's output rounded to
float32 as torch's float32 encoder / decoder returns it); the blending runs in float32 operation by operation as torch
runs it (mask * tile + (1 - mask) * tile_out, then copy_ into the output's view).

The untiled networks are validated first on the golden tiny-taesd (README section I; fails above 2e-5). Then the
tiled cases of CASES below are written to cases.safetensors / cases.json. Inputs too large to store are integer
patterns both sides compute exactly (see pattern()); outputs too large to store are kept as a strided subsample, a
full-resolution crop over the seams, and the float64 sum and absolute sum of the whole output.

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
F32 = np.float32


sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(GOLDEN, "transcripts-common"))
from torchlike import SequentialParams as Params, write_safetensors  # noqa: E402
from taesd import (TAESD_DEFAULTS, load_model, print_report, quantize, scale_latents_f32, taesd_decode,  # noqa: E402,F401
                   taesd_encode, unscale_latents_f32, validate_taesd)


# ---------------------------------------------------------------- diffusers 0.25.1 AutoencoderTiny tiling

TILE_SAMPLE_MIN_SIZE = 512      # AutoencoderTiny.__init__: self.tile_sample_min_size
TILE_OVERLAP_FACTOR = 0.125     # self.tile_overlap_factor


def spatial_scale_factor(cfg):
    return 2 ** cfg["out_channels"]     # self.spatial_scale_factor: 2 ** out_channels, whatever the stages are


def blend_masks(n, divisor):
    """torch.stack(torch.meshgrid([torch.arange(n) / divisor] * 2, indexing="ij")).clamp(0, 1), float32."""
    m = np.clip((np.arange(n, dtype=F32) / F32(divisor)).astype(F32), F32(0), F32(1))
    return np.repeat(m[:, None], n, axis=1), np.repeat(m[None, :], n, axis=0)


def blend_into(out, rows, cols, tile, masks, i, j):
    """blend_mask_i * blend_mask_j (ones for the first row / column of tiles), cut to the tile, then
    tile_out.copy_(blend_mask * tile + (1 - blend_mask) * tile_out), all in float32."""
    tile_out = out[..., rows, cols]     # a view, as torch's slice
    h, w = tile.shape[-2], tile.shape[-1]
    mi = np.ones_like(masks[0]) if i == 0 else masks[0]
    mj = np.ones_like(masks[1]) if j == 0 else masks[1]
    m = (mi * mj).astype(F32)[..., :h, :w]
    assert tile.shape[-2:] == tile_out.shape[-2:] == m.shape, (tile.shape, tile_out.shape, m.shape)
    tile_out[...] = ((m * tile).astype(F32) + ((F32(1) - m).astype(F32) * tile_out).astype(F32)).astype(F32)


def tiled_encode(P, cfg, x, tiles):
    """AutoencoderTiny._tiled_encode."""
    sf = spatial_scale_factor(cfg)
    tile_size = TILE_SAMPLE_MIN_SIZE
    blend_size = int(tile_size * TILE_OVERLAP_FACTOR)
    traverse_size = tile_size - blend_size
    masks = blend_masks(math.ceil(tile_size / sf), blend_size / sf - 1)     # torch.arange(tile_size / sf)
    out = np.zeros((x.shape[0], 4, x.shape[-2] // sf, x.shape[-1] // sf), F32)
    for i in range(0, x.shape[-2], traverse_size):
        for j in range(0, x.shape[-1], traverse_size):
            tile_in = x[..., i:i + tile_size, j:j + tile_size]
            tile = taesd_encode(P, cfg, tile_in).astype(F32)
            tiles.append(dict(input_rows=[i, i + tile_in.shape[-2]], input_cols=[j, j + tile_in.shape[-1]],
                              output_shape=list(tile.shape[-2:])))
            blend_into(out, slice(i // sf, (i + tile_size) // sf), slice(j // sf, (j + tile_size) // sf), tile,
                       masks, i, j)
    return out


def tiled_decode(P, cfg, x, tiles):
    """AutoencoderTiny._tiled_decode."""
    sf = spatial_scale_factor(cfg)
    tile_size = TILE_SAMPLE_MIN_SIZE // sf      # self.tile_latent_min_size
    blend_size = int(tile_size * TILE_OVERLAP_FACTOR)
    traverse_size = tile_size - blend_size
    masks = blend_masks(tile_size * sf, blend_size * sf - 1)
    out = np.zeros((x.shape[0], 3, x.shape[-2] * sf, x.shape[-1] * sf), F32)
    for i in range(0, x.shape[-2], traverse_size):
        for j in range(0, x.shape[-1], traverse_size):
            tile_in = x[..., i:i + tile_size, j:j + tile_size]
            tile = taesd_decode(P, cfg, tile_in).astype(F32)
            tiles.append(dict(input_rows=[i, i + tile_in.shape[-2]], input_cols=[j, j + tile_in.shape[-1]],
                              output_shape=list(tile.shape[-2:])))
            blend_into(out, slice(i * sf, (i + tile_size) * sf), slice(j * sf, (j + tile_size) * sf), tile,
                       masks, i, j)
    return out


def pattern(p, shape):
    """An input both sides compute exactly: for batch b, channel c, row y, column x (int64)
    ((l0 x + l1 y + l2 c + l3 b) mod lm + (q0 x² + q1 y² + q2 x y + q3 c + q4 b) mod qm − offset) / divisor,
    an integer over a power of two, exact in float32."""
    b, c, y, x = np.meshgrid(*[np.arange(n, dtype=np.int64) for n in shape], indexing="ij")
    l0, l1, l2, l3 = p["linear"]
    q0, q1, q2, q3, q4 = p["quadratic"]
    k = (l0 * x + l1 * y + l2 * c + l3 * b) % p["linear_mod"] + \
        (q0 * x * x + q1 * y * y + q2 * x * y + q3 * c + q4 * b) % p["quadratic_mod"] - p["offset"]
    return (k.astype(np.float64) / p["divisor"]).astype(F32)


IMAGE_PATTERN = dict(linear=[7, 13, 29, 3], linear_mod=97, quadratic=[1, 3, 5, 31, 11], quadratic_mod=89, offset=92,
                     divisor=128)     # values in [-92, 92] / 128
LATENT_PATTERN = dict(linear=[11, 17, 37, 5], linear_mod=101, quadratic=[2, 1, 3, 7, 13], quadratic_mod=83,
                      offset=92, divisor=32)      # values in [-92, 92] / 32: beyond +-3, the decoder's tanh clamp


# Models. "taesd-4stage": TAESD's own topology (4 stages: 3 stride-2 convolutions, 3 nearest x2 upsamples, so the
# real scale is 8 = 2 ** out_channels and diffusers' tiles fit), 8 channels, seeded weights.
# "tiny-taesd-out1": the golden tiny-taesd's weights (2 stages: real scale 2) with out_channels 1 (the decoder's last
# convolution cut to its first output channel), so that 2 ** out_channels = 2 is the real scale again; diffusers'
# tiled decode writes that one channel into all 3 channels of its output (broadcasting).
MODELS = [
    dict(name="taesd-4stage",
         desc="TAESD's topology (4 stages, 3 stride-2 convolutions / nearest x2 upsamples: real scale 8 = "
              "2 ** out_channels) with 8 channels, num_encoder_blocks [1, 1, 1, 1], num_decoder_blocks "
              "[1, 1, 1, 1], relu, seeded float32 weights (the decoder's last convolution scaled by 0.25 so that "
              "its outputs stay O(1))",
         config=dict(encoder_block_out_channels=[8, 8, 8, 8], decoder_block_out_channels=[8, 8, 8, 8],
                     num_encoder_blocks=[1, 1, 1, 1], num_decoder_blocks=[1, 1, 1, 1]),
         seed=5000, output_scale=0.25),
    dict(name="tiny-taesd-out1",
         desc="the golden tiny-taesd (2 stages of 16: real scale 2) with out_channels 1 and its weights, the "
              "decoder's last convolution cut to its first output channel: 2 ** out_channels = 2 is its scale; "
              "tiled decode broadcasts the one channel into diffusers' 3-channel output",
         config=dict(out_channels=1), from_golden="tiny-taesd"),
]

# Cases: sizes that give 2 x 2 tiles or more, with partial tiles at the bottom and right edges.
CASES = [
    dict(id="taesd-4stage/encode", model="taesd-4stage", op="encode", input=[1, 3, 520, 600], pattern=IMAGE_PATTERN,
         stride=1, crop=None),
    dict(id="taesd-4stage/decode", model="taesd-4stage", op="decode", input=[1, 4, 65, 75], seed=6000,
         stride=8, crop=[[432, 520], [432, 520]]),
    dict(id="tiny-taesd-out1/encode", model="tiny-taesd-out1", op="encode", input=[1, 3, 460, 480],
         pattern=IMAGE_PATTERN, stride=4, crop=[[216, 230], [216, 240]]),
    dict(id="tiny-taesd-out1/decode", model="tiny-taesd-out1", op="decode", input=[1, 4, 230, 240],
         pattern=LATENT_PATTERN, stride=8, crop=[[432, 460], [432, 480]]),
]


def build_model(m):
    folder = os.path.join(HERE, m["name"])
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)
    if "from_golden" in m:
        gcfg, w = load_model(m["from_golden"], weights="diffusion_pytorch_model.safetensors")
        cfg = {**TAESD_DEFAULTS, **{k: v for k, v in gcfg.items() if not k.startswith("_")}, **m["config"]}
        last = max(int(k.split(".")[2]) for k in w if k.startswith("decoder.layers."))
        w = dict(w)
        for s in ("weight", "bias"):
            w[f"decoder.layers.{last}.{s}"] = w[f"decoder.layers.{last}.{s}"][:cfg["out_channels"]].copy()
        P = Params(w)
    else:
        cfg = {**TAESD_DEFAULTS, **m["config"]}
        P = Params(rng=np.random.default_rng(m["seed"]))
        taesd_encode(P, cfg, np.zeros((1, cfg["in_channels"], 8, 8), F32))      # makes the weights, in order
        taesd_decode(P, cfg, np.zeros((1, cfg["latent_channels"], 1, 1), F32))
        last = max(int(k.split(".")[2]) for k in P.t if k.startswith("decoder.layers."))
        for s in ("weight", "bias"):       # four stages of relu blocks grow the activations: outputs kept O(1)
            P.t[f"decoder.layers.{last}.{s}"] = (P.t[f"decoder.layers.{last}.{s}"] * F32(m["output_scale"])).astype(F32)
    config = {"_class_name": "AutoencoderTiny", "_diffusers_version": "0.25.1", **cfg,
              "block_out_channels": cfg["decoder_block_out_channels"]}
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")
    write_safetensors(os.path.join(folder, "diffusion_pytorch_model.safetensors"), P.t, {"format": "pt"})
    P.used = set()
    return cfg, P


def main():
    print("validating the AutoencoderTiny transcription on golden tiny-taesd (README section I):")
    report, _ = validate_taesd()
    worst = print_report(report, 2e-5, "tiny-taesd")
    models = {m["name"]: build_model(m) for m in MODELS}
    tensors, cases = {}, []
    for c in CASES:
        cfg, P = models[c["model"]]
        if "pattern" in c:
            x = pattern(c["pattern"], c["input"])
            tensors[c["id"] + "/input_corner"] = x[..., :8, :8]      # checks the C# pattern
        else:
            x = (2.0 * np.random.default_rng(c["seed"]).standard_normal(c["input"])).astype(F32)
            tensors[c["id"] + "/input"] = x
        tiles = []
        y = (tiled_encode if c["op"] == "encode" else tiled_decode)(P, cfg, x, tiles)
        s = c["stride"]
        tensors[c["id"] + "/output_strided"] = np.ascontiguousarray(y[..., ::s, ::s])
        if c["crop"]:
            (r0, r1), (c0, c1) = c["crop"]
            tensors[c["id"] + "/output_crop"] = np.ascontiguousarray(y[..., r0:r1, c0:c1])
        y64 = y.astype(np.float64)
        cases.append(dict(id=c["id"], model=c["model"], op=c["op"], input_shape=c["input"],
                          input_pattern=c.get("pattern"), input_seed=c.get("seed"), output_shape=list(y.shape),
                          spatial_scale_factor=spatial_scale_factor(cfg), stride=s, crop=c["crop"],
                          output_sum=float(y64.sum()), output_abs_sum=float(np.abs(y64).sum()),
                          output_abs_max=float(np.abs(y64).max()), tiles=tiles))
        print(f"  {c['id']}: {c['op']} {c['input']} -> {list(y.shape)} in {len(tiles)} tiles "
              f"{[t['input_rows'] + t['input_cols'] for t in tiles]}, |out| max {np.abs(y).max():.3f}")
    for name, (_, P) in models.items():
        assert P.used == set(P.t), (name, set(P.t) - P.used)    # every weight of the file is used
    write_safetensors(os.path.join(HERE, "cases.safetensors"), tensors)
    doc = dict(generator="make.py: numpy transcription of diffusers 0.25.1 AutoencoderTiny._tiled_encode / "
                         "_tiled_decode (enable_tiling)",
               validation=dict(golden="tiny-taesd (README I)", max_abs_error=worst,
                               cases={k: a for k, (a, _) in report.items()}),
               tile_sample_min_size=TILE_SAMPLE_MIN_SIZE, tile_overlap_factor=TILE_OVERLAP_FACTOR,
               models=[dict(name=m["name"], description=m["desc"]) for m in MODELS], cases=cases)
    with open(os.path.join(HERE, "cases.json"), "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
