"""Writes t2i-adapter-expected.safetensors / .json and the tiny adapters of tests/golden/tiny-t2i-adapter/: diffusers
0.25.1's T2IAdapter (full_adapter, light_adapter, full_adapter_xl), MultiAdapter, StableDiffusionAdapterPipeline and
StableDiffusionXLAdapterPipeline on the tiny golden models. See README.md in this folder.

Run from the repository root, in the environment ../diffusers-common/diffusers_prelude.py describes (keep that
folder next to this one):
  PYTHONPATH=/tmp/d/src:/tmp/hh/src:/tmp/stubs /usr/bin/python3 tests/golden/t2i-adapter/make.py
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
from diffusers_prelude import (TINY_SDXL_EMBEDS, diffusers, load_file, save_and_reload, seeded,  # noqa: E402
                               tiny_sdxl_embeds, write_expected)
from diffusers import (AutoencoderKL, EulerDiscreteScheduler, MultiAdapter, PNDMScheduler,  # noqa: E402
                       StableDiffusionAdapterPipeline, StableDiffusionXLAdapterPipeline, T2IAdapter,
                       UNet2DConditionModel)

MODELS = os.path.join(GOLDEN, "tiny-t2i-adapter")


def adapter(name, seed, **kw):
    torch.manual_seed(seed)
    return save_and_reload(T2IAdapter(**kw).eval(), os.path.join(MODELS, name))


out, index = {}, {"diffusers": diffusers.__version__, "torch": torch.__version__, "models": {}, "forward": {}, "pipelines": {}}

# tiny-sd's UNet starts with a DownBlock2D (its adapter residual goes after the downsampler), so SD's adapters get a
# UNet in SD 1.5's order: CrossAttnDownBlock2D (residual before the downsampler) then DownBlock2D, as tiny-sd otherwise
sd_unet_config = UNet2DConditionModel.load_config(os.path.join(GOLDEN, "tiny-sd", "unet"))
sd_unet_config.update(down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"], up_block_types=["UpBlock2D", "CrossAttnUpBlock2D"])
torch.manual_seed(5)
sd_unet = save_and_reload(UNet2DConditionModel.from_config(sd_unet_config).eval(), os.path.join(MODELS, "sd-unet"))

# the VAEs of tiny-sd / tiny-sdxl have vae_scale_factor 2: downscale_factor 2 for SD's adapters, 4 for SDXL's
models = {
    "sd-full": adapter("sd-full", 1, in_channels=3, channels=[32, 64], num_res_blocks=2, downscale_factor=2, adapter_type="full_adapter"),
    "sd-full-gray": adapter("sd-full-gray", 2, in_channels=1, channels=[32, 64], num_res_blocks=1, downscale_factor=2, adapter_type="full_adapter"),
    "sd-light": adapter("sd-light", 3, in_channels=3, channels=[32, 64], num_res_blocks=2, downscale_factor=2, adapter_type="light_adapter"),
    "sdxl-full": adapter("sdxl-full", 4, in_channels=3, channels=[8, 16, 16, 16], num_res_blocks=2, downscale_factor=4, adapter_type="full_adapter_xl"),
}
for name, m in models.items():
    index["models"][name] = {"config": {k: v for k, v in m.config.items() if k != "_name_or_path"}, "total_downscale_factor": m.total_downscale_factor, "downscale_factor": m.downscale_factor}

# 1. the adapters alone
with torch.no_grad():
    for name, shape, seed in [("sd-full", (2, 3, 32, 32), 11), ("sd-full-gray", (1, 1, 24, 40), 12), ("sd-light", (1, 3, 32, 32), 13),
                              ("sdxl-full", (1, 3, 32, 48), 14)]:
        x = seeded(shape, seed)
        feats = models[name](x)
        out[f"forward/{name}/x"] = x
        for i, f in enumerate(feats):
            out[f"forward/{name}/feature_{i}"] = f.contiguous()
        index["forward"][name] = {"x": list(shape), "features": [list(f.shape) for f in feats]}
    multi = MultiAdapter([models["sd-full"], models["sd-full-gray"]])
    xs = [seeded((1, 3, 32, 32), 21), seeded((1, 1, 32, 32), 22)]
    for name, weights in [("multi-default", None), ("multi-weights", [0.8, 0.4])]:
        feats = multi(xs, weights)
        out[f"forward/{name}/x_0"], out[f"forward/{name}/x_1"] = xs
        for i, f in enumerate(feats):
            out[f"forward/{name}/feature_{i}"] = f.contiguous()
        index["forward"][name] = {"adapters": ["sd-full", "sd-full-gray"], "adapter_weights": weights,
                                  "features": [list(f.shape) for f in feats]}

# 2. the pipelines
SD = load_file(os.path.join(GOLDEN, "tiny-sd-expected.safetensors"))
edges = Image.open(os.path.join(GOLDEN, "controlnet-edges.png"))
assert edges.mode == "RGB" and edges.size == (64, 64)


def run(name, pipe, record, **kw):
    latents = []

    def callback(i, t, lat):
        latents.append(lat.clone())

    with torch.no_grad():
        images = pipe(callback=callback, output_type="np", **kw).images
    out[f"pipeline/{name}/latents"] = latents[-1].contiguous()
    out[f"pipeline/{name}/image"] = torch.from_numpy(images).contiguous()
    index["pipelines"][name] = record
    return images


sd_vae = AutoencoderKL.from_pretrained(os.path.join(GOLDEN, "tiny-sd", "vae"), low_cpu_mem_usage=False).eval()
sd_embeds = dict(prompt_embeds=SD["pipeline/pndm_default/prompt_embeds"], negative_prompt_embeds=SD["pipeline/pndm_default/negative_prompt_embeds"])


def sd_pipe(adapter_model):
    scheduler = PNDMScheduler.from_pretrained(os.path.join(GOLDEN, "tiny-sd", "scheduler"))
    return StableDiffusionAdapterPipeline(vae=sd_vae, text_encoder=None, tokenizer=None, unet=sd_unet, adapter=adapter_model,
                                          scheduler=scheduler, safety_checker=None, feature_extractor=None, requires_safety_checker=False)


SD_EMBEDS = "tiny-sd-expected.safetensors pipeline/pndm_default/prompt_embeds, negative_prompt_embeds ('a photo of a cat', '')"
for name, model, kw in [
    ("sd-full-cfg", "sd-full", dict(image=edges, guidance_scale=7.5)),
    ("sd-full-scale0.6", "sd-full", dict(image=edges, guidance_scale=7.5, adapter_conditioning_scale=0.6)),
    ("sd-full-nocfg-2images", "sd-full", dict(image=edges, guidance_scale=1.0, num_images_per_prompt=2)),
    ("sd-light-cfg", "sd-light", dict(image=edges, guidance_scale=7.5)),
]:
    args = dict(height=32, width=32, num_inference_steps=3, generator=torch.Generator("cpu").manual_seed(0), **sd_embeds, **kw)
    if args["guidance_scale"] <= 1.0:
        del args["negative_prompt_embeds"]
    run(name, sd_pipe(models[model]), {"adapter": model, "unet": "tiny-t2i-adapter/sd-unet", "vae": "tiny-sd/vae", "scheduler": "tiny-sd/scheduler",
        "image": "controlnet-edges.png (RGB 64x64)", "embeds": SD_EMBEDS, "seed": 0,
        **{k: v for k, v in args.items() if k not in ("image", "generator", "prompt_embeds", "negative_prompt_embeds")}}, **args)

# MultiAdapter: the edges as RGB for sd-full and as "L" (one channel) for sd-full-gray; scales per adapter
args = dict(height=32, width=32, num_inference_steps=3, guidance_scale=7.5, adapter_conditioning_scale=[0.8, 0.4], **sd_embeds)
run("sd-multi", sd_pipe(MultiAdapter([models["sd-full"], models["sd-full-gray"]])),
    {"adapters": ["sd-full", "sd-full-gray"], "unet": "tiny-t2i-adapter/sd-unet", "vae": "tiny-sd/vae", "scheduler": "tiny-sd/scheduler",
     "image": ["controlnet-edges.png (RGB)", "controlnet-edges.png convert('L')"], "embeds": SD_EMBEDS, "seed": 0,
     **{k: v for k, v in args.items() if not k.endswith("prompt_embeds")}},
    image=[edges, edges.convert("L")], generator=torch.Generator("cpu").manual_seed(0), **args)

# SDXL: tiny-sdxl's UNet (DownBlock2D, CrossAttnDownBlock2D x2; its 4th adapter state goes onto the mid block's output)
xl_vae = AutoencoderKL.from_pretrained(os.path.join(GOLDEN, "tiny-sdxl", "vae"), low_cpu_mem_usage=False).eval()
xl_unet = UNet2DConditionModel.from_pretrained(os.path.join(GOLDEN, "tiny-sdxl", "unet"), low_cpu_mem_usage=False).eval()
for name, kw in [("sdxl-full-factor0.5", dict(adapter_conditioning_factor=0.5, adapter_conditioning_scale=0.9)),
                 ("sdxl-full-default", dict())]:
    scheduler = EulerDiscreteScheduler.from_pretrained(os.path.join(GOLDEN, "tiny-sdxl", "scheduler"))
    pipe = StableDiffusionXLAdapterPipeline(vae=xl_vae, text_encoder=None, text_encoder_2=None, tokenizer=None, tokenizer_2=None,
                                            unet=xl_unet, adapter=models["sdxl-full"], scheduler=scheduler)
    args = dict(height=32, width=32, num_inference_steps=4, guidance_scale=5.0, **kw)
    run(name, pipe, {"adapter": "sdxl-full", "unet": "tiny-sdxl/unet", "vae": "tiny-sdxl/vae", "scheduler": "tiny-sdxl/scheduler",
        "image": "controlnet-edges.png (RGB 64x64)", "seed": 0,
        "embeds": TINY_SDXL_EMBEDS, **args},
        image=edges, generator=torch.Generator("cpu").manual_seed(0), **tiny_sdxl_embeds(), **args)

write_expected(HERE, "t2i-adapter-expected", out, index)
print(json.dumps(index["pipelines"], indent=1))
