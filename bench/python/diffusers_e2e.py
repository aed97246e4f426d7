#!/usr/bin/env python3
"""Python diffusers 0.25.1 reference for the C# e2e benchmark (bench/DiffusersSharp.Bench, `e2e`), CPU only.

Runs, on a pipeline folder written by
    dotnet run -c Release --no-build --project bench/DiffusersSharp.Bench -- e2e-write --folder F --scenario a|b|c [--quick]
the same txt2img loop as the C# scenario (E2eConfigs.cs / E2eBench.cs / E2ePipeline.cs), timing each stage:

  a  SD 1.5:          20 steps PNDM (21 UNet calls), CFG 7.5 (UNet batch 2), AutoencoderKL decode     folder .../sd15
  b  SD-Turbo class:  1 step EulerAncestral (trailing), guidance 0 (no CFG), tiny VAE (F/taesd) decode  folder .../sd21
  c  LCM:             4 steps LCMScheduler, w = 8 embedded (timestep_cond, no CFG), tiny VAE decode      folder .../lcm

The loop is diffusers 0.25.1's StableDiffusionPipeline.__call__ (steps 4-8) written out: retrieve_timesteps,
prepare_latents (randn_tensor with torch.manual_seed(0) as generator, x init_noise_sigma), the guidance-scale embedding
for UNets with time_cond_proj_dim (LCM), scale_model_input / UNet / CFG / scheduler.step (generator passed when the
scheduler takes one), then vae.decode(latents / scaling_factor) and VaeImageProcessor.postprocess to PIL, then PNG.

What differs from the C# run (on purpose, or because of what this machine has):
  * NO TEXT ENCODER: transformers is not installed (not in Debian bookworm, PyPI unreachable). The prompt embeddings are
    random normal (seeded, separate generator) of shape (batch, 77, cross_attention_dim), cast to the UNet dtype;
    batch 2 ([negative, prompt]) when CFG is on. The "text" stage is therefore not measured; `total` here is
    steps + decode + png (the C# total also includes tokenize + text encoder).
  * Loading: each model is built with Model.from_config(F/<sub>/config.json), torch.nn.init made no-ops meanwhile (as
    diffusers' from_pretrained skips the random init when accelerate is installed; --random-init keeps it, as
    from_pretrained does without accelerate), and its F/<sub>/*.safetensors read by this script's own reader (8-byte
    header length, JSON header, raw data; read straight into the parameters, strict key and shape check), then
    .to(dtype). accelerate is not installed, so from_pretrained itself is not used.
  * STUB: the `safetensors` package is not installed; diffusers' modeling_utils does `import safetensors` at import
    time, so if the import fails a minimal stand-in module `safetensors` / `safetensors.torch` is put in sys.modules
    (its load_file is this script's reader; nothing else). diffusers then reports safetensors as unavailable, which is
    harmless here because this script never calls from_pretrained for the models.
  * torch 1.13 has no F.scaled_dot_product_attention, so diffusers 0.25.1 uses its classic AttnProcessor
    (baddbmm + softmax + bmm) rather than AttnProcessor2_0.
  * VAE decode dtype: by default as diffusers 0.25.1's StableDiffusionPipeline (and the C# SD pipeline): the VAE runs
    in the run's dtype, no upcast (diffusers upcasts force_upcast VAEs only for fp16, and only in the SDXL pipelines).
    --vae-upcast fp32 decodes an AutoencoderKL with force_upcast in float32 instead (the conversion is timed in decode).

Usage (Debian's Python and PyTorch, sources under /work/ref/py):
  PYTHONPATH=/work/ref/py/diffusers-0.25.1/src:/work/ref/py/huggingface_hub-0.20.3/src \\
    /usr/bin/python3 bench/python/diffusers_e2e.py --folder /tmp/diffusers-bench-e2e/sd15 --scenario a --dtype fp32
Options: --steps N (fewer steps, a probe), --threads N (default 2), --quick (64x64 image, for the --quick tiny
folders), --size S (image side, default 512), --png PATH, --vae-upcast diffusers|fp32.

Output: per stage wall and CPU (user+system of the whole process, time.process_time) seconds, then a line
  SUMMARY <scenario> <dtype> load W/C  text n/a  steps(n) W/C  decode W/C  png W  total W/C  peakRSS X GB (Yx weights)  [...]
"""

