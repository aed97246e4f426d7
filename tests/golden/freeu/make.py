"""Writes freeu-expected.safetensors / .json: diffusers 0.25.1's FreeU (UNet2DConditionModel.enable_freeu) on the
tiny golden UNets (tests/golden/tiny-sd/unet, tests/golden/tiny-sdxl/unet). See README.md in this folder.

Run from the repository root with Debian's python3-torch (1.13.1) and the sources of diffusers v0.25.1 and
huggingface_hub v0.20.3 on PYTHONPATH:
  PYTHONPATH=/tmp/d/src:/tmp/hh/src /usr/bin/python3 tests/golden/freeu/make.py
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

import diffusers  # noqa: E402
from diffusers import UNet2DConditionModel  # noqa: E402

assert diffusers.__version__ == "0.25.1", diffusers.__version__
torch.set_num_threads(1)


def seeded(shape, s):
    return torch.randn(shape, generator=torch.Generator("cpu").manual_seed(s))


out, index = {}, {"diffusers": diffusers.__version__, "torch": torch.__version__, "cases": {}}


def case(name, folder, freeu, x, t, ehs, added=None, dtype=torch.float32):
    unet = UNet2DConditionModel.from_pretrained(os.path.join(GOLDEN, folder, "unet"), low_cpu_mem_usage=False)
    unet = unet.to(dtype).eval()
    kw = {} if added is None else {"added_cond_kwargs": added}
    args = (x.to(dtype), t, ehs.to(dtype))
    with torch.no_grad():
        plain = unet(*args, **kw).sample
        unet.enable_freeu(**freeu)
        freeu_out = unet(*args, **kw).sample
        unet.disable_freeu()
        disabled = unet(*args, **kw).sample
    assert torch.equal(disabled, plain), name
    assert not torch.equal(freeu_out, plain), name
    p = name + "/"
    out[p + "x"], out[p + "encoder_hidden_states"] = x, ehs
    if added is not None:
        out[p + "text_embeds"], out[p + "time_ids"] = added["text_embeds"], added["time_ids"]
    out[p + "plain"], out[p + "freeu"] = plain.float(), freeu_out.float()
    index["cases"][name] = {"unet": folder + "/unet", "dtype": str(dtype), "timestep": t, "freeu": freeu,
                            "x": list(x.shape), "encoder_hidden_states": list(ehs.shape),
                            "max_abs_freeu_minus_plain": float((freeu_out.float() - plain.float()).abs().max())}
    return unet, args, kw


SD15 = dict(s1=0.9, s2=0.2, b1=1.2, b2=1.4)    # diffusers' docs (using-diffusers/freeu.md) for SD 1.5
SD21 = dict(s1=0.9, s2=0.2, b1=1.1, b2=1.2)    # ... for SD 2.1
SDXL = dict(s1=0.6, s2=0.4, b1=1.1, b2=1.2)    # ... for SDXL

# tiny-sd: up_blocks.0 (CrossAttnUpBlock2D) at 16x16 / 12x20, up_blocks.1 (UpBlock2D) at 32x32 / 24x40
case("sd/pow2", "tiny-sd", SD15, seeded((2, 4, 32, 32), 101), 500, seeded((2, 8, 32), 102))
unet, args, kw = case("sd/npow2", "tiny-sd", SD21, seeded((1, 4, 24, 40), 103), 321, seeded((1, 8, 32), 104))
# diffusers' is_freeu_enabled is `s1 and s2 and b1 and b2`: a zero factor leaves FreeU off
with torch.no_grad():
    unet.enable_freeu(s1=0.9, s2=0.2, b1=1.2, b2=0.0)
    zero = unet(*args, **kw).sample
assert torch.equal(zero, out["sd/npow2/plain"])
index["zero_b2_equals_plain"] = "sd/npow2 with enable_freeu(0.9, 0.2, 1.2, 0.0): output equal to plain (checked)"
# bf16 with sizes that are not powers of 2: fourier_filter's float32 upcast (bf16 has no FFT on the CPU)
case("sd/npow2_bf16", "tiny-sd", SD15, seeded((1, 4, 24, 40), 105), 700, seeded((1, 8, 32), 106), dtype=torch.bfloat16)

# tiny-sdxl: up_blocks.0/1 CrossAttnUpBlock2D (8x8, 16x16 / 6x10, 12x20), up_blocks.2 UpBlock2D (resolution_idx 2: no FreeU)
for name, shape, seed in [("sdxl/pow2", (1, 4, 32, 32), 201), ("sdxl/npow2", (1, 4, 24, 40), 211)]:
    added = {"text_embeds": seeded((1, 24), seed + 2), "time_ids": torch.tensor([[48.0, 80.0, 0.0, 0.0, 48.0, 80.0]])}
    case(name, "tiny-sdxl", SDXL, seeded(shape, seed), 500, seeded((1, 8, 48), seed + 1), added)

# diffusers' fourier_filter on its own: odd sizes (Python's slice rules at the centre), float64 both ways, threshold 2
from diffusers.utils.torch_utils import fourier_filter  # noqa: E402

index["fourier_filter"] = {}
for name, x, threshold, scale in [("ff/1x3", seeded((1, 2, 1, 3), 301), 1, 0.5),
                                  ("ff/5x6", seeded((2, 3, 5, 6), 302), 1, 0.9),
                                  ("ff/8x8_f64", seeded((1, 2, 8, 8), 303).double(), 1, 0.3),
                                  ("ff/6x8_f64", seeded((1, 2, 6, 8), 304).double(), 1, 0.3),
                                  ("ff/8x8_t2", seeded((1, 1, 8, 8), 305), 2, 0.25)]:
    y = fourier_filter(x, threshold=threshold, scale=scale)
    assert y.dtype == x.dtype
    out[name + "/x"], out[name + "/out"] = x, y.contiguous()
    index["fourier_filter"][name] = {"threshold": threshold, "scale": scale, "dtype": str(x.dtype)}

_save_file(out, os.path.join(HERE, "freeu-expected.safetensors"))
index["keys"] = {k: {"dtype": str(v.dtype), "shape": list(v.shape)} for k, v in sorted(out.items())}
with open(os.path.join(HERE, "freeu-expected.json"), "w") as f:
    json.dump(index, f, indent=1, sort_keys=True)
    f.write("\n")
print(json.dumps(index["cases"], indent=1))
