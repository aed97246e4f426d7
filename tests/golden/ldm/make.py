"""Writes tests/golden/ldm/: tiny LDMPipeline and LDMSuperResolutionPipeline folders (tiny-ldm/, tiny-ldm-sr/), a
tiny VQModel (vqmodel/), a low-resolution input image (lowres.png) and ldm-expected.safetensors / .json: diffusers
0.25.1's VQModel, LDMPipeline and LDMSuperResolutionPipeline on them. See README.md in this folder.

Run from the repository root, in the environment ../diffusers-common/diffusers_prelude.py describes (keep that
folder next to this one):
  PYTHONPATH=/tmp/d/src:/tmp/hh/src:/tmp/stubs /usr/bin/python3 tests/golden/ldm/make.py
"""
import functools
import json
import os
import sys

import numpy as np
import PIL.Image
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.dirname(HERE)
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(GOLDEN, "diffusers-common"))
import transformers_stub  # noqa: E402,F401  (diffusers exports LDMSuperResolutionPipeline only with transformers)
from diffusers_prelude import diffusers, seeded, write_expected, write_json  # noqa: E402
from diffusers import (DDIMScheduler, EulerAncestralDiscreteScheduler, LDMPipeline,  # noqa: E402
                       LDMSuperResolutionPipeline, LMSDiscreteScheduler, UNet2DModel, VQModel)

out, index = {}, {"diffusers": diffusers.__version__, "torch": torch.__version__, "numpy": np.__version__,
                  "PIL": PIL.__version__, "cases": {}}


def vq_model(seed, **config):
    """A VQModel with random weights from torch.manual_seed(seed), its codebook then redrawn from N(0, 1) (diffusers'
    uniform(-1/n, 1/n) init would put every codebook vector near 0, so that quantizing hardly tells them apart)."""
    torch.manual_seed(seed)
    model = VQModel(**config)
    with torch.no_grad():
        model.quantize.embedding.weight.copy_(seeded(model.quantize.embedding.weight.shape, seed + 100))
    return model.eval()


def margin(vq, h):
    """The smallest gap, over all latent positions, between the nearest and the second nearest codebook vector's
    distance: the quantization is only reproducible where it is well above float rounding."""
    z = h.permute(0, 2, 3, 1).reshape(-1, h.shape[1])
    d = torch.cdist(z, vq.quantize.embedding.weight).sort(dim=1).values
    return float((d[:, 1] - d[:, 0]).min())


# --- VQModel on its own: group norm, vq_embed_dim 4 != latent_channels 3, two blocks (scale 2) -----------------------
VQ = dict(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 2,
          up_block_types=["UpDecoderBlock2D"] * 2, block_out_channels=[4, 8], layers_per_block=1,
          latent_channels=3, sample_size=16, num_vq_embeddings=12, norm_num_groups=2, vq_embed_dim=4,
          scaling_factor=0.5)
vq = vq_model(0, **VQ)
vq.save_pretrained(os.path.join(HERE, "vqmodel"))
vq = VQModel.from_pretrained(os.path.join(HERE, "vqmodel"), low_cpu_mem_usage=False).eval()
x = seeded((2, 3, 16, 16), 1).clamp(-1, 1)
with torch.no_grad():
    h = vq.encode(x).latents
    z_q, loss, (_, _, indices) = vq.quantize(h)
    out["vq/input"] = x
    out["vq/latents"] = h
    out["vq/quantized"] = z_q
    out["vq/loss"] = loss.reshape(1)
    out["vq/indices"] = indices.reshape(-1)
    out["vq/decoded"] = vq.decode(h).sample
    out["vq/decoded_not_quantized"] = vq.decode(h, force_not_quantize=True).sample
    out["vq/forward"] = vq(x).sample
    # lookup_from_codebook: decode(indices, force_not_quantize=True, shape=(batch, height, width, channel))
    vq_lookup = VQModel.from_pretrained(os.path.join(HERE, "vqmodel"), lookup_from_codebook=True,
                                        low_cpu_mem_usage=False).eval()
    shape = (h.shape[0], h.shape[2], h.shape[3], h.shape[1])
    out["vq/decoded_from_indices"] = vq_lookup.decode(indices.reshape(-1), force_not_quantize=True, shape=shape).sample