import argparse
import importlib.machinery
import inspect
import json
import os
import resource
import struct
import sys
import time
import types

import numpy as np
import torch

# ---------------------------------------------------------------------------------------------------------------
# safetensors: the real package if present, else a minimal reader, installed as a STUB module (see the docstring).
# ---------------------------------------------------------------------------------------------------------------

_ST_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool,
}


def read_safetensors_header(path):
    """(header dict without __metadata__, byte offset of the data section)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    return header, 8 + n


def _bytes_view(t):
    """A writable uint8 numpy view of a contiguous tensor's storage (any dtype, bf16 included)."""
    return t.detach().reshape(-1).view(torch.uint8).numpy()


def load_safetensors_into(module, path):
    """Reads a .safetensors file straight into module's parameters and buffers (strict: same keys and shapes).
    Returns the number of bytes read."""
    header, data_start = read_safetensors_header(path)
    state = module.state_dict()
    missing = sorted(set(state) - set(header))
    unexpected = sorted(set(header) - set(state))
    if missing or unexpected:
        raise RuntimeError(f"{path}: missing keys {missing[:10]} ({len(missing)}), unexpected keys {unexpected[:10]} ({len(unexpected)})")
    total = 0
    with open(path, "rb", buffering=0) as f:
        for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
            begin, end = info["data_offsets"]
            dtype = _ST_DTYPES[info["dtype"]]
            target = state[name]
            if list(target.shape) != list(info["shape"]):
                raise RuntimeError(f"{path}: {name} has shape {info['shape']} in the file, {list(target.shape)} in the model")
            f.seek(data_start + begin)
            if target.dtype == dtype and target.is_contiguous():
                view = _bytes_view(target)
                if view.nbytes != end - begin:
                    raise RuntimeError(f"{path}: {name}: {end - begin} bytes in the file, {view.nbytes} expected")
                got = f.readinto(memoryview(view))
            else:
                tmp = torch.empty(info["shape"], dtype=dtype)
                got = f.readinto(memoryview(_bytes_view(tmp)))
                with torch.no_grad():
                    target.copy_(tmp)
            if got != end - begin:
                raise RuntimeError(f"{path}: short read for {name}")
            total += got
    return total


def _stub_load_file(filename, device="cpu"):
    header, data_start = read_safetensors_header(filename)
    out = {}
    with open(filename, "rb") as f:
        for name, info in header.items():
            begin, end = info["data_offsets"]
            t = torch.empty(info["shape"], dtype=_ST_DTYPES[info["dtype"]])
            f.seek(data_start + begin)
            f.readinto(memoryview(_bytes_view(t)))
            out[name] = t.to(device)
    return out


try:
    import safetensors  # noqa: F401
    SAFETENSORS_NOTE = "safetensors (real package)"
except ImportError:
    # STUB: a stand-in for the missing safetensors package so that `import diffusers...` works.
    _st = types.ModuleType("safetensors")
    _st.__spec__ = importlib.machinery.ModuleSpec("safetensors", None)
    _st_torch = types.ModuleType("safetensors.torch")
    _st_torch.__spec__ = importlib.machinery.ModuleSpec("safetensors.torch", None)
    _st_torch.load_file = _stub_load_file

    def _no_save(*args, **kwargs):
        raise NotImplementedError("safetensors stub (bench/python/diffusers_e2e.py): saving is not supported")

    _st_torch.save_file = _no_save
    _st.torch = _st_torch
    sys.modules["safetensors"] = _st
    sys.modules["safetensors.torch"] = _st_torch
    SAFETENSORS_NOTE = "safetensors STUB (this script's reader)"

