"""Writes tests/golden/tiny-dit/ (a tiny DiTPipeline folder shaped like facebook/DiT-XL-2-256) and
dit-expected.safetensors / .json: diffusers 0.25.1's Transformer2DModel (patch input, ada_norm_zero) and DiTPipeline
on it. See README.md in this folder.

Run from the repository root, in the environment ../diffusers-common/diffusers_prelude.py describes (keep that
folder next to this one):
  PYTHONPATH=/tmp/d/src:/tmp/hh/src:/tmp/stubs /usr/bin/python3 tests/golden/dit/make.py
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
from diffusers_prelude import diffusers, seeded, write_expected, write_json  # noqa: E402
from diffusers import (DDIMScheduler, DiTPipeline, DPMSolverMultistepScheduler, EulerDiscreteScheduler,  # noqa: E402
                       Transformer2DModel)


# --- the tiny folder: facebook/DiT-XL-2-256's layout and config keys, small sizes ---------------------------------
FOLDER = os.path.join(GOLDEN, "tiny-dit")
os.makedirs(FOLDER, exist_ok=True)
# scripts/convert_dit_to_diffusers.py (v0.25.1) builds DiT-XL/2 with these keys; only the sizes are made small
TRANSFORMER = dict(sample_size=8, num_layers=2, attention_head_dim=12, in_channels=4, out_channels=8, patch_size=2,
                   attention_bias=True, num_attention_heads=2, activation_fn="gelu-approximate",
                   num_embeds_ada_norm=1000, norm_type="ada_norm_zero", norm_elementwise_affine=False)
torch.manual_seed(0)
Transformer2DModel(**TRANSFORMER).save_pretrained(os.path.join(FOLDER, "transformer"))
# the same script's scheduler (DDIM, linear betas, epsilon, no clipping)
DDIMScheduler(num_train_timesteps=1000, beta_schedule="linear", prediction_type="epsilon",
              clip_sample=False).save_pretrained(os.path.join(FOLDER, "scheduler"))
# the VAE: tests/golden/tiny-sd/vae (real golden data; 2 blocks, so an 8x8 latent decodes to 16x16), copied
os.makedirs(os.path.join(FOLDER, "vae"), exist_ok=True)
for name in ("config.json", "diffusion_pytorch_model.safetensors"):
    with open(os.path.join(GOLDEN, "tiny-sd", "vae", name), "rb") as src:
        data = src.read()
    with open(os.path.join(FOLDER, "vae", name), "wb") as dst:
        dst.write(data)
# id2label as facebook/DiT-XL-2-256's model_index.json has it (ImageNet ids → comma-separated names), a subset of
# the 1000 classes; 134 and 517 are both "crane" in ImageNet (the later id wins in diffusers' labels dict)
ID2LABEL = {
    "0": "tench, Tinca tinca",
    "1": "goldfish, Carassius auratus",
    "2": "great white shark, white shark, man-eater, man-eating shark, Carcharodon carcharias",
    "3": "tiger shark, Galeocerdo cuvieri",
    "134": "crane",
    "207": "golden retriever",
    "279": "arctic fox, white fox, Alopex lagopus",
    "360": "otter",
    "387": "lesser panda, red panda, panda, bear cat, cat bear, Ailurus fulgens",
    "517": "crane",
    "879": "umbrella",
    "974": "geyser",
}
write_json(os.path.join(FOLDER, "model_index.json"), {
    "_class_name": "DiTPipeline", "_diffusers_version": "0.25.1", "id2label": ID2LABEL,
    "scheduler": ["diffusers", "DDIMScheduler"], "transformer": ["diffusers", "Transformer2DModel"],
    "vae": ["diffusers", "AutoencoderKL"]})

out, index = {}, {"diffusers": diffusers.__version__, "torch": torch.__version__, "numpy": np.__version__,
                  "forward": {}, "cases": {}}

# --- the transformer alone ------------------------------------------------------------------------------------------
tr = Transformer2DModel.from_pretrained(os.path.join(FOLDER, "transformer")).eval()
out["pos_embed"] = tr.pos_embed.pos_embed.clone()


def forward_case(name, x, t, labels):
    seen = {}
    hooks = [tr.transformer_blocks[0].register_forward_hook(lambda m, i, o: seen.__setitem__("block0", o)),
             tr.pos_embed.register_forward_hook(lambda m, i, o: seen.__setitem__("patch_embed", o)),
             tr.transformer_blocks[0].norm1.emb.register_forward_hook(lambda m, i, o: seen.__setitem__("conditioning", o))]
    with torch.no_grad():
        y = tr(x, timestep=t, class_labels=labels).sample
    for h in hooks:
        h.remove()
    p = "forward/" + name + "/"
    out[p + "x"], out[p + "timestep"], out[p + "class_labels"], out[p + "sample"] = x, t, labels, y
    for k, v in seen.items():
        out[p + k] = v
    index["forward"][name] = {"x": list(x.shape), "timestep": t.tolist(), "class_labels": labels.tolist(),
                              "sample": list(y.shape)}


forward_case("8x8", seeded((2, 4, 8, 8), 1), torch.tensor([999, 10]), torch.tensor([207, 1000]))
# a larger latent than sample_size: PatchEmbed recomputes the sin-cos table for the 6x6 grid (base size 4)
forward_case("12x12", seeded((1, 4, 12, 12), 2), torch.tensor([500]), torch.tensor([3]))
forward_case("float-timestep", seeded((1, 4, 8, 8), 3), torch.tensor([250.5]), torch.tensor([0]))


# --- the pipeline ---------------------------------------------------------------------------------------------------
def pipeline_case(name, labels, steps, guidance, seed, scheduler=None):
    pipe = DiTPipeline.from_pretrained(FOLDER)
    if scheduler == "dpm":
        pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    if scheduler == "euler":  # a sigma scheduler: diffusers steps on the scale_model_input sample
        pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    trace = {"steps": []}
    step = pipe.scheduler.step

    def traced_step(model_output, t, sample, *a, **k):
        r = step(model_output, t, sample, *a, **k)
        trace["steps"].append(r.prev_sample.clone())
        return r
    pipe.scheduler.step = traced_step
    decode = pipe.vae.decode

    def traced_decode(z, *a, **k):
        trace["decode_input"] = z.clone()
        return decode(z, *a, **k)
    pipe.vae.decode = traced_decode
    kw = {} if guidance is None else {"guidance_scale": guidance}
    images = pipe(class_labels=labels, num_inference_steps=steps, generator=torch.manual_seed(seed),
                  output_type="numpy", **kw).images
    p = name + "/"
    last = trace["steps"][-1]
    out[p + "latents"] = last[: len(labels)]
    out[p + "decode_input"] = trace["decode_input"]
    out[p + "step1"] = trace["steps"][0]
    out[p + "images"] = torch.from_numpy(images)
    index["cases"][name] = {"class_labels": labels, "num_inference_steps": steps,
                            "guidance_scale": 4.0 if guidance is None else guidance, "seed": seed,
                            "scheduler": type(pipe.scheduler).__name__,
                            "timesteps": pipe.scheduler.timesteps.tolist(),
                            "model_batch": int(trace["steps"][0].shape[0]), "images": list(images.shape)}


pipeline_case("ddim-cfg", [207, 1], 12, None, 0)
pipeline_case("ddim-no-cfg", [3], 12, 1.0, 1)
pipeline_case("ddim-two-labels-cfg-1.5", [879, 974], 6, 1.5, 2)
pipeline_case("dpm-cfg", [207, 360], 10, 4.0, 3, scheduler="dpm")
pipeline_case("euler-cfg", [207, 360], 6, 4.0, 4, scheduler="euler")

# --- labels -----------------------------------------------------------------------------------------------------------
pipe = DiTPipeline.from_pretrained(FOLDER)
index["labels"] = pipe.labels
index["get_label_ids"] = {"names": ["white shark", "umbrella", "crane", "panda"],
                          "ids": pipe.get_label_ids(["white shark", "umbrella", "crane", "panda"])}
try:
    pipe.get_label_ids(["unicorn"])
    raise AssertionError("no error")
except ValueError as e:
    index["unknown_label_error_starts"] = str(e).split("\n")[0]

write_expected(HERE, "dit-expected", out, index, keys=False)
print(json.dumps({k: (v["timesteps"][:3], float(out[k + "/images"].mean())) for k, v in index["cases"].items()}, indent=1))
