"""Writes tests/golden/tiny-consistency/ (a tiny ConsistencyModelPipeline folder shaped like
openai/diffusers-cd_imagenet64_l2) and consistency-expected.safetensors / .json: diffusers 0.25.1's
ConsistencyModelPipeline on it. See README.md in this folder.

Run from the repository root, in the environment ../diffusers-common/diffusers_prelude.py describes (keep that
folder next to this one):
  PYTHONPATH=/tmp/d/src:/tmp/hh/src:/tmp/stubs /usr/bin/python3 tests/golden/consistency-models/make.py
"""
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.dirname(HERE)
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(GOLDEN, "diffusers-common"))
from diffusers_prelude import diffusers, write_expected, write_json  # noqa: E402
from diffusers import CMStochasticIterativeScheduler, ConsistencyModelPipeline, UNet2DModel  # noqa: E402


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
write_json(os.path.join(FOLDER, "model_index.json"), {
    "_class_name": "ConsistencyModelPipeline", "_diffusers_version": "0.25.1",
    "scheduler": ["diffusers", "CMStochasticIterativeScheduler"], "unet": ["diffusers", "UNet2DModel"]})

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

write_expected(HERE, "consistency-expected", out, index, keys=False)
print(json.dumps({k: (v["timesteps"], v["unet_class_labels"], float(out[k + "/images"].mean()))
                  for k, v in index["cases"].items()}, indent=1))