import diffusers  # noqa: E402
from diffusers import AutoencoderKL, AutoencoderTiny, UNet2DConditionModel  # noqa: E402
from diffusers.image_processor import VaeImageProcessor  # noqa: E402
from diffusers.utils.torch_utils import randn_tensor  # noqa: E402

# ---------------------------------------------------------------------------------------------------------------
# Scenarios (E2eConfigs.Scenarios)
# ---------------------------------------------------------------------------------------------------------------

SCENARIOS = {
    "a": dict(title="SD 1.5, 20 steps PNDM, CFG 7.5, AutoencoderKL", steps=20, guidance=7.5, taesd=False,
              scheduler="PNDMScheduler", folder="sd15"),
    "b": dict(title="SD-Turbo class, 1 step Euler-a trailing, guidance 0, TAESD", steps=1, guidance=0.0, taesd=True,
              scheduler="EulerAncestralDiscreteScheduler", folder="sd21"),
    "c": dict(title="LCM, 4 steps, w = 8 (embedded), TAESD", steps=4, guidance=8.0, taesd=True,
              scheduler="LCMScheduler", folder="lcm"),
}


class Clock:
    """Wall (perf_counter) and CPU (process user+system, all threads) seconds between laps."""

    def __init__(self):
        self.w, self.c = time.perf_counter(), time.process_time()

    def lap(self):
        w, c = time.perf_counter(), time.process_time()
        out = (w - self.w, c - self.c)
        self.w, self.c = w, c
        return out


def peak_rss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def blas_in_use():
    """The BLAS / OpenMP libraries mapped into this process (Debian's torch uses the system libblas.so.3)."""
    libs = set()
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                p = line.split()[-1]
                if any(k in p for k in ("blas", "lapack", "gomp", "dnnl", "mkl")):
                    libs.add(os.path.realpath(p))
    except OSError:
        pass
    return ", ".join(sorted(libs)) or "?"


def weights_file(sub):
    files = sorted(x for x in os.listdir(sub) if x.endswith(".safetensors"))
    if len(files) != 1:
        raise RuntimeError(f"{sub}: expected one .safetensors file, found {files}")
    return os.path.join(sub, files[0])


class _SkipInit:
    """Makes torch.nn.init's in-place initialisers no-ops while a model is built (every parameter and persistent buffer
    is then read from the file, strictly checked), as diffusers' from_pretrained skips the random init when accelerate
    is installed (low_cpu_mem_usage=True). --random-init turns this off (diffusers' path without accelerate)."""

    def __enter__(self):
        self.saved = {n: f for n, f in vars(torch.nn.init).items() if n.endswith("_") and not n.startswith("_") and callable(f)}
        for n in self.saved:
            setattr(torch.nn.init, n, lambda tensor, *a, **k: tensor)

    def __exit__(self, *exc):
        for n, f in self.saved.items():
            setattr(torch.nn.init, n, f)


def build(cls, sub, dtype, random_init=False):
    config = cls.load_config(sub)
    if random_init:
        model = cls.from_config(config)
    else:
        with _SkipInit():
            model = cls.from_config(config)
    load_safetensors_into(model, weights_file(sub))
    model = model.to(dtype).eval()
    model.requires_grad_(False)
    return model


