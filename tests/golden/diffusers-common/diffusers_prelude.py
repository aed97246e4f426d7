"""The prelude of the make.py scripts that run the real diffusers 0.25.1 (Debian's python3-torch 1.13.1) to write
golden data: ../freeu, ../schedulers2, ../consistency-models, ../dit, ../instruct-pix2pix, ../upscale,
../t2i-adapter, ../sdxl-controlnet-img2img, ../sdxl-controlnet-inpaint, ../sdxl-instruct-pix2pix, ../ip-adapter, ../custom-timesteps, ../ldm.

Importing it, before anything else imports diffusers:
* puts a pure-Python `safetensors` / `safetensors.torch` into sys.modules (the Rust package is not installable
  here): load_file and save_file, the file format only, nothing numerical (layout: tests/golden/README.md);
* imports diffusers, checks that it is 0.25.1, and runs torch on 1 thread.
A script whose pipelines name transformers classes imports transformers_stub (this folder) first.

The environment (tests/golden/README.md's, less transformers): Debian bookworm's python3-torch 1.13.1 (it reports
1.13.0a0), numpy 1.24, PIL 9.4 and the Debian packages diffusers imports (python3-regex, -filelock, -requests,
-importlib-metadata, -tqdm, -yaml, -packaging, -typing-extensions, -fsspec); the diffusers v0.25.1 source
(git archive v0.25.1 src/diffusers) and the huggingface_hub v0.20.3 source on PYTHONPATH; for the scripts that
build pipelines naming transformers classes, also a folder holding transformers-4.36.0.dist-info/METADATA (a stub
that makes diffusers take transformers as installed). A script runs from the repository root with
  PYTHONPATH=/tmp/d/src:/tmp/hh/src:/tmp/stubs /usr/bin/python3 tests/golden/<folder>/make.py
(../freeu and ../schedulers2 state theirs without /tmp/stubs). No accelerate: models load with low_cpu_mem_usage=False. torch 1.13 has
no scaled_dot_product_attention, so diffusers runs its classic AttnProcessor, as for the rest of tests/golden.

Then a script takes what it uses of: load_file, save_file, seeded, write_json, write_expected, save_and_reload,
TINY_SDXL_EMBEDS / tiny_sdxl_embeds and run_sdxl (below). Each writes its files exactly as the scripts' own copies
of this code did, so every script still rewrites its golden files byte-identically.

A make.py imports it through sys.path (this folder, found from its own path), with sys.dont_write_bytecode set so
that no __pycache__ is left:

    HERE = os.path.dirname(os.path.abspath(__file__))
    GOLDEN = os.path.dirname(HERE)
    sys.dont_write_bytecode = True
    sys.path.insert(0, os.path.join(GOLDEN, "diffusers-common"))
    import transformers_stub  # noqa: E402,F401  (only where needed; before the prelude)
    from diffusers_prelude import diffusers, load_file, seeded, write_expected  # noqa: E402
"""
import importlib.machinery
import json
import os
import struct
import sys
import types

import numpy as np
import torch

GOLDEN = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# --- a pure-Python safetensors; nothing numerical --------------------------------------------------------------------
_DT = {"F32": torch.float32, "F64": torch.float64, "F16": torch.float16, "I64": torch.int64, "I32": torch.int32,
       "BF16": torch.bfloat16, "U8": torch.uint8, "BOOL": torch.bool}
_NP = {torch.float32: np.float32, torch.float64: np.float64, torch.float16: np.float16, torch.int64: np.int64,
       torch.int32: np.int32, torch.uint8: np.uint8, torch.bool: np.bool_}
_NAME = {v: k for k, v in _DT.items()}


def load_file(filename, device="cpu"):
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


def save_file(tensors, filename, metadata=None):
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
_st.safe_open = None
_st.torch = types.ModuleType("safetensors.torch")
_st.torch.load_file, _st.torch.save_file = load_file, save_file
sys.modules["safetensors"], sys.modules["safetensors.torch"] = _st, _st.torch


# --- diffusers --------------------------------------------------------------------------------------------------------
import diffusers  # noqa: E402

