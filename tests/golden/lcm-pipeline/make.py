"""Writes lcm-pipeline-expected.safetensors / .json and the tiny LCM UNet and scheduler in this folder: diffusers 0.25.1's
LatentConsistencyModelPipeline and LatentConsistencyModelImg2ImgPipeline on tiny-sd's VAE with a tiny UNet that has
time_cond_proj_dim (the guidance embedding). See README.md in this folder.

Run from the repository root, in the environment ../diffusers-common/diffusers_prelude.py describes (keep that
folder next to this one):
  PYTHONPATH=/tmp/d/src:/tmp/hh/src:/tmp/stubs /usr/bin/python3 tests/golden/lcm-pipeline/make.py
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
from diffusers_prelude import diffusers, load_file, save_and_reload, write_expected, write_json  # noqa: E402
from diffusers import (AutoencoderKL, LatentConsistencyModelImg2ImgPipeline, LatentConsistencyModelPipeline,  # noqa: E402
                       LCMScheduler, UNet2DConditionModel)

out, index = {}, {"diffusers": diffusers.__version__, "torch": torch.__version__, "pipelines": {}}

# the UNet: tiny-sd's config with a guidance embedding (time_cond_proj_dim) and, to keep the folder small, narrower
# blocks (8, 16; 4 groups) and one layer per block
config = UNet2DConditionModel.load_config(os.path.join(GOLDEN, "tiny-sd", "unet"))
config.update(time_cond_proj_dim=32, block_out_channels=[8, 16], norm_num_groups=4, layers_per_block=1)
torch.manual_seed(7)
unet = save_and_reload(UNet2DConditionModel.from_config(config).eval(), os.path.join(HERE, "unet"))
index["unet_parameters"] = sum(p.numel() for p in unet.parameters())

# the scheduler: SimianLuo/LCM_Dreamshaper_v7's scheduler_config.json values
sched_config = {"_class_name": "LCMScheduler", "_diffusers_version": "0.25.1", "beta_end": 0.012, "beta_schedule": "scaled_linear",
                "beta_start": 0.00085, "clip_sample": False, "clip_sample_range": 1.0, "dynamic_thresholding_ratio": 0.995,
                "num_train_timesteps": 1000, "original_inference_steps": 50, "prediction_type": "epsilon", "rescale_betas_zero_snr": False,
                "sample_max_value": 1.0, "set_alpha_to_one": True, "steps_offset": 1, "thresholding": False,
                "timestep_scaling": 10.0, "timestep_spacing": "leading", "trained_betas": None}
write_json(os.path.join(HERE, "scheduler", "scheduler_config.json"), sched_config)

vae = AutoencoderKL.from_pretrained(os.path.join(GOLDEN, "tiny-sd", "vae"), low_cpu_mem_usage=False).eval()
SD = load_file(os.path.join(GOLDEN, "tiny-sd-expected.safetensors"))
EMBEDS = "tiny-sd-expected.safetensors pipeline/pndm_default/prompt_embeds ('a photo of a cat')"
prompt_embeds = SD["pipeline/pndm_default/prompt_embeds"]
init = Image.open(os.path.join(GOLDEN, "img2img-init.png"))
assert init.mode == "RGB" and init.size == (64, 64)


def run(name, cls, record, **kw):
    steps = []

    def on_step_end(pipe, i, t, tensors):
        steps.append({"t": int(t), "latents": tensors["latents"].clone(), "denoised": tensors["denoised"].clone()})
        return {}

    scheduler = LCMScheduler.from_pretrained(os.path.join(HERE, "scheduler"))
    pipe = cls(vae=vae, text_encoder=None, tokenizer=None, unet=unet, scheduler=scheduler, safety_checker=None,
               feature_extractor=None, requires_safety_checker=False)
    with torch.no_grad():
        images = pipe(prompt_embeds=prompt_embeds, generator=torch.Generator("cpu").manual_seed(0), output_type="np",
                      callback_on_step_end=on_step_end, callback_on_step_end_tensor_inputs=["latents", "denoised"], **kw).images
    out[f"{name}/latents"] = steps[-1]["latents"].contiguous()
    out[f"{name}/denoised"] = steps[-1]["denoised"].contiguous()
    out[f"{name}/image"] = torch.from_numpy(images).contiguous()
    record.update({k: v for k, v in kw.items() if k != "image"}, seed=0, embeds=EMBEDS, timesteps_run=[s["t"] for s in steps],
                  denoised_equals_latents=bool(torch.equal(steps[-1]["latents"], steps[-1]["denoised"])))
    index["pipelines"][name] = record


T2I, I2I = LatentConsistencyModelPipeline, LatentConsistencyModelImg2ImgPipeline
run("txt2img-default", T2I, {"class": T2I.__name__}, height=32, width=32)
run("txt2img-guidance3-orig20-steps2", T2I, {"class": T2I.__name__}, height=32, width=32, guidance_scale=3.0,
    num_inference_steps=2, original_inference_steps=20)
run("txt2img-timesteps", T2I, {"class": T2I.__name__}, height=32, width=32, timesteps=[999, 759, 499, 259])
run("txt2img-2images", T2I, {"class": T2I.__name__}, height=32, width=32, num_images_per_prompt=2)
run("img2img-strength0.5", I2I, {"class": I2I.__name__, "image": "img2img-init.png (RGB 64x64)"}, image=init, strength=0.5)
run("img2img-timesteps-strength0.5", I2I, {"class": I2I.__name__, "image": "img2img-init.png (RGB 64x64)"}, image=init, strength=0.5,
    timesteps=[999, 759, 499, 259])

write_expected(HERE, "lcm-pipeline-expected", out, index)
print(json.dumps(index["pipelines"], indent=1))
print("unet parameters", index["unet_parameters"])
