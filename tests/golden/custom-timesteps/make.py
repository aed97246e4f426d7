"""Writes custom-timesteps-expected.safetensors / .json: diffusers 0.25.1's pipelines with their `timesteps` argument
(custom timesteps through retrieve_timesteps) and the inpaint pipeline's `masked_image_latents`, on the tiny golden
models. See README.md in this folder.

Run from the repository root, in the environment ../diffusers-common/diffusers_prelude.py describes (keep that
folder next to this one):
  PYTHONPATH=/tmp/d/src:/tmp/hh/src:/tmp/stubs /usr/bin/python3 tests/golden/custom-timesteps/make.py
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
from diffusers_prelude import TINY_SDXL_EMBEDS, diffusers, load_file, run_sdxl, seeded, tiny_sdxl_embeds, write_expected  # noqa: E402
from diffusers import (AutoencoderKL, DDPMScheduler, EulerDiscreteScheduler, LCMScheduler, PNDMScheduler,  # noqa: E402
                       StableDiffusionImg2ImgPipeline, StableDiffusionInpaintPipeline, StableDiffusionPipeline,
                       StableDiffusionXLPipeline, UNet2DConditionModel)

out, index = {}, {"diffusers": diffusers.__version__, "torch": torch.__version__, "pipelines": {}}

SD = load_file(os.path.join(GOLDEN, "tiny-sd-expected.safetensors"))
SD_EMBEDS = "tiny-sd-expected.safetensors pipeline/pndm_default/prompt_embeds, negative_prompt_embeds ('a photo of a cat', '')"
sd_embeds = dict(prompt_embeds=SD["pipeline/pndm_default/prompt_embeds"], negative_prompt_embeds=SD["pipeline/pndm_default/negative_prompt_embeds"])
init = Image.open(os.path.join(GOLDEN, "img2img-init.png"))
mask = Image.open(os.path.join(GOLDEN, "inpaint-mask.png"))

sd_vae = AutoencoderKL.from_pretrained(os.path.join(GOLDEN, "tiny-sd", "vae"), low_cpu_mem_usage=False).eval()
sd_unet = UNet2DConditionModel.from_pretrained(os.path.join(GOLDEN, "tiny-sd", "unet"), low_cpu_mem_usage=False).eval()
inpaint_unet = UNet2DConditionModel.from_pretrained(os.path.join(GOLDEN, "tiny-sd-inpaint", "unet"), low_cpu_mem_usage=False).eval()
SCHEDULERS = {"LCMScheduler": LCMScheduler, "DDPMScheduler": DDPMScheduler, "PNDMScheduler": PNDMScheduler}


def scheduler(name, folder="tiny-sd"):
    """The folder's scheduler config (tiny-sd: PNDMScheduler's) taken by another class, as pipe.scheduler = X.from_config(...)."""
    return SCHEDULERS[name].from_config(PNDMScheduler.load_config(os.path.join(GOLDEN, folder, "scheduler")))


def run(name, pipe, record, **kw):
    """pipe(**kw, output_type="np") without gradients: stores the latents after the last step, the image and the
    timestep of every UNet call (also in the JSON)."""
    latents, timesteps = [], []
    forward = pipe.unet.forward

    def unet_forward(*a, **k):
        timesteps.append(int(a[1]))
        return forward(*a, **k)

    def callback(i, t, lat):
        latents.append(lat.clone())

    pipe.unet.forward = unet_forward
    try:
        with torch.no_grad():
            images = pipe(callback=callback, callback_steps=1, output_type="np", **kw).images
    finally:
        del pipe.unet.forward
    out[f"pipeline/{name}/latents"] = latents[-1].contiguous()
    out[f"pipeline/{name}/image"] = torch.from_numpy(images).contiguous()
    out[f"pipeline/{name}/unet_timesteps"] = torch.tensor(timesteps, dtype=torch.int64)
    index["pipelines"][name] = dict(record, unet_timesteps=timesteps)


def sd_record(args, **extra):
    return dict({k: v for k, v in args.items() if k not in ("image", "mask_image", "generator", "prompt_embeds",
                                                         "negative_prompt_embeds", "masked_image_latents")},
                embeds=SD_EMBEDS, seed=0, vae="tiny-sd/vae", **extra)


# 1. StableDiffusionPipeline: LCM-style (LCMScheduler, guidance 1, so no negative embeddings) and DDPM with guidance
for name, sched, timesteps, guidance in [("sd-lcm", "LCMScheduler", [999, 759, 499, 259], 1.0),
                                         ("sd-ddpm-cfg", "DDPMScheduler", [900, 700, 450, 200, 50], 7.5)]:
    pipe = StableDiffusionPipeline(vae=sd_vae, text_encoder=None, tokenizer=None, unet=sd_unet, scheduler=scheduler(sched),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    args = dict(height=32, width=32, timesteps=timesteps, guidance_scale=guidance, **sd_embeds)
    if guidance <= 1.0:
        del args["negative_prompt_embeds"]
    run(name, pipe, sd_record(args, unet="tiny-sd/unet", scheduler=f"{sched}.from_config(tiny-sd/scheduler)"),
        generator=torch.Generator("cpu").manual_seed(0), **args)

# 2. StableDiffusionImg2ImgPipeline, strength 0.6: get_timesteps keeps the last int(len(timesteps) * 0.6)
for name, sched, timesteps, guidance in [("img2img-ddpm-cfg", "DDPMScheduler", [999, 799, 599, 399, 199], 7.5),
                                         ("img2img-lcm", "LCMScheduler", [999, 759, 499, 259], 1.0)]:
    pipe = StableDiffusionImg2ImgPipeline(vae=sd_vae, text_encoder=None, tokenizer=None, unet=sd_unet, scheduler=scheduler(sched),
                                          safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    args = dict(image=init, strength=0.6, timesteps=timesteps, guidance_scale=guidance, **sd_embeds)
    if guidance <= 1.0:
        del args["negative_prompt_embeds"]
    run(name, pipe, sd_record(args, unet="tiny-sd/unet", scheduler=f"{sched}.from_config(tiny-sd/scheduler)",
                              image="img2img-init.png"), generator=torch.Generator("cpu").manual_seed(0), **args)

# 3. StableDiffusionInpaintPipeline (tiny-sd-inpaint's 9-channel UNet): masked_image_latents given (then the masked
#    image is not encoded), with the folder's PNDMScheduler and with DDPM custom timesteps at strength 0.6
masked_image_latents = seeded((1, 4, 32, 32), 7) * 0.5
out["inputs/masked_image_latents"] = masked_image_latents
for name, sched, extra in [("inpaint-masked-latents", "PNDMScheduler", dict(num_inference_steps=4)),
                           ("inpaint-masked-latents-ddpm", "DDPMScheduler", dict(timesteps=[999, 799, 599, 399, 199], strength=0.6))]:
    pipe = StableDiffusionInpaintPipeline(vae=sd_vae, text_encoder=None, tokenizer=None, unet=inpaint_unet, scheduler=scheduler(sched),
                                          safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    args = dict(image=init, mask_image=mask, masked_image_latents=masked_image_latents, guidance_scale=7.5, **extra, **sd_embeds)
    run(name, pipe, sd_record(args, unet="tiny-sd-inpaint/unet", scheduler=f"{sched}.from_config(tiny-sd/scheduler)",
                              image="img2img-init.png", mask_image="inpaint-mask.png",
                              masked_image_latents="inputs/masked_image_latents = seeded((1, 4, 32, 32), 7) * 0.5"),
        generator=torch.Generator("cpu").manual_seed(0), **args)

# 4. StableDiffusionXLPipeline with LCMScheduler timesteps, guidance 1
xl_vae = AutoencoderKL.from_pretrained(os.path.join(GOLDEN, "tiny-sdxl", "vae"), low_cpu_mem_usage=False).eval()
xl_unet = UNet2DConditionModel.from_pretrained(os.path.join(GOLDEN, "tiny-sdxl", "unet"), low_cpu_mem_usage=False).eval()
xl_sched = LCMScheduler.from_config(EulerDiscreteScheduler.load_config(os.path.join(GOLDEN, "tiny-sdxl", "scheduler")))
pipe = StableDiffusionXLPipeline(vae=xl_vae, text_encoder=None, text_encoder_2=None, tokenizer=None, tokenizer_2=None,
                                 unet=xl_unet, scheduler=xl_sched)
args = dict(height=32, width=32, timesteps=[999, 759, 499, 259], guidance_scale=1.0)
stored, unet_timesteps = run_sdxl(pipe, generator=torch.Generator("cpu").manual_seed(0), **tiny_sdxl_embeds(negative=False), **args)
out["pipeline/sdxl-lcm/latents"], out["pipeline/sdxl-lcm/image"] = stored["latents"], stored["image"]
out["pipeline/sdxl-lcm/unet_timesteps"] = torch.tensor([int(t) for t in unet_timesteps], dtype=torch.int64)
index["pipelines"]["sdxl-lcm"] = dict(args, unet="tiny-sdxl/unet", vae="tiny-sdxl/vae", scheduler="LCMScheduler.from_config(tiny-sdxl/scheduler)",
                                      embeds=TINY_SDXL_EMBEDS + ", the prompt row only", seed=0, unet_timesteps=[int(t) for t in unet_timesteps])

# 5. the refusal of a scheduler without custom timesteps, in diffusers' words
pipe = StableDiffusionPipeline(vae=sd_vae, text_encoder=None, tokenizer=None, unet=sd_unet, scheduler=scheduler("PNDMScheduler"),
                               safety_checker=None, feature_extractor=None, requires_safety_checker=False)
try:
    pipe(height=32, width=32, timesteps=[999, 499], guidance_scale=1.0, prompt_embeds=sd_embeds["prompt_embeds"], output_type="np")
    raise SystemExit("PNDMScheduler took custom timesteps")
except ValueError as e:
    index["refusal"] = {"scheduler": "PNDMScheduler", "message": str(e)}

write_expected(HERE, "custom-timesteps-expected", out, index)
print(json.dumps({k: v for k, v in index.items() if k != "keys"}, indent=1))
