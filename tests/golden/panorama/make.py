"""Writes panorama-expected.safetensors / .json and the tiny VAE of tiny-vae8/: diffusers 0.25.1's
StableDiffusionPanoramaPipeline (MultiDiffusion) on tiny-sd's UNet with a VAE of scale factor 8. See README.md in this
folder.

Run from the repository root, in the environment ../diffusers-common/diffusers_prelude.py describes (keep that
folder next to this one):
  PYTHONPATH=/tmp/d/src:/tmp/hh/src:/tmp/stubs /usr/bin/python3 tests/golden/panorama/make.py
"""
import importlib.util
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.dirname(HERE)
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(GOLDEN, "diffusers-common"))
import transformers_stub  # noqa: E402,F401  (before diffusers)
from diffusers_prelude import diffusers, load_file, save_and_reload, write_expected  # noqa: E402
from diffusers import (AutoencoderKL, DDIMScheduler, DPMSolverMultistepScheduler, PNDMScheduler,  # noqa: E402
                       StableDiffusionPanoramaPipeline, UNet2DConditionModel)

# get_views measures the panorama in pixels / 8, so the latents must be pixels / 8 too: tiny-sd's VAE has scale
# factor 2, so the panoramas run with a tiny VAE of four levels (scale factor 8), random weights
torch.manual_seed(7)
vae8 = save_and_reload(AutoencoderKL(block_out_channels=[8, 8, 8, 8], down_block_types=["DownEncoderBlock2D"] * 4,
                                     up_block_types=["UpDecoderBlock2D"] * 4, layers_per_block=1, norm_num_groups=4,
                                     latent_channels=4, sample_size=64).eval(), os.path.join(HERE, "tiny-vae8"))
vae2 = AutoencoderKL.from_pretrained(os.path.join(GOLDEN, "tiny-sd", "vae"), low_cpu_mem_usage=False).eval()
unet = UNet2DConditionModel.from_pretrained(os.path.join(GOLDEN, "tiny-sd", "unet"), low_cpu_mem_usage=False).eval()
SD = load_file(os.path.join(GOLDEN, "tiny-sd-expected.safetensors"))
embeds = dict(prompt_embeds=SD["pipeline/pndm_default/prompt_embeds"], negative_prompt_embeds=SD["pipeline/pndm_default/negative_prompt_embeds"])
SCHEDULERS = {"ddim": DDIMScheduler, "pndm": PNDMScheduler, "dpmsolver-multistep": DPMSolverMultistepScheduler}

out = {}
index = {"diffusers": diffusers.__version__, "torch": torch.__version__, "vae8": {k: v for k, v in vae8.config.items() if k != "_name_or_path"},
         "embeds": "tiny-sd-expected.safetensors pipeline/pndm_default/prompt_embeds, negative_prompt_embeds ('a photo of a cat', '')",
         "cases": {}}


def run(name, scheduler, vae="tiny-vae8", ip_adapter=None, **kw):
    sched = SCHEDULERS[scheduler].from_pretrained(os.path.join(GOLDEN, "tiny-sd", "scheduler"))
    pipe = StableDiffusionPanoramaPipeline(vae=vae8 if vae == "tiny-vae8" else vae2, text_encoder=None, tokenizer=None,
                                           unet=unet if ip_adapter is None else fresh_unet(), scheduler=sched, safety_checker=None,
                                           feature_extractor=None, requires_safety_checker=False,
                                           **({} if ip_adapter is None else {"image_encoder": ip_encoder()}))
    if ip_adapter is not None:   # as tests/golden/ip-adapter/make.py loads it; the image as that folder's processor made it
        pipe.load_ip_adapter(IP_DIR, subfolder="", weight_name=ip_adapter)
    views = pipe.get_views(kw["height"], kw["width"], circular_padding=kw.get("circular_padding", False))
    args = {"num_inference_steps": 2, "guidance_scale": 7.5, **kw}
    call = dict(args, **embeds)
    if ip_adapter is not None:
        call["ip_adapter_image"] = load_file(os.path.join(IP_DIR, "ip-adapter-expected.safetensors"))["processor/ip_image"]
    if call["guidance_scale"] <= 1.0:
        del call["negative_prompt_embeds"]
    latents = []

    def callback(i, t, lat):
        latents.append(lat.clone())

    with torch.no_grad():
        images = pipe(generator=torch.Generator("cpu").manual_seed(0), callback=callback, callback_steps=1, output_type="np", **call).images
    out[f"{name}/latents_step0"] = latents[0].contiguous()
    out[f"{name}/latents"] = latents[-1].contiguous()
    if name in IMAGES:
        out[f"{name}/image"] = torch.from_numpy(images).contiguous()
    image_diffs[name] = images
    index["cases"][name] = {"scheduler": scheduler, "scheduler_config": "tiny-sd/scheduler (from_pretrained of the class)", "vae": vae,
                            "unet": "tiny-sd/unet", "seed": 0, "views": [list(v) for v in views], "callbacks": len(latents),
                            "timesteps": [float(t) for t in pipe.scheduler.timesteps], **args}
    if ip_adapter is not None:
        index["cases"][name].update(ip_adapter=f"ip-adapter/{ip_adapter} (image_encoder: ip-adapter/image_encoder)",
                                    ip_adapter_image="ip-adapter/ip-adapter-expected.safetensors processor/ip_image (ip-image.png)")


