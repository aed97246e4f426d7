"""Writes sdxl-controlnet-inpaint-expected.safetensors / .json: diffusers 0.25.1's StableDiffusionXLControlNetInpaintPipeline
on tests/golden/tiny-sdxl with the tiny SDXL ControlNet of tests/golden/sdxl-controlnet-img2img/controlnet. See README.md
in this folder.

Run from the repository root, in the environment ../diffusers-common/diffusers_prelude.py describes (keep that
folder next to this one):
  PYTHONPATH=/tmp/d/src:/tmp/hh/src:/tmp/stubs /usr/bin/python3 tests/golden/sdxl-controlnet-inpaint/make.py
"""
import json
import os
import sys

import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.dirname(HERE)
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(GOLDEN, "diffusers-common"))
import transformers_stub  # noqa: E402,F401  (before diffusers)
from diffusers_prelude import TINY_SDXL_EMBEDS, diffusers, run_sdxl, tiny_sdxl_embeds, write_expected  # noqa: E402
from diffusers import (AutoencoderKL, ControlNetModel, EulerDiscreteScheduler,  # noqa: E402
                       StableDiffusionXLControlNetInpaintPipeline, UNet2DConditionModel)

out, index = {}, {"diffusers": diffusers.__version__, "torch": torch.__version__, "pipelines": {}}

unet = UNet2DConditionModel.from_pretrained(os.path.join(GOLDEN, "tiny-sdxl", "unet"), low_cpu_mem_usage=False).eval()
controlnet = ControlNetModel.from_pretrained(os.path.join(GOLDEN, "sdxl-controlnet-img2img", "controlnet"), low_cpu_mem_usage=False).eval()
init = Image.open(os.path.join(GOLDEN, "img2img-init.png"))
mask = Image.open(os.path.join(GOLDEN, "inpaint-mask.png"))
edges = Image.open(os.path.join(GOLDEN, "controlnet-edges.png"))
assert init.size == (64, 64) and mask.size == (64, 64) and edges.mode == "RGB" and edges.size == (64, 64)
vae = AutoencoderKL.from_pretrained(os.path.join(GOLDEN, "tiny-sdxl", "vae"), low_cpu_mem_usage=False).eval()


def run(name, **kw):
    scheduler = EulerDiscreteScheduler.from_pretrained(os.path.join(GOLDEN, "tiny-sdxl", "scheduler"))
    pipe = StableDiffusionXLControlNetInpaintPipeline(vae=vae, text_encoder=None, text_encoder_2=None, tokenizer=None,
                                                      tokenizer_2=None, unet=unet, controlnet=controlnet, scheduler=scheduler)
    args = {"num_inference_steps": 5, **kw}
    embeds = tiny_sdxl_embeds(negative=args.get("guidance_scale", 5.0) > 1)
    tensors, timesteps = run_sdxl(pipe, image=init, mask_image=mask, control_image=edges, generator=torch.Generator("cpu").manual_seed(0), **embeds,
                                  **args)
    out.update({f"pipeline/{name}/{k}": v for k, v in tensors.items()})
    index["pipelines"][name] = {"unet": "tiny-sdxl/unet", "vae": "tiny-sdxl/vae", "scheduler": "tiny-sdxl/scheduler",
                                "controlnet": "sdxl-controlnet-img2img/controlnet", "image": "img2img-init.png (RGB 64x64)",
                                "mask_image": "inpaint-mask.png (64x64)", "control_image": "controlnet-edges.png (RGB 64x64)",
                                "seed": 0, "embeds": TINY_SDXL_EMBEDS, "unet_timesteps": timesteps,
                                **{k: list(v) if isinstance(v, tuple) else v for k, v in args.items()}}


# defaults: strength 0.9999 (4 of 5 steps), guidance 5, controlnet_conditioning_scale 1.0 (tiny-sdxl's 4-channel UNet:
# the image latents are blended back outside the mask after every step)
run("default")
# strength 0.6 (3 of 5 steps), guess mode, the ControlNet at 0.7 in the first half, micro-conditioning (the negative
# row is the positive one)
run("strength0.6-guess-window", strength=0.6, guess_mode=True, controlnet_conditioning_scale=0.7, control_guidance_end=0.5,
    original_size=(96, 80), crops_coords_top_left=(4, 2), target_size=(64, 48))
# no guidance, two images per prompt, strength 1 (pure noise times init_noise_sigma)
run("nocfg-2images-strength1", guidance_scale=1.0, num_images_per_prompt=2, strength=1.0)

write_expected(HERE, "sdxl-controlnet-inpaint-expected", out, index)
print(json.dumps(index["pipelines"], indent=1))
