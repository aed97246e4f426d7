"""Writes latent-upscale-expected.safetensors / .json and the tiny K-block UNet in unet/: diffusers 0.25.1's
UNet2DConditionModel built from the K-diffusion blocks (KDownBlock2D, KCrossAttnDownBlock2D, KUpBlock2D,
KCrossAttnUpBlock2D) and StableDiffusionLatentUpscalePipeline runs with it. See README.md in this folder.

Run from the repository root, in the environment ../diffusers-common/diffusers_prelude.py describes (keep that
folder next to this one):
  PYTHONPATH=/tmp/d/src:/tmp/hh/src:/tmp/stubs /usr/bin/python3 tests/golden/latent-upscale/make.py
"""
import json
import os
import sys
from types import SimpleNamespace

import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.dirname(HERE)
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(GOLDEN, "diffusers-common"))
import transformers_stub  # noqa: E402,F401  (before diffusers)
from diffusers_prelude import diffusers, load_file, save_and_reload, seeded, write_expected  # noqa: E402
from diffusers import (AutoencoderKL, EulerDiscreteScheduler, StableDiffusionLatentUpscalePipeline,  # noqa: E402
                       UNet2DConditionModel)

# diffusers' tests/pipelines/stable_diffusion_2/test_stable_diffusion_latent_upscale.py tiny UNet made smaller so that
# the folder stays under 1 MB: two blocks of 32 channels (the K blocks' GroupNorms take channels // 32 groups, so 32 is
# the least), layers_per_block 1 and time_embedding_dim 32, so that the first up block is, as in that test's UNet and
# the published one, the K "first block" (in = out = temb channels: self-attention, no skip state); the cross-attention
# and pooled widths of tiny-sd's text encoder (32): time_cond_proj_dim = 128 (the noise-level Fourier features the
# pipeline builds) + 32 (the pooled text embedding)
UNET = dict(act_fn="gelu", attention_head_dim=8, norm_num_groups=None, block_out_channels=[32, 32], layers_per_block=1,
            time_embedding_dim=32, time_cond_proj_dim=160, conv_in_kernel=1, conv_out_kernel=1, cross_attention_dim=32,
            down_block_types=["KDownBlock2D", "KCrossAttnDownBlock2D"], in_channels=8, mid_block_type=None,
            only_cross_attention=False, out_channels=5, resnet_time_scale_shift="scale_shift", time_embedding_type="fourier",
            timestep_post_act="gelu", up_block_types=["KCrossAttnUpBlock2D", "KUpBlock2D"])

PROMPT, NEGATIVE = "a photo of a cat", ""   # tiny-sd-expected prompts 0 and 1


class StoredTokenizer:
    """CLIPTokenizer's answer for the two prompts, from tiny-sd-expected (golden A: real transformers 4.36)."""

    model_max_length = 77

    def __init__(self, meta):
        self.ids = {}
        for i, text in enumerate(meta["prompts"][:2]):
            row = meta["tokenizer"]["unpadded_ids"][i]
            self.ids[text] = row + [meta["tokenizer"]["pad_token_id"]] * (77 - len(row))

    def __call__(self, prompt, padding=None, max_length=None, truncation=None, return_length=None, return_tensors=None):
        prompts = [prompt] if isinstance(prompt, str) else prompt
        return SimpleNamespace(input_ids=torch.tensor([self.ids[p] for p in prompts]))


class StoredTextEncoder(nn.Module):
    """tiny-sd's CLIPTextModel as the pipeline calls it (output_hidden_states=True): hidden_states[-1] (after the last
    encoder layer, before final_layer_norm) and pooler_output, the real transformers 4.36 tensors of tiny-sd-expected
    for the two prompts, looked up by their token ids."""

    def __init__(self, tokenizer, exp):
        super().__init__()
        self.register_buffer("anchor", torch.zeros(1))
        self.rows = [tokenizer.ids[PROMPT], tokenizer.ids[NEGATIVE]]
        self.hidden = exp["text_encoder/hidden_states_prompts01"][-1]        # (2, 77, 32)
        self.pooled = exp["text_encoder/pooler_output"][:2]                  # (2, 32)

    @property
    def dtype(self):
        return torch.float32

    @property
    def device(self):   # DiffusionPipeline.device asks its first module, in the order of a set of names (hash-seeded)
        return self.anchor.device

    def forward(self, input_ids, output_hidden_states=False):
        assert output_hidden_states
        idx = [self.rows.index(r) for r in input_ids.tolist()]
        last = self.hidden[idx]
        return SimpleNamespace(hidden_states=(last,), pooler_output=self.pooled[idx])


