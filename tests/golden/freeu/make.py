"""Writes freeu-expected.safetensors / .json: diffusers 0.25.1's FreeU (UNet2DConditionModel.enable_freeu) on the
tiny golden UNets (tests/golden/tiny-sd/unet, tests/golden/tiny-sdxl/unet). See README.md in this folder.

Run from the repository root, in the environment ../diffusers-common/diffusers_prelude.py describes (keep that
folder next to this one):
  PYTHONPATH=/tmp/d/src:/tmp/hh/src /usr/bin/python3 tests/golden/freeu/make.py
"""
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.dirname(HERE)
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(GOLDEN, "diffusers-common"))
from diffusers_prelude import diffusers, seeded, write_expected  # noqa: E402
from diffusers import UNet2DConditionModel  # noqa: E402

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

write_expected(HERE, "freeu-expected", out, index)
print(json.dumps(index["cases"], indent=1))