def nbytes(model):
    return sum(p.numel() * p.element_size() for p in model.parameters())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--folder", required=True)
    ap.add_argument("--scenario", required=True, choices=sorted(SCENARIOS))
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--steps", type=int, default=None, help="override the scenario's steps (a shorter probe)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="64x64 image (the --quick tiny folders)")
    ap.add_argument("--size", type=int, default=None, help="image side (default 512, 64 with --quick)")
    ap.add_argument("--png", default=None)
    ap.add_argument("--random-init", action="store_true", help="build the models with random init before reading the weights")
    ap.add_argument("--vae-upcast", default="diffusers", choices=["diffusers", "fp32"])
    args = ap.parse_args()

    s = SCENARIOS[args.scenario]
    steps_wanted = args.steps or s["steps"]
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    size = args.size or (64 if args.quick else 512)
    png = args.png or os.path.join("/tmp", f"diffusers-bench-e2e-py-{args.scenario}-{args.dtype}.png")
    torch.set_num_threads(args.threads)
    rss_before = peak_rss_bytes()
    print(f"python diffusers {diffusers.__version__} ({os.path.dirname(diffusers.__file__)}), torch {torch.__version__}, "
          f"numpy {np.__version__}, python {sys.version.split()[0]}; {SAFETENSORS_NOTE}; threads {torch.get_num_threads()}")
    print(f"libraries: {blas_in_use()}")
    print(f"--- {args.scenario}  {s['title']}  [{args.dtype}]  {args.folder}  {size}x{size}, {steps_wanted} step(s)")

    with torch.inference_mode():
        clock = Clock()
        stages = []

        # load
        unet = build(UNet2DConditionModel, os.path.join(args.folder, "unet"), dtype, args.random_init)
        vae_sub = os.path.join(args.folder, "taesd" if s["taesd"] else "vae")
        vae = build(AutoencoderTiny if s["taesd"] else AutoencoderKL, vae_sub, dtype, args.random_init)
        sched_cfg_path = os.path.join(args.folder, "scheduler")
        sched_cls_name = json.load(open(os.path.join(sched_cfg_path, "scheduler_config.json")))["_class_name"]
        if sched_cls_name != s["scheduler"]:
            print(f"WARNING: the folder's scheduler is {sched_cls_name}, scenario {args.scenario} expects {s['scheduler']}")
        sched_cls = getattr(diffusers, sched_cls_name)
        scheduler = sched_cls.from_config(sched_cls.load_config(sched_cfg_path))
        weight_bytes = nbytes(unet) + nbytes(vae)
        stages.append(("load (build + read weights)",) + clock.lap())

        # "text": random prompt embeddings (no text encoder, see the docstring); not timed as a stage
        guidance = s["guidance"]
        time_cond_dim = unet.config.time_cond_proj_dim
        cfg = guidance > 1 and time_cond_dim is None          # StableDiffusionPipeline.do_classifier_free_guidance
        emb_gen = torch.Generator().manual_seed(1234)
        embeds = torch.randn((2 if cfg else 1, 77, unet.config.cross_attention_dim), generator=emb_gen).to(dtype)
        clock.lap()

        # 4. timesteps (retrieve_timesteps), 5. latents (prepare_latents), 6. extra step kwargs, 6.2 guidance embedding
        generator = torch.manual_seed(0)
        scheduler.set_timesteps(steps_wanted, device="cpu")
        timesteps = scheduler.timesteps
        vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)
        shape = (1, unet.config.in_channels, size // vae_scale_factor, size // vae_scale_factor)
        latents = randn_tensor(shape, generator=generator, device=torch.device("cpu"), dtype=embeds.dtype)
        latents = latents * scheduler.init_noise_sigma
        step_params = set(inspect.signature(scheduler.step).parameters)
        extra = {}
        if "eta" in step_params:
            extra["eta"] = 0.0
        if "generator" in step_params:
            extra["generator"] = generator
        timestep_cond = None
        if time_cond_dim is not None:
            w = torch.tensor(guidance - 1).repeat(1) * 1000.0      # get_guidance_scale_embedding
            half = time_cond_dim // 2
            e = torch.log(torch.tensor(10000.0)) / (half - 1)
            e = torch.exp(torch.arange(half, dtype=torch.float32) * -e)
            e = w.to(torch.float32)[:, None] * e[None, :]
            e = torch.cat([torch.sin(e), torch.cos(e)], dim=1)
            if time_cond_dim % 2 == 1:
                e = torch.nn.functional.pad(e, (0, 1))
            timestep_cond = e.to(dtype=latents.dtype)

        # 7. denoising loop: one lap per UNet call (PNDM: 21 for 20 steps, as in the C# steps(n))
        step_times = []
        for t in timesteps:
            x = torch.cat([latents] * 2) if cfg else latents
            x = scheduler.scale_model_input(x, t)
            noise_pred = unet(x, t, encoder_hidden_states=embeds, timestep_cond=timestep_cond, return_dict=False)[0]
            if cfg:
                uncond, text = noise_pred.chunk(2)
                noise_pred = uncond + guidance * (text - uncond)
            latents = scheduler.step(noise_pred, t, latents, **extra, return_dict=False)[0]
            step_times.append(clock.lap())
        for i, (w_, c_) in enumerate(step_times):
            stages.append((f"step {i + 1}", w_, c_))
        latents_finite = bool(torch.isfinite(latents).all())
        latents_stats = (float(latents.float().mean()), float(latents.float().std()))

        # 8. decode + postprocess (as the C# "decode" stage)
        dec_in = latents / vae.config.scaling_factor
        upcast = args.vae_upcast == "fp32" and isinstance(vae, AutoencoderKL) and vae.config.force_upcast and dtype != torch.float32
        if upcast:
            vae.to(torch.float32)
            dec_in = dec_in.float()
        decoded = vae.decode(dec_in, return_dict=False)[0]
        decoded_finite = bool(torch.isfinite(decoded).all())
        image = VaeImageProcessor(vae_scale_factor=vae_scale_factor).postprocess(decoded, output_type="pil")[0]
        vae_name = type(vae).__name__ + (" upcast fp32" if upcast else "")
        stages.append((f"decode ({vae_name})",) + clock.lap())

        image.save(png)
        stages.append(("png",) + clock.lap())

    for name, w_, c_ in stages:
        print(f"  {name:<32} {w_:8.3f} s wall  {c_:8.3f} s CPU")
    sw, sc = sum(x[0] for x in step_times), sum(x[1] for x in step_times)
    load, dec, pngs = stages[0], stages[-2], stages[-1]
    tw, tc = sw + dec[1] + pngs[1], sc + dec[2] + pngs[2]
    peak = peak_rss_bytes()
    arr = np.asarray(image)
    print(f"  sanity: latents finite {latents_finite} (mean {latents_stats[0]:.4f}, std {latents_stats[1]:.4f}); "
          f"decoded finite {decoded_finite}; image {image.width}x{image.height} mean {arr.mean():.2f} std {arr.std():.2f} -> {png}")
    print(f"  total (steps + decode + png; no text encoder) {tw:.3f} s wall, {tc:.3f} s CPU")
    print(f"  weights (unet + decoder) {weight_bytes / 1e9:.3f} GB ({args.dtype}); peak RSS {peak / 1e9:.3f} GB; "
          f"RSS after imports {rss_before / 1e9:.3f} GB; threads {torch.get_num_threads()}")
    print(f"SUMMARY {args.scenario} {args.dtype:<4} load {load[1]:7.2f}/{load[2]:7.2f}  text    n/a  "
          f"steps({len(step_times)}) {sw:7.2f}/{sc:7.2f}  decode {dec[1]:6.2f}/{dec[2]:6.2f}  png {pngs[1]:5.2f}  "
          f"total {tw:7.2f}/{tc:7.2f}  peakRSS {peak / 1e9:.2f} GB ({peak / weight_bytes:.2f}x unet+vae)  "
          f"[python diffusers {diffusers.__version__}, torch {torch.__version__}, threads {torch.get_num_threads()}]")
    return 0 if (latents_finite and decoded_finite) else 2


if __name__ == "__main__":
    sys.exit(main())