assert diffusers.__version__ == "0.25.1", diffusers.__version__
torch.set_num_threads(1)


def seeded(shape, s):
    """tests/golden/README.md's seeded(shape, s)."""
    return torch.randn(shape, generator=torch.Generator("cpu").manual_seed(s))


def write_json(path, obj):
    """A config as the scripts write them: indent 2, sorted keys, a final newline; the folder made if missing."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


def write_expected(folder, stem, out, index, keys=True):
    """Writes out (name -> tensor) to folder/stem.safetensors and index to folder/stem.json (strict JSON, indent 1,
    sorted keys, a final newline); with keys, index["keys"] lists every tensor's dtype and shape first."""
    save_file(out, os.path.join(folder, stem + ".safetensors"))
    if keys:
        index["keys"] = {k: {"dtype": str(v.dtype), "shape": list(v.shape)} for k, v in sorted(out.items())}
    with open(os.path.join(folder, stem + ".json"), "w") as f:
        json.dump(index, f, indent=1, sort_keys=True, allow_nan=False)
        f.write("\n")


def save_and_reload(model, folder):
    """Saves model to folder as save_pretrained lays it out (config.json; the weights through save_file, as
    diffusion_pytorch_model.safetensors), loads it back with its class's from_pretrained, checks every tensor came
    back equal, and returns the loaded model in eval mode."""
    os.makedirs(folder, exist_ok=True)
    model.save_config(folder)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(folder, "diffusion_pytorch_model.safetensors"))
    loaded = type(model).from_pretrained(folder, low_cpu_mem_usage=False).eval()
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    return loaded


TINY_SDXL_EMBEDS = ("tiny-sdxl-expected.safetensors pipeline/txt2img_default/unet_encoder_hidden_states and "
                    "unet_added_text_embeds (rows [negative, prompt])")


def tiny_sdxl_embeds(negative=True):
    """The prompt-embedding arguments of an SDXL pipeline call, from what real transformers 4.36 gave tiny-sdxl's two
    text encoders (TINY_SDXL_EMBEDS: rows [negative (zeros), "a photo of a cat"]): prompt_embeds and
    pooled_prompt_embeds, with negative also negative_prompt_embeds and negative_pooled_prompt_embeds."""
    if not _SDXL:
        _SDXL.update(load_file(os.path.join(GOLDEN, "tiny-sdxl-expected.safetensors")))
    embeds = _SDXL["pipeline/txt2img_default/unet_encoder_hidden_states"]
    pooled = _SDXL["pipeline/txt2img_default/unet_added_text_embeds"]
    kwargs = dict(prompt_embeds=embeds[1:], pooled_prompt_embeds=pooled[1:])
    if negative:
        kwargs.update(negative_prompt_embeds=embeds[:1], negative_pooled_prompt_embeds=pooled[:1])
    return kwargs


_SDXL = {}


def run_sdxl(pipe, **call):
    """Runs an SDXL pipeline, pipe(**call, output_type="np"), without gradients, watching its UNet: returns the
    tensors a script stores ("latents": the latents after the last step, "image", "unet_added_time_ids": the
    added_cond_kwargs time_ids of the first UNet call) and the timestep of every UNet call, as floats. The UNet
    gets its class's forward back after the run, since the scripts share one UNet between runs."""
    latents, time_ids, timesteps = [], [], []
    forward = pipe.unet.forward

    def unet_forward(*a, **k):
        time_ids.append(k["added_cond_kwargs"]["time_ids"].clone())
        timesteps.append(float(a[1]))
        return forward(*a, **k)

    def callback(i, t, lat):
        latents.append(lat.clone())

    pipe.unet.forward = unet_forward
    try:
        with torch.no_grad():
            images = pipe(callback=callback, callback_steps=1, output_type="np", **call).images
    finally:
        del pipe.unet.forward
    return {"latents": latents[-1].contiguous(), "image": torch.from_numpy(images).contiguous(),
            "unet_added_time_ids": time_ids[0].contiguous()}, timesteps