IP_DIR = os.path.join(GOLDEN, "ip-adapter")


def fresh_unet():   # load_ip_adapter changes the UNet's attention processors: not the one the other cases share
    return UNet2DConditionModel.from_pretrained(os.path.join(GOLDEN, "tiny-sd", "unet"), low_cpu_mem_usage=False).eval()


def ip_encoder():
    """The tiny CLIP vision encoder of ../ip-adapter/image_encoder, in that make.py's transcription of transformers'
    CLIPVisionModelWithProjection (transformers is a stub here), with its saved weights."""
    spec = importlib.util.spec_from_file_location("ip_adapter_make", os.path.join(IP_DIR, "make.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    enc_dir = os.path.join(IP_DIR, "image_encoder")
    encoder = module.VisionModelWithProjection(json.load(open(os.path.join(enc_dir, "config.json"))))
    encoder.load_state_dict(load_file(os.path.join(enc_dir, "model.safetensors")))
    return encoder.eval()


IMAGES = ("ddim", "ddim-circular", "vae2-uncovered", "ddim-ip-adapter-basic")   # the decode and the padded decode; the other cases keep their latents
image_diffs = {}
SIZE = dict(height=16, width=640)   # latents 2 x 80: 3 windows (2 x 64 each, the window cut to the 2 rows), 10 with circular padding
run("ddim", "ddim", **SIZE)
run("ddim-vb2", "ddim", view_batch_size=2, **SIZE)
run("ddim-circular", "ddim", circular_padding=True, **SIZE)
run("ddim-circular-vb3", "ddim", circular_padding=True, view_batch_size=3, **SIZE)
run("ddim-eta0.5-2images-vb2", "ddim", eta=0.5, num_images_per_prompt=2, view_batch_size=2, **SIZE)
run("ddim-nocfg", "ddim", guidance_scale=1.0, **SIZE)
run("pndm", "pndm", num_inference_steps=4, **SIZE)
run("dpmsolver-multistep", "dpmsolver-multistep", num_inference_steps=4, **SIZE)
run("dpmsolver-multistep-vb2", "dpmsolver-multistep", num_inference_steps=4, view_batch_size=2, **SIZE)
# tiny-sd's own VAE (scale factor 2): latents 4 x 80 for 8 x 160 pixels, one window (get_views sees 1 x 20); the
# columns 64-79 no window covers are zeros after the first step, as diffusers leaves them
run("vae2-uncovered", "ddim", vae="tiny-sd/vae", height=8, width=160)
# an image prompt: ../ip-adapter's basic adapter and encoder, one window per UNet call (view_batch_size 1: diffusers
# 0.25.1 passes the image embeds of one window to every batch of windows); last, on a UNet of its own
run("ddim-ip-adapter-basic", "ddim", ip_adapter="ip-adapter-basic.bin", **SIZE)

for a, b in [("ddim", "ddim-vb2"), ("ddim-circular", "ddim-circular-vb3"), ("dpmsolver-multistep", "dpmsolver-multistep-vb2")]:
    index["cases"][b]["max_abs_diff_to_" + a] = {"latents": float((out[f"{a}/latents"] - out[f"{b}/latents"]).abs().max()),
                                                 "image": float(abs(image_diffs[a] - image_diffs[b]).max())}

write_expected(HERE, "panorama-expected", out, index)
print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "views"} for k, v in index["cases"].items()}, indent=1))