index["cases"]["vq"] = {"config": VQ, "margin": margin(vq, h), "lookup_shape": list(shape)}


# --- LDMPipeline: CompVis/ldm-celebahq-256's layout (VQModel + UNet2DModel + DDIMScheduler), tiny ------------------
LDM = os.path.join(HERE, "tiny-ldm")
vq_model(1, in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 2,
         up_block_types=["UpDecoderBlock2D"] * 2, block_out_channels=[4, 8], layers_per_block=1, latent_channels=3,
         sample_size=16, num_vq_embeddings=16, norm_num_groups=2).save_pretrained(os.path.join(LDM, "vqvae"))
torch.manual_seed(2)
UNet2DModel(sample_size=8, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=[8, 16],
            down_block_types=["DownBlock2D", "AttnDownBlock2D"], up_block_types=["AttnUpBlock2D", "UpBlock2D"],
            norm_num_groups=4, attention_head_dim=8).save_pretrained(os.path.join(LDM, "unet"))
# ldm-celebahq-256's scheduler config
DDIMScheduler(beta_start=0.0015, beta_end=0.0195, beta_schedule="linear", clip_sample=False,
              num_train_timesteps=1000).save_pretrained(os.path.join(LDM, "scheduler"))
write_json(os.path.join(LDM, "model_index.json"), {
    "_class_name": "LDMPipeline", "_diffusers_version": "0.25.1", "scheduler": ["diffusers", "DDIMScheduler"],
    "unet": ["diffusers", "UNet2DModel"], "vqvae": ["diffusers", "VQModel"]})


def load(cls, folder):
    """The pipeline built from its folder's components, each loaded with its class's from_pretrained (the pipeline's
    own from_pretrained reads transformers.__version__, which the stub has not)."""
    return cls(vqvae=VQModel.from_pretrained(os.path.join(folder, "vqvae"), low_cpu_mem_usage=False),
               unet=UNet2DModel.from_pretrained(os.path.join(folder, "unet"), low_cpu_mem_usage=False),
               scheduler=DDIMScheduler.from_pretrained(os.path.join(folder, "scheduler")))


def traced(pipe, trace):
    step, decode = pipe.scheduler.step, pipe.vqvae.decode

    # functools.wraps keeps step's signature, which the pipelines inspect to pass eta (or not)
    @functools.wraps(step)
    def traced_step(*a, **k):
        r = step(*a, **k)
        trace["steps"].append(r.prev_sample.clone())
        trace.setdefault("eta", k.get("eta"))
        return r

    def traced_decode(h, *a, **k):
        trace["decode_input"] = h.clone()
        return decode(h, *a, **k)
    pipe.scheduler.step, pipe.vqvae.decode = traced_step, traced_decode


def ldm_case(name, seed, batch_size, steps, eta):
    pipe = load(LDMPipeline, LDM)
    trace = {"steps": []}
    traced(pipe, trace)
    # torch.manual_seed returns the global generator; the pipeline passes no generator to scheduler.step, whose
    # variance noise (eta > 0) then comes from the global generator too: one stream, as DiffusersSharp's seed
    images = pipe(batch_size=batch_size, generator=torch.manual_seed(seed), eta=eta, num_inference_steps=steps,
                  output_type="np").images
    p = name + "/"
    out[p + "step1"] = trace["steps"][0]
    out[p + "latents"] = trace["steps"][-1]
    out[p + "decode_input"] = trace["decode_input"]
    out[p + "images"] = torch.from_numpy(images)
    assert trace["eta"] == eta, trace["eta"]
    index["cases"][name] = {"seed": seed, "batch_size": batch_size, "num_inference_steps": steps, "eta": eta,
                            "timesteps": pipe.scheduler.timesteps.tolist(),
                            "margin": margin(pipe.vqvae, trace["decode_input"])}


ldm_case("ldm-eta0", 0, 2, 3, 0.0)
ldm_case("ldm-eta1", 1, 1, 3, 1.0)


