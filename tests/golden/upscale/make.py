"""Writes tests/golden/tiny-sd-upscale/ (a tiny StableDiffusionUpscalePipeline folder shaped like
stabilityai/stable-diffusion-x4-upscaler) and upscale-expected.safetensors / .json: diffusers 0.25.1's
StableDiffusionUpscalePipeline on it. See README.md in this folder.

Run from the repository root, in the environment ../diffusers-common/diffusers_prelude.py describes (keep that
folder next to this one):
  PYTHONPATH=/tmp/d/src:/tmp/hh/src:/tmp/stubs /usr/bin/python3 tests/golden/upscale/make.py
"""
import json
import os
import shutil
import sys

import PIL.Image
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.dirname(HERE)
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(GOLDEN, "diffusers-common"))
import transformers_stub  # noqa: E402,F401  (before diffusers)
from diffusers_prelude import diffusers, load_file, write_expected, write_json  # noqa: E402
from diffusers import (AutoencoderKL, DDIMScheduler, DDPMScheduler, EulerAncestralDiscreteScheduler,  # noqa: E402
                       StableDiffusionUpscalePipeline, UNet2DConditionModel)

FOLDER = os.path.join(GOLDEN, "tiny-sd-upscale")
TINY_SD = os.path.join(GOLDEN, "tiny-sd")


# --- the tiny folder ------------------------------------------------------------------------------------------------
# model_index.json as the real x4 upscaler's: its components, max_noise_level 350 and the empty optional slots
write_json(os.path.join(FOLDER, "model_index.json"), {
    "_class_name": "StableDiffusionUpscalePipeline", "_diffusers_version": "0.25.1",
    "feature_extractor": [None, None], "low_res_scheduler": ["diffusers", "DDPMScheduler"], "max_noise_level": 350,
    "safety_checker": [None, None], "scheduler": ["diffusers", "DDIMScheduler"],
    "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
    "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"], "watermarker": [None, None]})
