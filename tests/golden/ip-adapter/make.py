"""Writes the IP-Adapter golden data: a tiny CLIP vision encoder (image_encoder/), tiny IP-Adapter weights (basic,
plus and full-face; .bin and .safetensors), CLIPImageProcessor outputs, the tiny SD UNet with each adapter loaded by
diffusers 0.25.1's `_load_ip_adapter_weights`, and StableDiffusionPipeline runs with `ip_adapter_image`.
See README.md in this folder.

Run from the repository root, in the environment ../diffusers-common/diffusers_prelude.py describes (keep that
folder next to this one; transformers is stubbed by ../diffusers-common/transformers_stub.py: it cannot run here):
  PYTHONPATH=/tmp/d/src:/tmp/hh/src:/tmp/stubs /usr/bin/python3 tests/golden/ip-adapter/make.py
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
import transformers_stub  # noqa: E402,F401  (before diffusers: its pipelines name CLIP classes; nothing of it runs)
from diffusers_prelude import diffusers, load_file, save_file, seeded  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402
from types import SimpleNamespace  # noqa: E402
from diffusers import UNet2DConditionModel, AutoencoderKL, PNDMScheduler, StableDiffusionPipeline  # noqa: E402
from diffusers import (ControlNetModel, StableDiffusionControlNetImg2ImgPipeline,  # noqa: E402
                       StableDiffusionControlNetInpaintPipeline, StableDiffusionControlNetPipeline,
                       StableDiffusionImg2ImgPipeline, StableDiffusionInpaintPipeline)
from diffusers import (EulerDiscreteScheduler, StableDiffusionXLControlNetPipeline, StableDiffusionXLImg2ImgPipeline,  # noqa: E402
                       StableDiffusionXLInpaintPipeline, StableDiffusionXLPipeline)
from diffusers_prelude import TINY_SDXL_EMBEDS, tiny_sdxl_embeds  # noqa: E402
from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionInstructPix2PixPipeline  # noqa: E402

OUT = {}
INFO = {"versions": {"torch": torch.__version__, "diffusers": diffusers.__version__, "numpy": np.__version__,
                     "Pillow": Image.__version__}}


# --- transformers' CLIP towers, transcribed (modeling_clip.py of 4.36, eager attention) ---------------------------
ACT = {"quick_gelu": lambda x: x * torch.sigmoid(1.702 * x), "gelu": F.gelu}


class ClipAttention(nn.Module):
    def __init__(self, h, heads):
        super().__init__()
        self.heads, self.hd = heads, h // heads
        self.k_proj, self.v_proj, self.q_proj, self.out_proj = (nn.Linear(h, h) for _ in range(4))

    def forward(self, x, causal_mask):
        b, s, e = x.shape
        q = self.q_proj(x) * self.hd ** -0.5

        def shape(t):
            return t.view(b, s, self.heads, self.hd).transpose(1, 2).reshape(b * self.heads, s, self.hd)
        q, k, v = shape(q), shape(self.k_proj(x)), shape(self.v_proj(x))
        w = torch.bmm(q, k.transpose(1, 2))
        if causal_mask is not None:
            w = (w.view(b, self.heads, s, s) + causal_mask).view(b * self.heads, s, s)
        w = F.softmax(w, dim=-1)
        o = torch.bmm(w, v).view(b, self.heads, s, self.hd).transpose(1, 2).reshape(b, s, e)
        return self.out_proj(o)


class ClipLayer(nn.Module):
    def __init__(self, h, inter, heads, act, eps):
        super().__init__()
        self.self_attn = ClipAttention(h, heads)
        self.layer_norm1 = nn.LayerNorm(h, eps=eps)
        self.mlp = nn.Module()
        self.mlp.fc1, self.mlp.fc2 = nn.Linear(h, inter), nn.Linear(inter, h)
        self.layer_norm2 = nn.LayerNorm(h, eps=eps)
        self.act = ACT[act]

    def forward(self, x, causal_mask=None):
        x = x + self.self_attn(self.layer_norm1(x), causal_mask)
        return x + self.mlp.fc2(self.act(self.mlp.fc1(self.layer_norm2(x))))


class VisionModelWithProjection(nn.Module):
    """transformers' CLIPVisionModelWithProjection: what diffusers' encode_image calls (image_embeds, hidden_states)."""

    def __init__(self, c):
        super().__init__()
        h = c["hidden_size"]
        self.vision_model = nn.Module()
        vm = self.vision_model
        vm.embeddings = nn.Module()
        npos = (c["image_size"] // c["patch_size"]) ** 2 + 1
        vm.embeddings.class_embedding = nn.Parameter(torch.randn(h))
        vm.embeddings.patch_embedding = nn.Conv2d(c["num_channels"], h, c["patch_size"], stride=c["patch_size"], bias=False)
        vm.embeddings.position_embedding = nn.Embedding(npos, h)
        vm.pre_layrnorm = nn.LayerNorm(h, eps=c["layer_norm_eps"])
        vm.encoder = nn.Module()
        vm.encoder.layers = nn.ModuleList(ClipLayer(h, c["intermediate_size"], c["num_attention_heads"], c["hidden_act"],
                                                    c["layer_norm_eps"]) for _ in range(c["num_hidden_layers"]))
        vm.post_layernorm = nn.LayerNorm(h, eps=c["layer_norm_eps"])
        self.visual_projection = nn.Linear(h, c["projection_dim"], bias=False)

    @property
    def dtype(self):
        return next(self.parameters()).dtype

    @property
    def device(self):   # DiffusionPipeline.device asks its first module, in the order of a set of names (hash-seeded)
        return next(self.parameters()).device

    def forward(self, pixel_values, output_hidden_states=False):
        vm = self.vision_model
        e = vm.embeddings
        b = pixel_values.shape[0]
        patches = e.patch_embedding(pixel_values.to(self.dtype)).flatten(2).transpose(1, 2)
        x = torch.cat([e.class_embedding.expand(b, 1, -1), patches], dim=1)
        x = x + e.position_embedding(torch.arange(x.shape[1]).unsqueeze(0))
        x = vm.pre_layrnorm(x)
        states = [x]
        for layer in vm.encoder.layers:
            x = layer(x)
            states.append(x)
        pooled = vm.post_layernorm(x[:, 0, :])
        return SimpleNamespace(image_embeds=self.visual_projection(pooled), last_hidden_state=x,
                               hidden_states=tuple(states) if output_hidden_states else None)


def validate_layers_on_tiny_sd_text_encoder():
    """The transcription's encoder layers, with a causal mask and CLIP's text embeddings, on tiny-sd's text encoder
    against the real transformers outputs stored in tiny-sd-expected (golden A)."""
    w = load_file(os.path.join(GOLDEN, "tiny-sd", "text_encoder", "model.safetensors"))
    cfg = json.load(open(os.path.join(GOLDEN, "tiny-sd", "text_encoder", "config.json")))
    exp = load_file(os.path.join(GOLDEN, "tiny-sd-expected.safetensors"))
    meta = json.load(open(os.path.join(GOLDEN, "tiny-sd-expected.json")))
    ids = [r + [meta["tokenizer"]["pad_token_id"]] * (77 - len(r)) for r in meta["tokenizer"]["unpadded_ids"]]
    # the tokenizer truncates to BOS + 75 tokens + EOS
    ids = torch.tensor([r if len(r) == 77 else r[:76] + [meta["tokenizer"]["eos_token_id"]] for r in ids])
    layers = nn.ModuleList(ClipLayer(cfg["hidden_size"], cfg["intermediate_size"], cfg["num_attention_heads"], cfg["hidden_act"],
                                     cfg["layer_norm_eps"]) for _ in range(cfg["num_hidden_layers"]))
    layers.load_state_dict({k[len("text_model.encoder.layers."):]: v for k, v in w.items() if k.startswith("text_model.encoder.layers.")})
    final = nn.LayerNorm(cfg["hidden_size"], eps=cfg["layer_norm_eps"])
    final.load_state_dict({"weight": w["text_model.final_layer_norm.weight"], "bias": w["text_model.final_layer_norm.bias"]})
    with torch.no_grad():
        x = w["text_model.embeddings.token_embedding.weight"][ids] + w["text_model.embeddings.position_embedding.weight"][:77]
        mask = torch.full((77, 77), torch.finfo(torch.float32).min).triu(1)[None, None]
        states = [x]
        for layer in layers:
            x = layer(x, mask)
            states.append(x)
        last = final(x)
    d_last = (last - exp["text_encoder/last_hidden_state"]).abs().max().item()
    d_hidden = max((states[k][:2] - exp["text_encoder/hidden_states_prompts01"][k]).abs().max().item() for k in range(len(states)))
    assert d_last < 1e-5 and d_hidden < 1e-5, (d_last, d_hidden)
    return {"last_hidden_state_max_abs_diff": d_last, "hidden_states_max_abs_diff": d_hidden, "prompts": len(ids)}


# --- transformers' CLIPImageProcessor, transcribed (PIL + numpy, as image_processing_clip.py 4.36 runs it) ------------
def clip_process(path, shortest_edge, crop_h, crop_w, resample=Image.BICUBIC, mean=(0.48145466, 0.4578275, 0.40821073),
                 std=(0.26862954, 0.26130258, 0.27577711), rescale=1 / 255):
    im = Image.open(path).convert("RGB")
    w, h = im.size
    short, long = (w, h) if w <= h else (h, w)
    new_long = int(shortest_edge * long / short)
    im = im.resize((shortest_edge, new_long) if w <= h else (new_long, shortest_edge), resample=resample)
    a = np.array(im).transpose(2, 0, 1)                                   # (C, H, W) uint8
    top, left = (a.shape[1] - crop_h) // 2, (a.shape[2] - crop_w) // 2
    a = a[:, top:top + crop_h, left:left + crop_w]
    a = (a * rescale).astype(np.float32)
    a = (a - np.array(mean, dtype=np.float32)[:, None, None]) / np.array(std, dtype=np.float32)[:, None, None]
    return torch.from_numpy(np.ascontiguousarray(a[None]))


# --- the IP-Adapter weights, in the layouts of h94/IP-Adapter's files ----------------------------------------------
def ip_attn_weights(unet_cfg, seed, cross_dim):
    """One (to_k_ip, to_v_ip) pair per cross-attention processor, numbered 1, 3, 5, … in diffusers' attn_processors
    order (down_blocks, up_blocks, mid_block); tiny SD: down_blocks.1 (2), up_blocks.0 (3), mid_block (1), 64 wide."""
    out, g = {}, 0
    for n in range(6):
        for k in ("to_k_ip", "to_v_ip"):
            out[f"{2 * n + 1}.{k}.weight"] = seeded((64, cross_dim), seed + g) * 0.3
            g += 1
    return out


def image_proj_basic(seed, embed_dim, cross_dim, tokens=4):
    return {"proj.weight": seeded((tokens * cross_dim, embed_dim), seed) * 0.3, "proj.bias": seeded((tokens * cross_dim,), seed + 1) * 0.1,
            "norm.weight": 1 + 0.1 * seeded((cross_dim,), seed + 2), "norm.bias": 0.1 * seeded((cross_dim,), seed + 3)}


def image_proj_full(seed, embed_dim, cross_dim):
    return {"proj.0.weight": seeded((embed_dim, embed_dim), seed) * 0.3, "proj.0.bias": seeded((embed_dim,), seed + 1) * 0.1,
            "proj.2.weight": seeded((cross_dim, embed_dim), seed + 2) * 0.3, "proj.2.bias": seeded((cross_dim,), seed + 3) * 0.1,
            "proj.3.weight": 1 + 0.1 * seeded((cross_dim,), seed + 4), "proj.3.bias": 0.1 * seeded((cross_dim,), seed + 5)}


def image_proj_plus(seed, embed_dim, cross_dim, hidden=16, queries=6, heads=1, depth=4):
    """The original IP-Adapter Plus Resampler keys (norm1/norm2, to_q, to_kv, to_out, ff 1.0/1.1/1.3)."""
    s, inner = [seed], heads * 64

    def r(shape, scale=0.2):
        s[0] += 1
        return seeded(shape, s[0]) * scale
    d = {"latents": r((1, queries, hidden), hidden ** -0.5), "proj_in.weight": r((hidden, embed_dim)), "proj_in.bias": r((hidden,), 0.1),
         "proj_out.weight": r((cross_dim, hidden)), "proj_out.bias": r((cross_dim,), 0.1),
         "norm_out.weight": 1 + r((cross_dim,), 0.1), "norm_out.bias": r((cross_dim,), 0.1)}
    for i in range(depth):
        p = f"layers.{i}."
        d.update({p + "0.norm1.weight": 1 + r((hidden,), 0.1), p + "0.norm1.bias": r((hidden,), 0.1),
                  p + "0.norm2.weight": 1 + r((hidden,), 0.1), p + "0.norm2.bias": r((hidden,), 0.1),
                  p + "0.to_q.weight": r((inner, hidden)), p + "0.to_kv.weight": r((2 * inner, hidden)),
                  p + "0.to_out.weight": r((hidden, inner)),
                  p + "1.0.weight": 1 + r((hidden,), 0.1), p + "1.0.bias": r((hidden,), 0.1),
                  p + "1.1.weight": r((4 * hidden, hidden)), p + "1.3.weight": r((hidden, 4 * hidden))})
    return d


def save_adapter(name, sd, formats):
    for fmt in formats:
        path = os.path.join(HERE, f"ip-adapter-{name}.{fmt}")
        if fmt == "bin":
            torch.save(sd, path)
        else:
            flat = {f"{group}.{k}": v.contiguous() for group in ("image_proj", "ip_adapter") for k, v in sd[group].items()}
            save_file(flat, path)


def main():
    INFO["layer_validation_on_tiny_sd_text_encoder"] = validate_layers_on_tiny_sd_text_encoder()

    # the tiny image encoder: 32x32 images in 2x2 patches = 256 patches + the class token = 257 tokens (what
    # diffusers' full-face adapter hard-codes), hidden 32, projection 16, OpenCLIP's gelu as h94's encoders
    vcfg = {"architectures": ["CLIPVisionModelWithProjection"], "attention_dropout": 0.0, "dropout": 0.0, "hidden_act": "gelu",
            "hidden_size": 32, "image_size": 32, "initializer_factor": 1.0, "initializer_range": 0.02, "intermediate_size": 37,
            "layer_norm_eps": 1e-05, "model_type": "clip_vision_model", "num_attention_heads": 4, "num_channels": 3,
            "num_hidden_layers": 3, "patch_size": 2, "projection_dim": 16, "torch_dtype": "float32"}
    torch.manual_seed(0)
    encoder = VisionModelWithProjection(vcfg).eval()
    with torch.no_grad():
        for n, p in encoder.named_parameters():   # LayerNorms away from the identity so that a skipped one shows
            if "norm" in n:
                p.add_(0.1 * torch.randn_like(p))
    enc_dir = os.path.join(HERE, "image_encoder")
    os.makedirs(enc_dir, exist_ok=True)
    with open(os.path.join(enc_dir, "config.json"), "w") as f:
        json.dump(vcfg, f, indent=2, sort_keys=True)
    save_file({k: v.contiguous() for k, v in encoder.state_dict().items()}, os.path.join(enc_dir, "model.safetensors"), {"format": "pt"})
    pre = {"crop_size": {"height": 32, "width": 32}, "do_center_crop": True, "do_convert_rgb": True, "do_normalize": True,
           "do_rescale": True, "do_resize": True, "image_mean": [0.48145466, 0.4578275, 0.40821073],
           "image_processor_type": "CLIPImageProcessor", "image_std": [0.26862954, 0.26130258, 0.27577711], "resample": 3,
           "rescale_factor": 0.00392156862745098, "size": {"shortest_edge": 32}}
    with open(os.path.join(enc_dir, "preprocessor_config.json"), "w") as f:
        json.dump(pre, f, indent=2, sort_keys=True)

    # the image: 48x40 RGB, a smooth pattern plus seeded noise
    rng = np.random.RandomState(0)
    yy, xx = np.mgrid[0:40, 0:48]
    img = np.stack([128 + 100 * np.sin(xx / 7.0), 128 + 100 * np.cos(yy / 5.0), (xx * 5 + yy * 3) % 256], -1)
    img = np.clip(img + rng.randint(-20, 21, img.shape), 0, 255).astype(np.uint8)
    img_path = os.path.join(HERE, "ip-image.png")
    Image.fromarray(img).save(img_path)

    # the processor: the encoder folder's settings on ip-image.png; a second setting (bilinear, rectangular crop) on img2img-init.png
    pixels = clip_process(img_path, 32, 32, 32)
    OUT["processor/ip_image"] = pixels
    OUT["processor/init_bilinear_24_20x16"] = clip_process(os.path.join(GOLDEN, "img2img-init.png"), 24, 20, 16, resample=Image.BILINEAR,
                                                           mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))

    # the encoder on the processed image: image embeds, last hidden state, every hidden state
    with torch.no_grad():
        o = encoder(pixels, output_hidden_states=True)
        zeros = encoder(torch.zeros_like(pixels), output_hidden_states=True)
        two = encoder(torch.cat([pixels, seeded(pixels.shape, 5)]), output_hidden_states=True)
    OUT["encoder/image_embeds"] = o.image_embeds
    OUT["encoder/last_hidden_state"] = o.last_hidden_state
    OUT["encoder/hidden_states"] = torch.stack(o.hidden_states)
    OUT["encoder/zeros_hidden_states_m2"] = zeros.hidden_states[-2]
    OUT["encoder/batch2_image_embeds"] = two.image_embeds
    OUT["encoder/batch2_hidden_states_m2"] = two.hidden_states[-2]

    # the adapters
    unet_dir = os.path.join(GOLDEN, "tiny-sd", "unet")
    ucfg = json.load(open(os.path.join(unet_dir, "config.json")))
    cross = ucfg["cross_attention_dim"]
    adapters = {
        "basic": {"image_proj": image_proj_basic(100, vcfg["projection_dim"], cross), "ip_adapter": ip_attn_weights(ucfg, 200, cross)},
        "plus": {"image_proj": image_proj_plus(300, vcfg["hidden_size"], cross), "ip_adapter": ip_attn_weights(ucfg, 400, cross)},
        "full": {"image_proj": image_proj_full(500, vcfg["hidden_size"], cross), "ip_adapter": ip_attn_weights(ucfg, 600, cross)},
    }
    save_adapter("basic", adapters["basic"], ["bin", "safetensors"])
    save_adapter("plus", adapters["plus"], ["bin", "safetensors"])
    save_adapter("full", adapters["full"], ["safetensors"])

    # the UNet with each adapter (diffusers' _load_ip_adapter_weights), image embeds as added_cond_kwargs
    sample, t, ehs = seeded((2, 4, 16, 16), 10), 500, seeded((2, 77, cross), 11)
    embeds = {"basic": seeded((2, vcfg["projection_dim"]), 12), "plus": seeded((2, 257, vcfg["hidden_size"]), 13),
              "full": seeded((2, 257, vcfg["hidden_size"]), 14)}
    OUT["unet/sample"], OUT["unet/encoder_hidden_states"] = sample, ehs
    for name, sd in adapters.items():
        unet = UNet2DConditionModel.from_pretrained(unet_dir).eval()
        unet._load_ip_adapter_weights({k: dict(v) for k, v in sd.items()})
        OUT[f"unet/{name}/image_embeds"] = embeds[name]
        with torch.no_grad():
            OUT[f"unet/{name}/projected"] = unet.encoder_hid_proj(embeds[name])
            OUT[f"unet/{name}/out"] = unet(sample, t, ehs, added_cond_kwargs={"image_embeds": embeds[name]}).sample
            if name == "basic":
                for p in unet.attn_processors.values():
                    if hasattr(p, "scale"):
                        p.scale = 0.5
                OUT["unet/basic/out_scale_0.5"] = unet(sample, t, ehs, added_cond_kwargs={"image_embeds": embeds[name]}).sample
        INFO[f"unet_{name}_projection"] = type(unet.encoder_hid_proj).__name__
        INFO[f"unet_{name}_processors"] = sorted({type(p).__name__ for p in unet.attn_processors.values()})
    # without the adapter, for the test that the loaded adapter changes the output
    with torch.no_grad():
        OUT["unet/none/out"] = UNet2DConditionModel.from_pretrained(unet_dir).eval()(sample, t, ehs).sample

    # the pipeline (the real StableDiffusionPipeline.__call__ and encode_image) with the tiny SD components
    exp = load_file(os.path.join(GOLDEN, "tiny-sd-expected.safetensors"))
    pe, npe = exp["pipeline/ddim/prompt_embeds"], exp["pipeline/ddim/negative_prompt_embeds"]
    runs = {"basic": dict(n=1, scale=1.0), "basic_scale_0.6_n2": dict(n=2, scale=0.6, adapter="basic"), "plus": dict(n=1, scale=1.0)}
    INFO["pipeline_runs"] = {}
    for run, a in runs.items():
        adapter = a.get("adapter", run)
        sd_dir = os.path.join(GOLDEN, "tiny-sd")
        pipe = StableDiffusionPipeline(vae=AutoencoderKL.from_pretrained(os.path.join(sd_dir, "vae")), text_encoder=None, tokenizer=None,
                                       unet=UNet2DConditionModel.from_pretrained(os.path.join(sd_dir, "unet")),
                                       scheduler=PNDMScheduler.from_pretrained(os.path.join(sd_dir, "scheduler")),
                                       safety_checker=None, feature_extractor=None, image_encoder=encoder, requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        pipe.load_ip_adapter(HERE, subfolder="", weight_name=f"ip-adapter-{adapter}.bin")
        pipe.set_ip_adapter_scale(a["scale"])
        call = dict(prompt_embeds=pe, negative_prompt_embeds=npe, ip_adapter_image=pixels, num_inference_steps=3, guidance_scale=7.5,
                    height=64, width=64, num_images_per_prompt=a["n"], output_type="np")
        images = pipe(**call, generator=torch.manual_seed(0)).images
        OUT[f"pipeline/{run}/images"] = torch.from_numpy(images)
        INFO["pipeline_runs"][run] = {"adapter": f"ip-adapter-{adapter}.bin", "scale": a["scale"], "num_images_per_prompt": a["n"],
                                      "num_inference_steps": 3, "guidance_scale": 7.5, "height": 64, "width": 64, "seed": 0,
                                      "scheduler": "tiny-sd/scheduler (PNDMScheduler)", "prompt_embeds": "tiny-sd-expected pipeline/ddim",
                                      "ip_adapter_image": "processor/ip_image (ip-image.png through the encoder folder's processor)"}

    # the other Stable Diffusion pipelines with ip_adapter_image (the same encode_image; ControlNet img2img calls it
    # without output_hidden_states, so it runs the basic adapter): img2img-init.png, inpaint-mask.png and
    # controlnet-edges.png of the golden set, tiny-sd-controlnet
    init = Image.open(os.path.join(GOLDEN, "img2img-init.png")).convert("RGB")
    mask = Image.open(os.path.join(GOLDEN, "inpaint-mask.png")).convert("RGB")
    edges = Image.open(os.path.join(GOLDEN, "controlnet-edges.png")).convert("RGB")
    more = {
        "img2img_basic": (StableDiffusionImg2ImgPipeline, "basic", dict(image=init, strength=0.6)),
        "inpaint_plus": (StableDiffusionInpaintPipeline, "plus", dict(image=init, mask_image=mask, strength=1.0, height=64, width=64)),
        "controlnet_basic": (StableDiffusionControlNetPipeline, "basic", dict(image=edges, height=64, width=64)),
        "controlnet_img2img_basic": (StableDiffusionControlNetImg2ImgPipeline, "basic", dict(image=init, control_image=edges, strength=0.6)),
        "controlnet_inpaint_plus": (StableDiffusionControlNetInpaintPipeline, "plus", dict(image=init, mask_image=mask, control_image=edges,
                                                                                            strength=1.0, height=64, width=64)),
    }
    for run, (cls, adapter, extra) in more.items():
        sd_dir = os.path.join(GOLDEN, "tiny-sd")
        parts = dict(vae=AutoencoderKL.from_pretrained(os.path.join(sd_dir, "vae")), text_encoder=None, tokenizer=None,
                     unet=UNet2DConditionModel.from_pretrained(os.path.join(sd_dir, "unet")),
                     scheduler=PNDMScheduler.from_pretrained(os.path.join(sd_dir, "scheduler")),
                     safety_checker=None, feature_extractor=None, image_encoder=encoder, requires_safety_checker=False)
        if "controlnet" in run:
            parts["controlnet"] = ControlNetModel.from_pretrained(os.path.join(GOLDEN, "tiny-sd-controlnet"))
        pipe = cls(**parts)
        pipe.set_progress_bar_config(disable=True)
        pipe.load_ip_adapter(HERE, subfolder="", weight_name=f"ip-adapter-{adapter}.bin")
        call = dict(prompt_embeds=pe, negative_prompt_embeds=npe, ip_adapter_image=pixels, num_inference_steps=3, guidance_scale=7.5,
                    output_type="np", **extra)
        images = pipe(**call, generator=torch.manual_seed(0)).images
        OUT[f"pipeline/{run}/images"] = torch.from_numpy(images)
        INFO["pipeline_runs"][run] = {"pipeline": cls.__name__, "adapter": f"ip-adapter-{adapter}.bin", "scale": 1.0, "num_images_per_prompt": 1,
                                      "num_inference_steps": 3, "guidance_scale": 7.5, "seed": 0,
                                      "scheduler": "tiny-sd/scheduler (PNDMScheduler)", "prompt_embeds": "tiny-sd-expected pipeline/ddim",
                                      "ip_adapter_image": "processor/ip_image (ip-image.png through the encoder folder's processor)",
                                      **{k: (v if not isinstance(v, Image.Image) else {id(init): "img2img-init.png", id(mask): "inpaint-mask.png",
                                                                                         id(edges): "controlnet-edges.png"}[id(v)])
                                         for k, v in extra.items()},
                                      **({"controlnet": "tiny-sd-controlnet"} if "controlnet" in run else {})}

    sdxl_runs(encoder, vcfg, pixels, init, mask, edges)
    pix2pix_runs(encoder, pixels, init, pe, npe)

    save_file({k: v.contiguous().float() for k, v in OUT.items()}, os.path.join(HERE, "ip-adapter-expected.safetensors"))
    with open(os.path.join(HERE, "ip-adapter-expected.json"), "w") as f:
        json.dump(INFO, f, indent=2, sort_keys=True)


def sdxl_ip_attn_weights(unet, seed):
    """ip_adapter weights for any UNet: one (to_k_ip, to_v_ip) pair per cross-attention processor in diffusers'
    attn_processors order, numbered 1, 3, 5, ..., each [the attention's width, cross_attention_dim]."""
    cross, out, g = unet.config.cross_attention_dim, {}, 0
    names = [n for n in unet.attn_processors if not n.endswith("attn1.processor")]
    modules = dict(unet.named_modules())
    for n, name in enumerate(names):
        hidden = modules[name[:-len(".processor")]].to_out[0].out_features
        for k in ("to_k_ip", "to_v_ip"):
            out[f"{2 * n + 1}.{k}.weight"] = seeded((hidden, cross), seed + g) * 0.3
            g += 1
    return out


def sdxl_runs(encoder, vcfg, pixels, init, mask, edges):
    """The SDXL pipelines with ip_adapter_image (txt2img, img2img, inpaint, ControlNet; the same encode_image, the
    embeds in added_cond_kwargs next to text_embeds and time_ids) on tiny-sdxl (cross_attention_dim 48) with SDXL-width
    adapters (ip-adapter-sdxl-basic / -plus, in the folder's sdxl/ next to a copy of the image encoder)."""
    sdxl = os.path.join(GOLDEN, "tiny-sdxl")
    unet = UNet2DConditionModel.from_pretrained(os.path.join(sdxl, "unet"))
    cross = unet.config.cross_attention_dim
    adapters = {"basic": {"image_proj": image_proj_basic(700, vcfg["projection_dim"], cross), "ip_adapter": sdxl_ip_attn_weights(unet, 800)},
                "plus": {"image_proj": image_proj_plus(900, vcfg["hidden_size"], cross), "ip_adapter": sdxl_ip_attn_weights(unet, 1000)}}
    sub = os.path.join(HERE, "sdxl")
    os.makedirs(sub, exist_ok=True)
    for name, sd in adapters.items():   # diffusers loads the .bin (the prelude's safetensors has no safe_open)
        torch.save(sd, os.path.join(sub, f"ip-adapter-sdxl-{name}.bin"))
        flat = {f"{group}.{k}": v.contiguous() for group in ("image_proj", "ip_adapter") for k, v in sd[group].items()}
        save_file(flat, os.path.join(sub, f"ip-adapter-sdxl-{name}.safetensors"))
    INFO["sdxl_adapters"] = {"cross_attention_dim": cross, "cross_attentions": len(adapters["basic"]["ip_adapter"]) // 2}
    controlnet = ControlNetModel.from_pretrained(os.path.join(GOLDEN, "sdxl-controlnet-img2img", "controlnet"))
    runs = {
        "sdxl_basic": (StableDiffusionXLPipeline, "basic", dict(num_inference_steps=3)),
        "sdxl_plus_scale_0.7_n2": (StableDiffusionXLPipeline, "plus", dict(num_inference_steps=3, num_images_per_prompt=2)),
        "sdxl_img2img_basic": (StableDiffusionXLImg2ImgPipeline, "basic", dict(image=init, strength=0.6, num_inference_steps=4)),
        "sdxl_inpaint_plus": (StableDiffusionXLInpaintPipeline, "plus", dict(image=init, mask_image=mask, strength=1.0, height=64,
                                                                            width=64, num_inference_steps=3)),
        "sdxl_controlnet_basic": (StableDiffusionXLControlNetPipeline, "basic", dict(image=edges, height=64, width=64,
                                                                                    num_inference_steps=3)),
    }
    for run, (cls, adapter, extra) in runs.items():
        parts = dict(vae=AutoencoderKL.from_pretrained(os.path.join(sdxl, "vae")), text_encoder=None, text_encoder_2=None, tokenizer=None,
                     tokenizer_2=None, unet=UNet2DConditionModel.from_pretrained(os.path.join(sdxl, "unet")),
                     scheduler=EulerDiscreteScheduler.from_pretrained(os.path.join(sdxl, "scheduler")), image_encoder=encoder,
                     feature_extractor=None)
        if cls is StableDiffusionXLControlNetPipeline:
            parts["controlnet"] = controlnet
        pipe = cls(**parts)
        pipe.set_progress_bar_config(disable=True)
        pipe.load_ip_adapter(sub, subfolder="", weight_name=f"ip-adapter-sdxl-{adapter}.bin")
        scale = 0.7 if "scale_0.7" in run else 1.0
        pipe.set_ip_adapter_scale(scale)
        with torch.no_grad():
            images = pipe(**tiny_sdxl_embeds(), ip_adapter_image=pixels, guidance_scale=5.0, output_type="np",
                          generator=torch.manual_seed(0), **extra).images
        OUT[f"pipeline/{run}/images"] = torch.from_numpy(images)
        INFO["pipeline_runs"][run] = {"pipeline": cls.__name__, "adapter": f"sdxl/ip-adapter-sdxl-{adapter}.bin", "scale": scale,
                                      "guidance_scale": 5.0, "seed": 0, "scheduler": "tiny-sdxl/scheduler (EulerDiscreteScheduler)",
                                      "embeds": TINY_SDXL_EMBEDS,
                                      "ip_adapter_image": "processor/ip_image (ip-image.png through the encoder folder's processor)",
                                      **{k: (v if not isinstance(v, Image.Image) else {id(init): "img2img-init.png", id(mask): "inpaint-mask.png",
                                                                                         id(edges): "controlnet-edges.png"}[id(v)])
                                         for k, v in extra.items()},
                                      **({"controlnet": "sdxl-controlnet-img2img/controlnet"} if "controlnet" in run else {})}


def pix2pix_runs(encoder, pixels, init, pe, npe):
    """StableDiffusionInstructPix2PixPipeline with ip_adapter_image (diffusers 0.25.1: with guidance the image embeds
    are [image, negative, negative], as its prompt embeds [prompt, negative, negative]) on tiny-sd-instruct-pix2pix,
    whose UNet has tiny-sd's cross-attentions, so the SD adapters fit; its EulerAncestralDiscreteScheduler."""
    folder = os.path.join(GOLDEN, "tiny-sd-instruct-pix2pix")
    runs = {"pix2pix_basic": ("basic", dict(guidance_scale=7.5, image_guidance_scale=1.5)),
            "pix2pix_plus_n2": ("plus", dict(guidance_scale=7.5, image_guidance_scale=1.5, num_images_per_prompt=2)),
            "pix2pix_basic_noguidance": ("basic", dict(guidance_scale=1.0, image_guidance_scale=1.5))}
    for run, (adapter, extra) in runs.items():
        pipe = StableDiffusionInstructPix2PixPipeline(
            vae=AutoencoderKL.from_pretrained(os.path.join(folder, "vae")), text_encoder=None, tokenizer=None,
            unet=UNet2DConditionModel.from_pretrained(os.path.join(folder, "unet")),
            scheduler=EulerAncestralDiscreteScheduler.from_pretrained(os.path.join(folder, "scheduler")),
            safety_checker=None, feature_extractor=None, image_encoder=encoder, requires_safety_checker=False)
        pipe.__dict__["text_encoder"] = SimpleNamespace(dtype=torch.float32)   # _encode_prompt casts to its dtype; none runs
        pipe.set_progress_bar_config(disable=True)
        pipe.load_ip_adapter(HERE, subfolder="", weight_name=f"ip-adapter-{adapter}.bin")
        with torch.no_grad():
            images = pipe(prompt_embeds=pe, negative_prompt_embeds=npe, image=init, ip_adapter_image=pixels, num_inference_steps=3,
                          output_type="np", generator=torch.manual_seed(0), **extra).images
        OUT[f"pipeline/{run}/images"] = torch.from_numpy(images)
        INFO["pipeline_runs"][run] = {"pipeline": "StableDiffusionInstructPix2PixPipeline", "adapter": f"ip-adapter-{adapter}.bin",
                                      "scale": 1.0, "num_inference_steps": 3, "seed": 0, "image": "img2img-init.png",
                                      "scheduler": "tiny-sd-instruct-pix2pix/scheduler (EulerAncestralDiscreteScheduler)",
                                      "prompt_embeds": "tiny-sd-expected pipeline/ddim", "unet": "tiny-sd-instruct-pix2pix/unet",
                                      "ip_adapter_image": "processor/ip_image (ip-image.png through the encoder folder's processor)", **extra}


if __name__ == "__main__":
    main()
