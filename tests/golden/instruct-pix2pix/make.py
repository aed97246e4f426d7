"""Writes tests/golden/tiny-sd-instruct-pix2pix/ (a tiny InstructPix2Pix pipeline folder) and, in this folder,
instruct-pix2pix-expected.safetensors / .json: diffusers 0.25.1's StableDiffusionInstructPix2PixPipeline run on it.
See README.md in this folder.

Run from the repository root, in the environment ../diffusers-common/diffusers_prelude.py describes (keep that
folder next to this one):
  PYTHONPATH=/tmp/d/src:/tmp/hh/src:/tmp/stubs /usr/bin/python3 tests/golden/instruct-pix2pix/make.py
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
from diffusers import (AutoencoderKL, DDIMScheduler, EulerAncestralDiscreteScheduler,  # noqa: E402
                       EulerDiscreteScheduler, PNDMScheduler, StableDiffusionInstructPix2PixPipeline,
                       UNet2DConditionModel)

SD = os.path.join(GOLDEN, "tiny-sd")
FOLDER = os.path.join(GOLDEN, "tiny-sd-instruct-pix2pix")
UNET_SEED = 20251

# --- 1. the pipeline folder: tiny-sd's vae, text_encoder, tokenizer; EulerAncestral from tiny-sd's scheduler config
#        (timbrooks/instruct-pix2pix's scheduler class); a new 8-channel UNet of tiny-sd's UNet config -------------
if os.path.isdir(FOLDER):
    shutil.rmtree(FOLDER)
os.makedirs(FOLDER)
for name in ["vae", "text_encoder", "tokenizer"]:
    shutil.copytree(os.path.join(SD, name), os.path.join(FOLDER, name))
EulerAncestralDiscreteScheduler.from_config(PNDMScheduler.from_pretrained(SD, subfolder="scheduler").config) \
    .save_pretrained(os.path.join(FOLDER, "scheduler"))
unet_config = dict(UNet2DConditionModel.load_config(os.path.join(SD, "unet")))
unet_config["in_channels"] = 8
torch.manual_seed(UNET_SEED)
UNet2DConditionModel.from_config(unet_config).save_pretrained(os.path.join(FOLDER, "unet"), safe_serialization=True)
with open(os.path.join(SD, "model_index.json")) as f:
    model_index = json.load(f)
model_index["_class_name"] = "StableDiffusionInstructPix2PixPipeline"
write_json(os.path.join(FOLDER, "model_index.json"), model_index)

# --- 2. the runs ---------------------------------------------------------------------------------------------------
vae = AutoencoderKL.from_pretrained(FOLDER, subfolder="vae", low_cpu_mem_usage=False).eval()
unet = UNet2DConditionModel.from_pretrained(FOLDER, subfolder="unet", low_cpu_mem_usage=False).eval()
assert unet.config.in_channels == 8
sd = load_file(os.path.join(GOLDEN, "tiny-sd-expected.safetensors"))
with open(os.path.join(GOLDEN, "tiny-sd-expected.json")) as f:
    PROMPTS = json.load(f)["prompts"]
hidden = sd["text_encoder/last_hidden_state"]   # real transformers 4.36 outputs of tiny-sd's text encoder, [10, 77, 32]
init_image = PIL.Image.open(os.path.join(GOLDEN, "img2img-init.png")).convert("RGB")


class _TextEncoderDtype:
    """The pipeline casts the prompt embeddings to text_encoder.dtype (float32 here); no text encoder runs."""
    dtype = torch.float32


def make_pipe(scheduler_class):
    sched = scheduler_class.from_pretrained(FOLDER, subfolder="scheduler") if scheduler_class is EulerAncestralDiscreteScheduler \
        else scheduler_class.from_config(EulerAncestralDiscreteScheduler.from_pretrained(FOLDER, subfolder="scheduler").config)
    pipe = StableDiffusionInstructPix2PixPipeline(vae=vae, text_encoder=None, tokenizer=None, unet=unet, scheduler=sched,
                                                  safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.__dict__["text_encoder"] = _TextEncoderDtype()
    pipe.set_progress_bar_config(disable=True)
    return pipe


out, index = {}, {"diffusers": diffusers.__version__, "torch": torch.__version__, "unet_seed": UNET_SEED, "runs": {}}


def run(name, scheduler_class, prompts, negative, call, unet_io=False):
    """prompts / negative: indices into tiny-sd-expected.json's prompts (negative None: no negative_prompt_embeds);
    unet_io: also store every UNet call's input and output (kept to the first two runs, for size)."""
    pipe = make_pipe(scheduler_class)
    rec = {"unet_input": [], "unet_timestep": [], "unet_output": [], "latents_after_step": []}
    def on_unet(module, inputs, output):   # records; returns None so the output stays as it is
        rec["unet_input"].append(inputs[0].clone())
        rec["unet_timestep"].append(torch.as_tensor(inputs[1]).clone())
        rec["unet_output"].append(output[0].clone())

    hook = unet.register_forward_hook(on_unet)
    orig = {k: getattr(pipe, k) for k in ["_encode_prompt", "prepare_image_latents", "prepare_latents"]}
    pipe._encode_prompt = lambda *a, **k: rec.setdefault("prompt_embeds", orig["_encode_prompt"](*a, **k))
    pipe.prepare_image_latents = lambda *a, **k: rec.setdefault("image_latents", orig["prepare_image_latents"](*a, **k))
    pipe.prepare_latents = lambda *a, **k: rec.setdefault("initial_latents", orig["prepare_latents"](*a, **k))
    pre = pipe.image_processor.preprocess
    pipe.image_processor.preprocess = lambda *a, **k: rec.setdefault("image_preprocessed", pre(*a, **k))
    dec = vae.decode
    vae.decode = lambda *a, **k: (lambda r: (rec.setdefault("vae_decoded", r[0]), r)[1])(dec(*a, **k))

    def on_step_end(p, i, t, kw):
        rec["latents_after_step"].append(kw["latents"].clone())
        return kw

    kwargs = dict(call)
    kwargs["prompt_embeds"] = hidden[prompts].clone()
    if negative is not None:
        kwargs["negative_prompt_embeds"] = hidden[negative].clone()
    generator = torch.Generator("cpu").manual_seed(call["seed"]) if "seed" in call else None
    kwargs.pop("seed", None)
    try:
        with torch.no_grad():
            images = pipe(image=init_image, generator=generator, output_type="np", callback_on_step_end=on_step_end,
                          **kwargs).images
    finally:
        hook.remove()
        del vae.decode
    p = name + "/"
    for k in ["prompt_embeds", "image_preprocessed", "image_latents", "initial_latents", "vae_decoded"]:
        out[p + k] = rec[k].contiguous()
    for k in ["unet_input", "unet_timestep", "unet_output", "latents_after_step"] if unet_io else ["unet_timestep", "latents_after_step"]:
        out[p + k] = torch.stack(rec[k]).contiguous()
    out[p + "timesteps"] = pipe.scheduler.timesteps.clone()
    out[p + "images"] = torch.from_numpy(images.copy())
    index["runs"][name] = {
        "scheduler_class": type(pipe.scheduler).__name__,
        "scheduler_in_sigma_space": hasattr(pipe.scheduler, "sigmas"),
        "do_classifier_free_guidance": pipe.do_classifier_free_guidance,
        "prompts": [PROMPTS[i] for i in prompts],
        "negative_prompts": None if negative is None else [PROMPTS[i] for i in negative],
        "call": dict(call, image="img2img-init.png (PIL RGB)", output_type="np",
                     prompt_embeds=f"tiny-sd-expected text_encoder/last_hidden_state{prompts}",
                     negative_prompt_embeds=None if negative is None else f"tiny-sd-expected text_encoder/last_hidden_state{negative}",
                     generator=f"torch.Generator('cpu').manual_seed({call['seed']})" if "seed" in call else None),
    }


