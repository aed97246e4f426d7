"""Writes tests/golden/tiny-consistency/ (a tiny ConsistencyModelPipeline folder shaped like
openai/diffusers-cd_imagenet64_l2) and consistency-expected.safetensors / .json: diffusers 0.25.1's
ConsistencyModelPipeline on it. See README.md in this folder.

Run from the repository root with Debian's python3-torch (1.13.1) and the sources of diffusers v0.25.1 and
huggingface_hub v0.20.3 on PYTHONPATH, and a stub transformers-4.36.0.dist-info/METADATA in /tmp/stubs:
  PYTHONPATH=/tmp/d/src:/tmp/hh/src:/tmp/stubs /usr/bin/python3 tests/golden/consistency-models/make.py
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

import diffusers  # noqa: E402
from diffusers import CMStochasticIterativeScheduler, ConsistencyModelPipeline, UNet2DModel  # noqa: E402

assert diffusers.__version__ == "0.25.1", diffusers.__version__
torch.set_num_threads(1)


def write_json(obj, path):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


# --- the tiny folder: scripts/convert_consistency_to_diffusers.py's TEST_UNET_CONFIG (v0.25.1), smaller -------------
FOLDER = os.path.join(GOLDEN, "tiny-consistency")
os.makedirs(FOLDER, exist_ok=True)
UNET = dict(sample_size=8, in_channels=3, out_channels=3, layers_per_block=1, num_class_embeds=10,
            block_out_channels=[32, 64], attention_head_dim=8,
            down_block_types=["ResnetDownsampleBlock2D", "AttnDownBlock2D"],
            up_block_types=["AttnUpBlock2D", "ResnetUpsampleBlock2D"], resnet_time_scale_shift="scale_shift",
            attn_norm_num_groups=32, upsample_type="resnet", downsample_type="resnet")
torch.manual_seed(0)
UNet2DModel(**UNET).save_pretrained(os.path.join(FOLDER, "unet"))
# the script's scheduler for the cd_imagenet64 checkpoints (40 training steps, Karras sigmas 0.002..80)
CMStochasticIterativeScheduler(num_train_timesteps=40, sigma_min=0.002, sigma_max=80.0).save_pretrained(
    os.path.join(FOLDER, "scheduler"))
write_json({"_class_name": "ConsistencyModelPipeline", "_diffusers_version": "0.25.1",
            "scheduler": ["diffusers", "CMStochasticIterativeScheduler"], "unet": ["diffusers", "UNet2DModel"]},
           os.path.join(FOLDER, "model_index.json"))

out, index = {}, {"diffusers": diffusers.__version__, "torch": torch.__version__, "numpy": np.__version__,
                  "cases": {}}


def case(name, seed, batch_size=1, class_labels=None, num_inference_steps=1, timesteps=None):
    pipe = ConsistencyModelPipeline.from_pretrained(FOLDER)
    trace = {"steps": [], "labels": []}
    step, unet_forward = pipe.scheduler.step, pipe.unet.forward

    def traced_step(model_output, t, sample, *a, **k):
        r = step(model_output, t, sample, *a, **k)
        trace["steps"].append(r[0].clone())
        return r

    def traced_unet(x, t, class_labels=None, **k):
        trace["labels"].append(class_labels.clone())
        return unet_forward(x, t, class_labels=class_labels, **k)
    pipe.scheduler.step, pipe.unet.forward = traced_step, traced_unet
    # torch.manual_seed returns the global generator, which prepare_class_labels' torch.randint draws from too
    images = pipe(batch_size=batch_size, class_labels=class_labels, num_inference_steps=num_inference_steps,
                  timesteps=timesteps, generator=torch.manual_seed(seed), output_type="np").images
    p = name + "/"
    out[p + "step1"] = trace["steps"][0]
    out[p + "sample"] = trace["steps"][-1]
    out[p + "images"] = torch.from_numpy(images)
    index["cases"][name] = {"seed": seed, "batch_size": batch_size, "class_labels": class_labels,
                            "num_inference_steps": num_inference_steps, "timesteps_arg": timesteps,
                            "timesteps": pipe.scheduler.timesteps.tolist(),
                            "unet_class_labels": trace["labels"][0].tolist(), "images": list(images.shape)}


case("one-step", 0, batch_size=2, class_labels=[3, 7])
case("timesteps-22-0", 1, class_labels=5, timesteps=[22, 0])
case("three-steps", 2, batch_size=2, class_labels=[0, 9], num_inference_steps=3)
case("random-labels", 3, batch_size=3, timesteps=[30, 10, 0])

_save_file(out, os.path.join(HERE, "consistency-expected.safetensors"))
with open(os.path.join(HERE, "consistency-expected.json"), "w") as f:
    json.dump(index, f, indent=1, sort_keys=True)
    f.write("\n")
print(json.dumps({k: (v["timesteps"], v["unet_class_labels"], float(out[k + "/images"].mean()))
                  for k, v in index["cases"].items()}, indent=1))