def main():
    out, index = {}, {"diffusers": diffusers.__version__, "torch": torch.__version__, "unet_config": UNET, "forward": {}, "pipeline": {}}
    torch.manual_seed(0)
    unet = save_and_reload(UNet2DConditionModel(**UNET).eval(), os.path.join(HERE, "unet"))

    # 1. the UNet alone: the input the pipeline gives it (4 latent + 4 image channels, a 0-d float32 timestep,
    # timestep_cond of 160), with and without guidance's batch of 2, and at a size that is not a multiple of 8
    with torch.no_grad():
        for name, shape, t, seed in [("b1", (1, 8, 16, 16), 0.61, 1), ("b2", (2, 8, 16, 24), -0.25, 2), ("b1_6x10", (1, 8, 6, 10), 1.3, 3)]:
            x = seeded(shape, seed)
            ehs = seeded((shape[0], 7, 32), seed + 10)
            cond = seeded((shape[0], 160), seed + 20)
            sample = unet(x, torch.tensor(t, dtype=torch.float32), encoder_hidden_states=ehs, timestep_cond=cond).sample
            out[f"forward/{name}/sample_in"], out[f"forward/{name}/encoder_hidden_states"] = x, ehs
            out[f"forward/{name}/timestep_cond"], out[f"forward/{name}/out"] = cond, sample
            index["forward"][name] = {"timestep": t}

    # 2. the pipeline on tiny-sd's VAE (vae_scale_factor 2) with the stored text-encoder outputs
    meta = json.load(open(os.path.join(GOLDEN, "tiny-sd-expected.json")))
    exp = load_file(os.path.join(GOLDEN, "tiny-sd-expected.safetensors"))
    tokenizer = StoredTokenizer(meta)
    vae = AutoencoderKL.from_pretrained(os.path.join(GOLDEN, "tiny-sd", "vae"), low_cpu_mem_usage=False).eval()
    scheduler_config = dict(prediction_type="sample", beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    image = seeded((1, 4, 8, 8), 30)     # SD latents (4 channels): used as they are
    out["pipeline/image"] = image
    runs = [("g0_latent", dict(guidance_scale=0.0, output_type="latent"), 31),
            ("g1_latent", dict(guidance_scale=1.0, output_type="latent"), 32),
            ("g7_5_latent", dict(guidance_scale=7.5, output_type="latent"), 33),
            ("g7_5_np", dict(guidance_scale=7.5, output_type="np", negative_prompt="a photo of a cat"), 34),
            ("g0_seed_np", dict(guidance_scale=0.0, output_type="np"), None)]
    for name, call, seed in runs:
        scheduler = EulerDiscreteScheduler(**scheduler_config)
        pipe = StableDiffusionLatentUpscalePipeline(vae=vae, text_encoder=StoredTextEncoder(tokenizer, exp), tokenizer=tokenizer,
                                                    unet=unet, scheduler=scheduler)
        pipe.set_progress_bar_config(disable=True)
        steps = []
        kw = dict(call)
        if seed is not None:
            kw["latents"] = seeded((1, 4, 16, 16), seed)
            out[f"pipeline/{name}/latents_in"] = kw["latents"]
        else:
            kw["generator"] = torch.Generator("cpu").manual_seed(0)
        with torch.no_grad():
            result = pipe(PROMPT, image=image, num_inference_steps=3, callback=lambda i, t, lat: steps.append(lat.clone()), **kw).images
        result = torch.from_numpy(result) if not isinstance(result, torch.Tensor) else result
        out[f"pipeline/{name}/output"] = result
        out[f"pipeline/{name}/step_latents"] = torch.stack(steps)
        index["pipeline"][name] = {"prompt": PROMPT, "num_inference_steps": 3, "seed": 0 if seed is None else None,
                                   **{k: v for k, v in call.items()}}
    # 3. an RGB image (a tensor in [0, 1], which the image processor takes to [-1, 1]) that the VAE encodes: no generator
    # and no latents, so diffusers draws the posterior sample, then the latents, from torch's global generator after
    # torch.manual_seed(35), as our Generate does without a seed or generator; guidance 7.5 (the image latents repeated)
    rgb = torch.rand((1, 3, 16, 16), generator=torch.Generator().manual_seed(36))
    out["pipeline/rgb_image"] = rgb
    pipe = StableDiffusionLatentUpscalePipeline(vae=vae, text_encoder=StoredTextEncoder(tokenizer, exp), tokenizer=tokenizer,
                                                unet=unet, scheduler=EulerDiscreteScheduler(**scheduler_config))
    pipe.set_progress_bar_config(disable=True)
    steps = []
    torch.manual_seed(35)
    with torch.no_grad():
        result = pipe(PROMPT, image=rgb, num_inference_steps=3, guidance_scale=7.5, output_type="np",
                      callback=lambda i, t, lat: steps.append(lat.clone())).images
    out["pipeline/rgb_global_g7_5_np/output"] = torch.from_numpy(result)
    out["pipeline/rgb_global_g7_5_np/step_latents"] = torch.stack(steps)
    index["pipeline"]["rgb_global_g7_5_np"] = {"prompt": PROMPT, "num_inference_steps": 3, "guidance_scale": 7.5, "output_type": "np",
                                               "image": "pipeline/rgb_image, in [0, 1]", "torch.manual_seed": 35,
                                               "generator": None, "latents": None}
    index["scheduler_config"] = {k: v for k, v in EulerDiscreteScheduler(**scheduler_config).config.items() if not k.startswith("_")}
    index["text_encoder"] = "tiny-sd-expected text_encoder/hidden_states_prompts01[-1] and pooler_output[:2] (prompts 0, 1)"
    write_expected(HERE, "latent-upscale-expected", out, index)


if __name__ == "__main__":
    main()