# the model's default scheduler (EulerAncestral: sigma space, draws noise every step), guidance on
run("euler_ancestral", EulerAncestralDiscreteScheduler, [0], [1],
    dict(num_inference_steps=5, guidance_scale=7.5, image_guidance_scale=1.5, seed=0), unet_io=True)
# a deterministic scheduler outside sigma space
run("ddim", DDIMScheduler, [0], [1], dict(num_inference_steps=4, guidance_scale=7.5, image_guidance_scale=1.5, seed=1), unet_io=True)
# two prompts x num_images_per_prompt 2 from one image (the image latents are repeated to the batch of 4)
run("euler_batch", EulerDiscreteScheduler, [0, 3], [1, 1],
    dict(num_inference_steps=4, guidance_scale=5.0, image_guidance_scale=2.0, num_images_per_prompt=2, seed=2))
# image_guidance_scale < 1: do_classifier_free_guidance is False (guidance_scale > 1 and image_guidance_scale >= 1)
run("image_guidance_below_1", EulerAncestralDiscreteScheduler, [0], None,
    dict(num_inference_steps=4, guidance_scale=7.5, image_guidance_scale=0.8, seed=3))
# guidance_scale 1: no guidance either
run("guidance_1", DDIMScheduler, [0], None, dict(num_inference_steps=3, guidance_scale=1.0, image_guidance_scale=1.5, seed=4))

for name, r in index["runs"].items():
    assert r["do_classifier_free_guidance"] == (name not in ("image_guidance_below_1", "guidance_1")), name

write_expected(HERE, "instruct-pix2pix-expected", out, index)
print(json.dumps(index["runs"], indent=1))
