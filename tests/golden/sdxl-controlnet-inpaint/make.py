"""Writes sdxl-controlnet-inpaint-expected.safetensors / .json: diffusers 0.25.1's StableDiffusionXLControlNetInpaintPipeline
on tests/golden/tiny-sdxl with the tiny SDXL ControlNet of tests/golden/sdxl-controlnet-img2img/controlnet. See README.md
in this folder.

Run from the repository root with Debian's python3-torch (1.13.1) and the sources of diffusers v0.25.1 and
huggingface_hub v0.20.3 on PYTHONPATH, and a stub transformers dist-info (see README.md):
  PYTHONPATH=/tmp/d/src:/tmp/hh/src:/tmp/stubs /usr/bin/python3 tests/golden/sdxl-controlnet-inpaint/make.py
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


# --- shim: transformers is not installed; the pipelines are built with text_encoder=None / tokenizer=None and get
# the prompt embeddings real transformers 4.36 computed (stored in tests/golden/tiny-sd*-expected.safetensors) ----
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
_st.safe_open = None
# -----------------------------------------------------------------------------------------------------------------

import diffusers  # noqa: E402
from diffusers import (AutoencoderKL, ControlNetModel, EulerDiscreteScheduler,  # noqa: E402
                       StableDiffusionXLControlNetInpaintPipeline, UNet2DConditionModel)
from PIL import Image  # noqa: E402

assert diffusers.__version__ == "0.25.1", diffusers.__version__
torch.set_num_threads(1)

out, index = {}, {"diffusers": diffusers.__version__, "torch": torch.__version__, "pipelines": {}}

unet = UNet2DConditionModel.from_pretrained(os.path.join(GOLDEN, "tiny-sdxl", "unet"), low_cpu_mem_usage=False).eval()
controlnet = ControlNetModel.from_pretrained(os.path.join(GOLDEN, "sdxl-controlnet-img2img", "controlnet"), low_cpu_mem_usage=False).eval()
SDXL = _load_file(os.path.join(GOLDEN, "tiny-sdxl-expected.safetensors"))
xl_embeds = SDXL["pipeline/txt2img_default/unet_encoder_hidden_states"]   # rows [negative (zeros), "a photo of a cat"]
xl_pooled = SDXL["pipeline/txt2img_default/unet_added_text_embeds"]
init = Image.open(os.path.join(GOLDEN, "img2img-init.png"))
mask = Image.open(os.path.join(GOLDEN, "inpaint-mask.png"))
edges = Image.open(os.path.join(GOLDEN, "controlnet-edges.png"))
assert init.size == (64, 64) and mask.size == (64, 64) and edges.mode == "RGB" and edges.size == (64, 64)
vae = AutoencoderKL.from_pretrained(os.path.join(GOLDEN, "tiny-sdxl", "vae"), low_cpu_mem_usage=False).eval()
EMBEDS = ("tiny-sdxl-expected.safetensors pipeline/txt2img_default/unet_encoder_hidden_states and unet_added_text_embeds "
          "(rows [negative, prompt])")


def run(name, **kw):
    scheduler = EulerDiscreteScheduler.from_pretrained(os.path.join(GOLDEN, "tiny-sdxl", "scheduler"))
    pipe = StableDiffusionXLControlNetInpaintPipeline(vae=vae, text_encoder=None, text_encoder_2=None, tokenizer=None,
                                                      tokenizer_2=None, unet=unet, controlnet=controlnet, scheduler=scheduler)
    latents, time_ids, timesteps = [], [], []
    forward = pipe.unet.forward

    def unet_forward(*a, **k):
        time_ids.append(k["added_cond_kwargs"]["time_ids"].clone())
        timesteps.append(float(a[1]))
        return forward(*a, **k)

    pipe.unet.forward = unet_forward

    def callback(i, t, lat):
        latents.append(lat.clone())

    args = {"num_inference_steps": 5, **kw}
    embeds = dict(prompt_embeds=xl_embeds[1:], pooled_prompt_embeds=xl_pooled[1:])
    if args.get("guidance_scale", 5.0) > 1:
        embeds.update(negative_prompt_embeds=xl_embeds[:1], negative_pooled_prompt_embeds=xl_pooled[:1])
    with torch.no_grad():
        images = pipe(image=init, mask_image=mask, control_image=edges, generator=torch.Generator("cpu").manual_seed(0),
                      callback=callback, callback_steps=1, output_type="np", **embeds, **args).images
    del pipe.unet.forward   # the UNet is shared by the runs: back to its class's forward
    out[f"pipeline/{name}/latents"] = latents[-1].contiguous()
    out[f"pipeline/{name}/image"] = torch.from_numpy(images).contiguous()
    out[f"pipeline/{name}/unet_added_time_ids"] = time_ids[0].contiguous()
    index["pipelines"][name] = {"unet": "tiny-sdxl/unet", "vae": "tiny-sdxl/vae", "scheduler": "tiny-sdxl/scheduler",
                                "controlnet": "sdxl-controlnet-img2img/controlnet", "image": "img2img-init.png (RGB 64x64)",
                                "mask_image": "inpaint-mask.png (64x64)", "control_image": "controlnet-edges.png (RGB 64x64)",
                                "seed": 0, "embeds": EMBEDS, "unet_timesteps": timesteps,
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

_save_file(out, os.path.join(HERE, "sdxl-controlnet-inpaint-expected.safetensors"))
index["keys"] = {k: {"dtype": str(v.dtype), "shape": list(v.shape)} for k, v in sorted(out.items())}
with open(os.path.join(HERE, "sdxl-controlnet-inpaint-expected.json"), "w") as f:
    json.dump(index, f, indent=1, sort_keys=True)
    f.write("\n")
print(json.dumps(index["pipelines"], indent=1))