# --- LDMSuperResolutionPipeline: CompVis/ldm-super-resolution-4x-openimages' layout (VQModel (two blocks here: scale 2, the real one's three scale 4), a UNet of
# in_channels 6 = 3 latent + 3 image), tiny ------------------------------------------------------------------------------
SR = os.path.join(HERE, "tiny-ldm-sr")
vq_model(3, in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 2,
         up_block_types=["UpDecoderBlock2D"] * 2, block_out_channels=[4, 8], layers_per_block=1, latent_channels=3,
         sample_size=32, num_vq_embeddings=16, norm_num_groups=2).save_pretrained(os.path.join(SR, "vqvae"))
torch.manual_seed(4)
UNet2DModel(sample_size=16, in_channels=6, out_channels=3, layers_per_block=1, block_out_channels=[8, 16],
            down_block_types=["DownBlock2D", "AttnDownBlock2D"], up_block_types=["AttnUpBlock2D", "UpBlock2D"],
            norm_num_groups=4, attention_head_dim=8).save_pretrained(os.path.join(SR, "unet"))
DDIMScheduler(beta_start=0.0015, beta_end=0.015, beta_schedule="scaled_linear", clip_sample=False,
              num_train_timesteps=1000).save_pretrained(os.path.join(SR, "scheduler"))
write_json(os.path.join(SR, "model_index.json"), {
    "_class_name": "LDMSuperResolutionPipeline", "_diffusers_version": "0.25.1",
    "scheduler": ["diffusers", "DDIMScheduler"], "unet": ["diffusers", "UNet2DModel"],
    "vqvae": ["diffusers", "VQModel"]})

# a 37x34 RGB image: preprocess resizes it (LANCZOS) to 32x32, the multiples of 32 below
rng = np.random.RandomState(0)
yy, xx = np.mgrid[0:34, 0:37]
pixels = np.stack([xx * 6, yy * 7, (xx + yy) * 3], -1) + rng.randint(0, 40, (34, 37, 3))
PIL.Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB").save(os.path.join(HERE, "lowres.png"))
lowres = PIL.Image.open(os.path.join(HERE, "lowres.png")).convert("RGB")


def sr_case(name, seed, image, steps, eta, scheduler=None):
    pipe = load(LDMSuperResolutionPipeline, SR)
    if scheduler is not None:
        pipe.scheduler = scheduler.from_config(pipe.scheduler.config)
    trace = {"steps": []}
    traced(pipe, trace)
    unet_forward, inputs = pipe.unet.forward, []

    def traced_unet(x, t, *a, **k):
        inputs.append(x.clone())
        return unet_forward(x, t, *a, **k)
    pipe.unet.forward = traced_unet
    images = pipe(image, num_inference_steps=steps, eta=eta, generator=torch.manual_seed(seed), output_type="np").images
    p = name + "/"
    out[p + "unet_input1"] = inputs[0]
    out[p + "step1"] = trace["steps"][0]
    out[p + "latents"] = trace["steps"][-1]
    out[p + "images"] = torch.from_numpy(images)
    index["cases"][name] = {"seed": seed, "num_inference_steps": steps, "eta": eta,
                            "scheduler": type(pipe.scheduler).__name__, "timesteps": pipe.scheduler.timesteps.tolist(),
                            "image": "lowres.png" if isinstance(image, PIL.Image.Image) else p + "image",
                            "margin": margin(pipe.vqvae, trace["decode_input"])}


sr_case("sr-ddim-eta1", 9, lowres, 3, 1.0)
sr_case("sr-euler-ancestral", 6, lowres, 2, 0.0, EulerAncestralDiscreteScheduler)
# a tensor image is taken as it is (already in [-1, 1], no resize): batch 2 of 16x16
out["sr-lms-tensor/image"] = seeded((2, 3, 16, 16), 7).clamp(-1, 1)
sr_case("sr-lms-tensor", 8, out["sr-lms-tensor/image"], 2, 0.0, LMSDiscreteScheduler)

write_expected(HERE, "ldm-expected", out, index)
print(json.dumps({k: (v.get("timesteps"), v["margin"]) for k, v in index["cases"].items()}, indent=1))
