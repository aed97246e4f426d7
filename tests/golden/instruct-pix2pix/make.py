"""Writes tests/golden/tiny-sd-instruct-pix2pix/ (a tiny InstructPix2Pix pipeline folder) and, in this folder,
instruct-pix2pix-expected.safetensors / .json: diffusers 0.25.1's StableDiffusionInstructPix2PixPipeline run on it.
See README.md in this folder.

Run from the repository root with Debian's python3-torch (1.13.1) and the sources of diffusers v0.25.1 and
huggingface_hub v0.20.3 on PYTHONPATH, and a folder holding transformers-4.36.0.dist-info/METADATA (README.md)
(so diffusers believes transformers is installed; its classes are stubbed below, nothing of it runs):
  PYTHONPATH=/tmp/d/src:/tmp/hh/src:/tmp/stubs /usr/bin/python3 tests/golden/instruct-pix2pix/make.py
"""
import importlib.machinery
import json
import os
import struct
import sys
import types

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.dirname(HERE)

# --- shim: a pure-Python safetensors (the Rust package is not installable here); nothing numerical ---------------
_DT = {"F32": torch.float32, "F64": torch.float64, "F16": torch.float16, "I64": torch.int64, "I32": torch.int32,
       "BF16": torch.bfloat16, "U8": torch.uint8, "BOOL": torch.bool}
_NP = {torch.float32: np.float32, torch.float64: np.float64, torch.float16: np.float16, torch.int64: np.int64,
       torch.int32: np.int32, torch.uint8: np.uint8, torch.bool: np.bool_}
_NAME = {v: k for k, v in _DT.items()}


def _load_file(filename, device="cpu"):
    with open(filename, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header, base, out = json.loads(data[8:8 + n]), 8 + n, {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        dt = _DT[info["dtype"]]
        raw = data[base + b:base + e]
        if dt == torch.bfloat16:
            t = torch.from_numpy(np.frombuffer(raw, dtype=np.int16).copy()).view(torch.bfloat16)
        else:
            t = torch.from_numpy(np.frombuffer(raw, dtype=_NP[dt]).copy())
        out[name] = t.reshape(info["shape"])
    return out


def _save_file(tensors, filename, metadata=None):
    names = sorted(tensors, key=lambda k: (-tensors[k].element_size(), k))
    header, blobs, off = ({"__metadata__": metadata} if metadata else {}), [], 0
    for k in names:
        raw = tensors[k].detach().contiguous().numpy().tobytes()
        header[k] = {"dtype": _NAME[tensors[k].dtype], "shape": list(tensors[k].shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    with open(filename, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


_st = types.ModuleType("safetensors")
_st.__spec__ = importlib.machinery.ModuleSpec("safetensors", None)
_st.__version__ = "0.4.1"
_st.torch = types.ModuleType("safetensors.torch")
_st.torch.load_file, _st.torch.save_file = _load_file, _save_file
sys.modules["safetensors"], sys.modules["safetensors.torch"] = _st, _st.torch
# -----------------------------------------------------------------------------------------------------------------

# --- transformers stub: diffusers imports its CLIP classes; none of them runs (text_encoder=None, tokenizer=None) --
_st.safe_open = None


class _TF(types.ModuleType):
    def __getattr__(self, n):
        if n.startswith("__"):
            raise AttributeError(n)
        c = type(n, (), {})
        setattr(self, n, c)
        return c


tf = _TF("transformers")
tf.__spec__ = importlib.machinery.ModuleSpec("transformers", None)
for n in ["CLIPTextModel", "CLIPTokenizer", "CLIPImageProcessor", "CLIPVisionModelWithProjection",
          "CLIPTextModelWithProjection", "CLIPFeatureExtractor", "PreTrainedModel", "DPTFeatureExtractor",
          "DPTForDepthEstimation"]:
    setattr(tf, n, type(n, (), {}))
tf.__path__ = []
tfu = types.ModuleType("transformers.utils")
tfu.FLAX_WEIGHTS_NAME, tfu.SAFE_WEIGHTS_NAME, tfu.WEIGHTS_NAME = "flax_model.msgpack", "model.safetensors", "pytorch_model.bin"
tf.utils = tfu
sys.modules["transformers"], sys.modules["transformers.utils"] = tf, tfu
# -----------------------------------------------------------------------------------------------------------------

import shutil  # noqa: E402

import PIL.Image  # noqa: E402
import diffusers  # noqa: E402
from diffusers import (AutoencoderKL, DDIMScheduler, EulerAncestralDiscreteScheduler,  # noqa: E402
                       EulerDiscreteScheduler, PNDMScheduler, StableDiffusionInstructPix2PixPipeline,
                       UNet2DConditionModel)

assert diffusers.__version__ == "0.25.1", diffusers.__version__
torch.set_num_threads(1)

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
with open(os.path.join(FOLDER, "model_index.json"), "w") as f:
    json.dump(model_index, f, indent=2, sort_keys=True)
    f.write("\n")

# --- 2. the runs ---------------------------------------------------------------------------------------------------
vae = AutoencoderKL.from_pretrained(FOLDER, subfolder="vae", low_cpu_mem_usage=False).eval()
unet = UNet2DConditionModel.from_pretrained(FOLDER, subfolder="unet", low_cpu_mem_usage=False).eval()
assert unet.config.in_channels == 8
sd = _load_file(os.path.join(GOLDEN, "tiny-sd-expected.safetensors"))
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

_save_file(out, os.path.join(HERE, "instruct-pix2pix-expected.safetensors"))
index["keys"] = {k: {"dtype": str(v.dtype), "shape": list(v.shape)} for k, v in sorted(out.items())}
with open(os.path.join(HERE, "instruct-pix2pix-expected.json"), "w") as f:
    json.dump(index, f, indent=1, sort_keys=True)
    f.write("\n")
print(json.dumps(index["runs"], indent=1))
