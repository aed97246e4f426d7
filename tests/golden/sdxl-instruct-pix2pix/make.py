"""Writes sdxl-instruct-pix2pix-expected.safetensors / .json and the tiny 8-channel SDXL UNet in unet/: diffusers
0.25.1's StableDiffusionXLInstructPix2PixPipeline on tests/golden/tiny-sdxl (its VAE and Euler scheduler) with that UNet.
See README.md in this folder.

Run from the repository root, in the environment ../diffusers-common/diffusers_prelude.py describes (keep that
folder next to this one):
  PYTHONPATH=/tmp/d/src:/tmp/hh/src:/tmp/stubs /usr/bin/python3 tests/golden/sdxl-instruct-pix2pix/make.py
"""
import json
import os
import shutil
import sys

import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.dirname(HERE)
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(GOLDEN, "diffusers-common"))
import transformers_stub  # noqa: E402,F401  (before diffusers)
from diffusers_prelude import TINY_SDXL_EMBEDS, diffusers, run_sdxl, tiny_sdxl_embeds, write_expected  # noqa: E402
from diffusers import (AutoencoderKL, DDIMScheduler, EulerDiscreteScheduler,  # noqa: E402
                       StableDiffusionXLInstructPix2PixPipeline, UNet2DConditionModel)

SDXL = os.path.join(GOLDEN, "tiny-sdxl")
UNET_SEED = 20252

# the tiny InstructPix2Pix SDXL UNet: tiny-sdxl's UNet config with in_channels 8 (latents + image latents), random
# weights drawn after torch.manual_seed(UNET_SEED)
unet_config = dict(UNet2DConditionModel.load_config(os.path.join(SDXL, "unet")))
unet_config["in_channels"] = 8
torch.manual_seed(UNET_SEED)
unet_folder = os.path.join(HERE, "unet")
if os.path.isdir(unet_folder):
    shutil.rmtree(unet_folder)
UNet2DConditionModel.from_config(unet_config).save_pretrained(unet_folder, safe_serialization=True)
unet = UNet2DConditionModel.from_pretrained(unet_folder, low_cpu_mem_usage=False).eval()
assert unet.config.in_channels == 8

init = Image.open(os.path.join(GOLDEN, "img2img-init.png"))
assert init.mode == "RGB" and init.size == (64, 64)
vae = AutoencoderKL.from_pretrained(os.path.join(SDXL, "vae"), low_cpu_mem_usage=False).eval()
out, index = {}, {"diffusers": diffusers.__version__, "torch": torch.__version__, "unet_seed": UNET_SEED, "pipelines": {}}


def run(name, scheduler="euler", **kw):
    sched = EulerDiscreteScheduler.from_pretrained(os.path.join(SDXL, "scheduler"))
    if scheduler == "ddim":
        sched = DDIMScheduler.from_config(sched.config)
    pipe = StableDiffusionXLInstructPix2PixPipeline(vae=vae, text_encoder=None, text_encoder_2=None, tokenizer=None,
                                                    tokenizer_2=None, unet=unet, scheduler=sched, add_watermarker=False)
    pipe.set_progress_bar_config(disable=True)
    args = {"num_inference_steps": 2, **kw}
    cfg = args.get("guidance_scale", 5.0) > 1 and args.get("image_guidance_scale", 1.5) >= 1
    embeds = tiny_sdxl_embeds(negative=cfg)
    tensors, timesteps = run_sdxl(pipe, image=init, generator=torch.Generator("cpu").manual_seed(0), **embeds, **args)
    out.update({f"pipeline/{name}/{k}": v for k, v in tensors.items()})
    index["pipelines"][name] = {"unet": "sdxl-instruct-pix2pix/unet", "vae": "tiny-sdxl/vae",
                                "scheduler": type(sched).__name__ + " from tiny-sdxl/scheduler's config",
                                "image": "img2img-init.png (RGB 64x64)", "seed": 0, "embeds": TINY_SDXL_EMBEDS,
                                "do_classifier_free_guidance": cfg, "unet_batch": int(tensors["unet_added_time_ids"].shape[0]),
                                "unet_timesteps": timesteps, **{k: list(v) if isinstance(v, tuple) else v for k, v in args.items()}}


# diffusers' defaults (guidance_scale 5, image_guidance_scale 1.5): three-way guidance, Euler (sigma space)
run("default")
# guidance 7.5, image_guidance_scale 1 (still three-way: guidance_scale > 1 and image_guidance_scale >= 1),
# guidance_rescale 0.7 and micro-conditioning
run("image-guidance-1-rescale", guidance_scale=7.5, image_guidance_scale=1.0, guidance_rescale=0.7,
    original_size=(96, 80), crops_coords_top_left=(4, 2), target_size=(64, 48))
# guidance_scale 1: no guidance, one UNet row per image; two images per prompt
run("nocfg-2images", guidance_scale=1.0, num_images_per_prompt=2)
# a scheduler outside sigma space (DDIM), 3 steps, guidance 7.5 / 1.5
run("ddim", scheduler="ddim", num_inference_steps=3, guidance_scale=7.5, image_guidance_scale=1.5)

index["unet_config"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in unet.config.items() if k != "_name_or_path"}
write_expected(HERE, "sdxl-instruct-pix2pix-expected", out, index)
print(json.dumps(index["pipelines"], indent=1))
