"""Writes sdxl-controlnet-img2img-expected.safetensors / .json and the tiny SDXL ControlNet in controlnet/: diffusers
0.25.1's StableDiffusionXLControlNetImg2ImgPipeline on tests/golden/tiny-sdxl. See README.md in this folder.

Run from the repository root, in the environment ../diffusers-common/diffusers_prelude.py describes (keep that
folder next to this one):
  PYTHONPATH=/tmp/d/src:/tmp/hh/src:/tmp/stubs /usr/bin/python3 tests/golden/sdxl-controlnet-img2img/make.py
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
from diffusers_prelude import TINY_SDXL_EMBEDS, diffusers, run_sdxl, save_and_reload, tiny_sdxl_embeds, write_expected  # noqa: E402
from diffusers import (AutoencoderKL, ControlNetModel, EulerDiscreteScheduler,  # noqa: E402
                       StableDiffusionXLControlNetImg2ImgPipeline, UNet2DConditionModel)

out, index = {}, {"diffusers": diffusers.__version__, "torch": torch.__version__, "pipelines": {}}

# the tiny SDXL ControlNet: from_unet(tiny-sdxl's UNet) with one halving in its conditioning embedding (the VAE scale
# factor is 2), its zero convolutions filled with seeded values so that the residuals are not zeros
unet = UNet2DConditionModel.from_pretrained(os.path.join(GOLDEN, "tiny-sdxl", "unet"), low_cpu_mem_usage=False).eval()
torch.manual_seed(6)   # from_unet copies the UNet's weights; the conditioning embedding gets fresh random ones
controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(16, 32))
g = torch.Generator("cpu").manual_seed(7)
with torch.no_grad():
    for name, p in controlnet.named_parameters():
        if name.startswith("controlnet_down_blocks") or name.startswith("controlnet_mid_block"):
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
controlnet = save_and_reload(controlnet, os.path.join(HERE, "controlnet"))

init = Image.open(os.path.join(GOLDEN, "img2img-init.png"))
edges = Image.open(os.path.join(GOLDEN, "controlnet-edges.png"))
assert init.mode == "RGB" and init.size == (64, 64) and edges.mode == "RGB" and edges.size == (64, 64)
vae = AutoencoderKL.from_pretrained(os.path.join(GOLDEN, "tiny-sdxl", "vae"), low_cpu_mem_usage=False).eval()


def run(name, **kw):
    scheduler = EulerDiscreteScheduler.from_pretrained(os.path.join(GOLDEN, "tiny-sdxl", "scheduler"))
    pipe = StableDiffusionXLControlNetImg2ImgPipeline(vae=vae, text_encoder=None, text_encoder_2=None, tokenizer=None,
                                                      tokenizer_2=None, unet=unet, controlnet=controlnet, scheduler=scheduler)
    args = {"num_inference_steps": 5, **kw}
    embeds = tiny_sdxl_embeds(negative=args.get("guidance_scale", 5.0) > 1)
    tensors, timesteps = run_sdxl(pipe, image=init, control_image=edges, generator=torch.Generator("cpu").manual_seed(0), **embeds,
                                  **args)
    out.update({f"pipeline/{name}/{k}": v for k, v in tensors.items()})
    index["pipelines"][name] = {"unet": "tiny-sdxl/unet", "vae": "tiny-sdxl/vae", "scheduler": "tiny-sdxl/scheduler",
                                "controlnet": "sdxl-controlnet-img2img/controlnet", "image": "img2img-init.png (RGB 64x64)",
                                "control_image": "controlnet-edges.png (RGB 64x64)", "seed": 0, "embeds": TINY_SDXL_EMBEDS,
                                "unet_timesteps": timesteps, **{k: list(v) if isinstance(v, tuple) else v for k, v in args.items()}}


# defaults: strength 0.8 (4 of 5 steps), guidance 5, controlnet_conditioning_scale 0.8
run("default")
# strength 0.5 (4 of 8 steps), the ControlNet at 0.6 in the middle half, micro-conditioning with negative sizes (the
# negative crop is unused without requires_aesthetics_score: the negative row takes the positive crop)
run("strength0.5-window", num_inference_steps=8, strength=0.5, controlnet_conditioning_scale=0.6, control_guidance_start=0.25,
    control_guidance_end=0.75, original_size=(96, 80), crops_coords_top_left=(4, 2), target_size=(64, 48),
    negative_original_size=(32, 40), negative_crops_coords_top_left=(8, 8), negative_target_size=(56, 64))
# guess mode with guidance: the ControlNet sees the conditional half only
run("guess-mode", guess_mode=True, guidance_scale=7.0)
# no guidance, two images per prompt (one generator: one VAE sample of the batch-1 image, then noise for both)
run("nocfg-2images", guidance_scale=1.0, num_images_per_prompt=2, strength=0.6)

index["controlnet_config"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in controlnet.config.items() if k != "_name_or_path"}
write_expected(HERE, "sdxl-controlnet-img2img-expected", out, index)
print(json.dumps(index["pipelines"], indent=1))
