"""diffusers 0.25.1's AutoencoderTiny (EncoderTiny / DecoderTiny / AutoencoderTinyBlock, scale_latents / unscale_latents)
in numpy, shared by model-transcripts-clip-taesd and model-transcripts-taesd-tiling (validated on tiny-taesd by both)."""
import numpy as np

from torchlike import F32, activation as get_activation, conv2d

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