# the schedulers: the keys and values of the real folder's scheduler_config.json files (see README.md)
write_json(os.path.join(FOLDER, "scheduler", "scheduler_config.json"), {
    "_class_name": "DDIMScheduler", "_diffusers_version": "0.8.0.dev0", "beta_end": 0.02, "beta_schedule": "scaled_linear",
    "beta_start": 0.0001, "clip_sample": False, "num_train_timesteps": 1000, "prediction_type": "v_prediction",
    "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1, "trained_betas": None})
write_json(os.path.join(FOLDER, "low_res_scheduler", "scheduler_config.json"), {
    "_class_name": "DDPMScheduler", "_diffusers_version": "0.8.0.dev0", "beta_end": 0.02, "beta_schedule": "scaled_linear",
    "beta_start": 0.0001, "clip_sample": False, "num_train_timesteps": 1000, "prediction_type": "epsilon",
    "trained_betas": None, "variance_type": "fixed_small"})
# tiny-sd's text encoder and tokenizer (the real folder has OpenCLIP ViT-H's; only their width must fit the UNet)
for sub in ["text_encoder", "tokenizer"]:
    shutil.rmtree(os.path.join(FOLDER, sub), ignore_errors=True)
    shutil.copytree(os.path.join(TINY_SD, sub), os.path.join(FOLDER, sub))
# the UNet: tiny-sd's, laid out as the x4 upscaler's (7 input channels = 4 latent + 3 image, a class embedding table of
# 1000 noise levels, only_cross_attention per block, linear projections)
with open(os.path.join(TINY_SD, "unet", "config.json")) as f:
    unet_config = json.load(f)
for k in ["_class_name", "_diffusers_version"]:
    del unet_config[k]
unet_config.update(in_channels=7, out_channels=4, num_class_embeds=1000, only_cross_attention=[True, False],
                   use_linear_projection=True, sample_size=16)
torch.manual_seed(0)
unet = UNet2DConditionModel(**unet_config)
unet.save_pretrained(os.path.join(FOLDER, "unet"))
# the VAE: three blocks (latents 1/4 of the image, as the x4 upscaler's [128, 256, 512]), scaling_factor 0.08333
torch.manual_seed(1)
vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 3,
                    up_block_types=["UpDecoderBlock2D"] * 3, block_out_channels=[32, 32, 64], layers_per_block=1,
                    latent_channels=4, norm_num_groups=32, sample_size=64, scaling_factor=0.08333)
vae.save_pretrained(os.path.join(FOLDER, "vae"))

# --- the pipeline, loaded back from the folder by diffusers' own loaders ---------------------------------------------
unet = UNet2DConditionModel.from_pretrained(os.path.join(FOLDER, "unet"), low_cpu_mem_usage=False).eval()
vae = AutoencoderKL.from_pretrained(os.path.join(FOLDER, "vae"), low_cpu_mem_usage=False).eval()
assert vae.config.scaling_factor == 0.08333 and unet.config.in_channels == 7
pipe = StableDiffusionUpscalePipeline(
    vae=vae, text_encoder=None, tokenizer=None, unet=unet,
    low_res_scheduler=DDPMScheduler.from_pretrained(FOLDER, subfolder="low_res_scheduler"),
    scheduler=DDIMScheduler.from_pretrained(FOLDER, subfolder="scheduler"), max_noise_level=350)
pipe.set_progress_bar_config(disable=True)
assert pipe.vae_scale_factor == 4

# prompt embeddings of the real transformers (tiny-sd's text encoder): prompt 0 "a photo of a cat", prompt 1 ""
sd = load_file(os.path.join(GOLDEN, "tiny-sd-expected.safetensors"))
with open(os.path.join(GOLDEN, "tiny-sd-expected.json")) as f:
    prompts = json.load(f)["prompts"]
assert prompts[0] == "a photo of a cat" and prompts[1] == ""
prompt_embeds = sd["text_encoder/last_hidden_state"][0:1].clone()
negative_embeds = sd["text_encoder/last_hidden_state"][1:2].clone()

# the low-resolution inputs: tests/golden/img2img-init.png reduced with PIL's bicubic to 16x16 and to 18x14 (not a
# multiple of the VAE scale factor 4: the pipeline's VaeImageProcessor resizes it to 16x12, bicubic)
init = PIL.Image.open(os.path.join(GOLDEN, "img2img-init.png")).convert("RGB")
images = {"low-res-16x16.png": init.resize((16, 16), PIL.Image.BICUBIC),
          "low-res-18x14.png": init.resize((18, 14), PIL.Image.BICUBIC)}
for name, im in images.items():
    im.save(os.path.join(HERE, name))
images = {name: PIL.Image.open(os.path.join(HERE, name)).convert("RGB") for name in images}

out, index = {}, {"diffusers": diffusers.__version__, "torch": torch.__version__, "cases": {}}
ddim = pipe.scheduler
recorded = {}
real_add_noise = pipe.low_res_scheduler.add_noise
real_prepare_latents = pipe.prepare_latents


def add_noise(original, noise, timesteps):
    noised = real_add_noise(original, noise, timesteps)
    recorded["image"], recorded["image_noise"], recorded["noised_image"] = original.clone(), noise.clone(), noised.clone()
    return noised


def prepare_latents(*args, **kwargs):
    latents = real_prepare_latents(*args, **kwargs)
    recorded["initial_latents"] = latents.clone()
    return latents


pipe.low_res_scheduler.add_noise = add_noise
pipe.prepare_latents = prepare_latents


def scheduler_config(scheduler):
    # _use_default_values is a list made from a set: sorted, so that the file is rewritten byte-identically
    return {k: sorted(v) if k == "_use_default_values" else v for k, v in dict(scheduler.config).items()}


def case(name, image, scheduler, steps, guidance_scale=9.0, noise_level=20, num_images_per_prompt=1, seed=0, eta=0.0):
    recorded.clear()
    steps_latents = []
    pipe.scheduler = scheduler
    cfg = guidance_scale > 1
    with torch.no_grad():
        result = pipe(prompt_embeds=prompt_embeds, negative_prompt_embeds=negative_embeds if cfg else None,
                      image=images[image], num_inference_steps=steps, guidance_scale=guidance_scale, noise_level=noise_level,
                      num_images_per_prompt=num_images_per_prompt, eta=eta, generator=torch.Generator("cpu").manual_seed(seed),
                      output_type="np", callback=lambda i, t, latents: steps_latents.append(latents.clone()))
    p = name + "/"
    for k, v in recorded.items():
        out[p + k] = v.contiguous()
    out[p + "latents_after_step"] = torch.stack(steps_latents)
    out[p + "images"] = torch.from_numpy(result.images.copy())
    index["cases"][name] = {"image": image, "scheduler": scheduler.__class__.__name__, "scheduler_config": scheduler_config(scheduler),
                            "call": {"prompt_embeds": "tiny-sd-expected text_encoder/last_hidden_state[0:1] ('a photo of a cat')",
                                     "negative_prompt_embeds": "... [1:2] ('')" if cfg else None,
                                     "num_inference_steps": steps, "guidance_scale": guidance_scale, "noise_level": noise_level,
                                     "num_images_per_prompt": num_images_per_prompt, "eta": eta,
                                     "generator": f"torch.Generator('cpu').manual_seed({seed})", "output_type": "np"},
                            "timesteps": [int(t) for t in scheduler.timesteps]}


case("ddim", "low-res-16x16.png", ddim, 4)
case("ddim_noise_level_150", "low-res-16x16.png", ddim, 4, noise_level=150, seed=1)
case("ddim_no_guidance", "low-res-16x16.png", ddim, 4, guidance_scale=1.0, seed=2)
case("ddim_two_per_prompt", "low-res-16x16.png", ddim, 3, num_images_per_prompt=2, seed=3)
case("ddim_resized_18x14", "low-res-18x14.png", ddim, 3, seed=4)
case("euler_ancestral", "low-res-16x16.png", EulerAncestralDiscreteScheduler.from_config(ddim.config), 4, seed=5)

write_expected(HERE, "upscale-expected", out, index)
print(json.dumps({k: (v["timesteps"], float(out[k + "/images"].mean())) for k, v in index["cases"].items()}, indent=1))
