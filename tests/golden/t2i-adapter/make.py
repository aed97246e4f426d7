"""Writes t2i-adapter-expected.safetensors / .json and the tiny adapters of tests/golden/tiny-t2i-adapter/: diffusers
0.25.1's T2IAdapter (full_adapter, light_adapter, full_adapter_xl), MultiAdapter, StableDiffusionAdapterPipeline and
StableDiffusionXLAdapterPipeline on the tiny golden models. See README.md in this folder.

Run from the repository root with Debian's python3-torch (1.13.1) and the sources of diffusers v0.25.1 and
huggingface_hub v0.20.3 on PYTHONPATH, and a folder holding transformers-4.36.0.dist-info/METADATA (a stub, below):
  PYTHONPATH=/tmp/d/src:/tmp/hh/src:/tmp/stubs /usr/bin/python3 tests/golden/t2i-adapter/make.py
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
from diffusers import (AutoencoderKL, EulerDiscreteScheduler, MultiAdapter, PNDMScheduler,  # noqa: E402
                       StableDiffusionAdapterPipeline, StableDiffusionXLAdapterPipeline, T2IAdapter,
                       UNet2DConditionModel)
from PIL import Image  # noqa: E402

assert diffusers.__version__ == "0.25.1", diffusers.__version__
torch.set_num_threads(1)
MODELS = os.path.join(GOLDEN, "tiny-t2i-adapter")


def seeded(shape, s):
    return torch.randn(shape, generator=torch.Generator("cpu").manual_seed(s))


def save_model(model, name):
    """config.json as save_pretrained writes it, weights through the pure-Python save_file."""
    folder = os.path.join(MODELS, name)
    os.makedirs(folder, exist_ok=True)
    model.save_config(folder)
    _save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(folder, "diffusion_pytorch_model.safetensors"))
    return T2IAdapter.from_pretrained(folder, low_cpu_mem_usage=False).eval() if isinstance(model, T2IAdapter) else \
        UNet2DConditionModel.from_pretrained(folder, low_cpu_mem_usage=False).eval()


def adapter(name, seed, **kw):
    torch.manual_seed(seed)
    a = T2IAdapter(**kw).eval()
    loaded = save_model(a, name)
    for k, v in a.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    return loaded


out, index = {}, {"diffusers": diffusers.__version__, "torch": torch.__version__, "models": {}, "forward": {}, "pipelines": {}}

# tiny-sd's UNet starts with a DownBlock2D (its adapter residual goes after the downsampler), so SD's adapters get a
# UNet in SD 1.5's order: CrossAttnDownBlock2D (residual before the downsampler) then DownBlock2D, as tiny-sd otherwise
sd_unet_config = UNet2DConditionModel.load_config(os.path.join(GOLDEN, "tiny-sd", "unet"))
sd_unet_config.update(down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"], up_block_types=["UpBlock2D", "CrossAttnUpBlock2D"])
torch.manual_seed(5)
sd_unet = save_model(UNet2DConditionModel.from_config(sd_unet_config).eval(), "sd-unet")

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
SD = _load_file(os.path.join(GOLDEN, "tiny-sd-expected.safetensors"))
SDXL = _load_file(os.path.join(GOLDEN, "tiny-sdxl-expected.safetensors"))
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
xl_embeds = SDXL["pipeline/txt2img_default/unet_encoder_hidden_states"]
xl_pooled = SDXL["pipeline/txt2img_default/unet_added_text_embeds"]
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
        "embeds": "tiny-sdxl-expected.safetensors pipeline/txt2img_default/unet_encoder_hidden_states and unet_added_text_embeds "
                  "(rows [negative, prompt])", **args},
        image=edges, generator=torch.Generator("cpu").manual_seed(0),
        prompt_embeds=xl_embeds[1:], negative_prompt_embeds=xl_embeds[:1],
        pooled_prompt_embeds=xl_pooled[1:], negative_pooled_prompt_embeds=xl_pooled[:1], **args)

_save_file(out, os.path.join(HERE, "t2i-adapter-expected.safetensors"))
index["keys"] = {k: {"dtype": str(v.dtype), "shape": list(v.shape)} for k, v in sorted(out.items())}
with open(os.path.join(HERE, "t2i-adapter-expected.json"), "w") as f:
    json.dump(index, f, indent=1, sort_keys=True)
    f.write("\n")
print(json.dumps(index["pipelines"], indent=1))
