"""Writes cases.json / cases.safetensors: the img2img / inpaint flow between diffusers 0.25.1's pipelines and every
scheduler class DiffusersSharp registers, computed with the numpy float32 transcriptions of diffusers 0.25.1 in
../scheduler-transcripts-sigma/transcription.py and ../scheduler-transcripts-vp/make.py (imported as they are), on
../transcripts-common/schedules.py.

The flow (pipelines/stable_diffusion/pipeline_stable_diffusion_img2img.py and pipeline_stable_diffusion_inpaint.py):
  set_timesteps(N); init_timestep = min(int(N * strength), N); t_start = max(N - init_timestep, 0);
  timesteps = scheduler.timesteps[t_start * scheduler.order:]
  img2img:  latents = add_noise(image_latents, noise, timesteps[:1].repeat(1)); loop
  inpaint (4-channel UNet): latents = noise * init_noise_sigma at strength 1, else add_noise as above; after every
            step, init_latents_proper = add_noise(image_latents, noise, tensor([timesteps[i + 1]])) (not after the last),
            latents = (1 - mask) * init_latents_proper + mask * latents
  lcm-strength: LCMScheduler.set_timesteps(N, strength=s) (LatentConsistencyModelImg2ImgPipeline), no slicing.
Fake model output: 0.1 * scale_model_input(latents, t) + E (golden B's recipe).

Before writing, the harness is validated: the transcriptions' own validate() on golden B (their classes' cases), and
the PNDM / DDIM img2img and inpaint runs of golden D / E (timesteps, initial latents, every latents_after_step from the
recorded UNet output). Run: /usr/bin/python3 make.py (deterministic; --validate only validates).
"""
import importlib.util
import json
import os
import sys

import numpy as np

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "..")
SIGMA_DIR = os.path.join(GOLDEN, "scheduler-transcripts-sigma")
VP_DIR = os.path.join(GOLDEN, "scheduler-transcripts-vp")
sys.path.insert(0, SIGMA_DIR)
sys.path.insert(0, os.path.join(GOLDEN, "transcripts-common"))
from schedules import F, GoldenBInputs, f32, golden_b, rel_err  # noqa: E402
from torchlike import read_safetensors, write_safetensors  # noqa: E402


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


ts = _load("transcription", os.path.join(SIGMA_DIR, "transcription.py"))
smake = _load("sigma_make", os.path.join(SIGMA_DIR, "make.py"))
vp = _load("vp_make", os.path.join(VP_DIR, "make.py"))

_IN = GoldenBInputs(golden_b()[0])
IMAGE_LATENTS = _IN.original[:1].copy()   # torch seeded([3,4,8,8], 14)[:1]
NOISE = _IN.noise[:1].copy()              # torch seeded([3,4,8,8], 15)[:1]
E = _IN.E.copy()                          # torch seeded([1,4,8,8], 12)
MASK = np.zeros((1, 1, 8, 8), f32)
MASK[:, :, 2:6, 1:5] = 1.0
MASK[:, :, 7, :] = 1.0

ORDER2 = {"HeunDiscreteScheduler", "KDPM2DiscreteScheduler", "KDPM2AncestralDiscreteScheduler"}
COUNTER = ORDER2  # index_for_timestep with _index_counter (add_noise)


class Sched:
    """One scheduler of either transcription behind one interface."""

    def __init__(self, cls, kwargs):
        self.cls = cls
        if cls in vp.CLASSES:
            self.s = vp.CLASSES[cls](**kwargs)
            self.config = {k: vp.to_json_value(v) for k, v in self.s.effective_config().items()}
            self.vp = True
        else:
            self.config = smake.full_config(cls, kwargs)
            self.s = ts.CLASSES[cls](self.config)
            self.vp = False
        self.order = 2 if cls in ORDER2 else 1
        self.counter = {}

    def set_timesteps(self, n, strength=None):
        if strength is None:
            self.s.set_timesteps(n)
        else:
            self.s.set_timesteps(n, strength=strength)  # LCMScheduler's strength (lcm-strength)
        self.counter = {}

    @property
    def timesteps(self):
        return self.s.timesteps

    @property
    def init_noise_sigma(self):
        return F(self.s.init_noise_sigma)

    def scale_model_input(self, x, t):
        return self.s.scale_model_input(x, t)

    def step(self, mo, t, x, draw):
        if self.vp:
            out = self.s.step(mo, t, x, lambda shape: draw())
        else:
            out = self.s.step(mo, t, x, draw)
        key = float(t)
        self.counter[key] = self.counter.get(key, 0) + 1
        return out

    def add_noise(self, original, noise, timesteps):
        if self.cls not in COUNTER:
            return self.s.add_noise(original, noise, timesteps)
        idx = []
        for t in timesteps:
            m = np.nonzero(self.s.timesteps == t)[0]
            pos = (1 if len(m) > 1 else 0) if not self.counter else self.counter.get(float(t), 0)
            idx.append(int(m[pos]))
        sigma = self.s.sigmas[idx].reshape(-1, 1, 1, 1)
        return original + noise * sigma


def get_timesteps(s, n, strength):
    init_timestep = min(int(n * strength), n)
    t_start = max(n - init_timestep, 0)
    return s.timesteps[t_start * s.order:].copy(), t_start


def run_case(name, cls, kwargs, mode, n, strength, noise_seed):
    s = Sched(cls, kwargs)
    T = {}
    if mode == "lcm-strength":
        s.set_timesteps(n, strength)
        steps, t_start = s.timesteps.copy(), 0
    else:
        s.set_timesteps(n)
        steps, t_start = get_timesteps(s, n, strength)
        assert len(steps) > 0 and (mode != "inpaint" or min(int(n * strength), n) >= 1), name
    if mode == "denoising-start":  # SDXL img2img / inpaint get_timesteps with denoising_start (strength unused)
        cutoff = int(round(s.s.cfg["num_train_timesteps"] - (strength * s.s.cfg["num_train_timesteps"]))
                     if not s.vp else round(s.s.config["num_train_timesteps"] - strength * s.s.config["num_train_timesteps"]))
        k = int((s.timesteps < cutoff).sum())
        if s.order == 2 and k % 2 == 0:
            k += 1
        steps, t_start = s.timesteps[-k:].copy(), len(s.timesteps) - k
    T["timesteps_full"] = s.timesteps.copy()
    T["timesteps"] = steps
    rng = np.random.RandomState(noise_seed)
    draws, draw_idx, cur = [], [], [0]

    def draw():
        z = rng.standard_normal((1, 4, 8, 8)).astype(f32)
        draws.append(z)
        draw_idx.append(cur[0])
        return z

    latent_timestep = steps[:1].copy()
    if mode == "inpaint" and strength == 1.0:
        x = (NOISE * s.init_noise_sigma).astype(f32)
    elif mode == "denoising-start":  # add_noise = False: the base pipeline's latents go on as they are
        x = IMAGE_LATENTS.copy()
    else:
        x = s.add_noise(IMAGE_LATENTS, NOISE, latent_timestep).astype(f32)
    T["start_latents"] = x
    prev_l, blend_l = [], []
    for i, t in enumerate(list(steps)):
        cur[0] = i
        scaled = s.scale_model_input(x, t)
        mo = (F(0.1) * scaled + E).astype(f32)
        x = s.step(mo, t, x, draw)
        assert x.dtype == f32, (name, i, x.dtype)
        prev_l.append(x)
        if mode == "inpaint":
            proper = IMAGE_LATENTS
            if i < len(steps) - 1:
                proper = s.add_noise(IMAGE_LATENTS, NOISE, steps[i + 1:i + 2])
            x = ((F(1) - MASK) * proper + MASK * x).astype(f32)
            blend_l.append(x)
    if blend_l:  # inpaint: the blend after each step (the masked region is that step's prev_sample)
        T["blended"] = np.stack(blend_l)
    else:
        T["prev_sample"] = np.stack(prev_l)
    if draws:
        T["noise"] = np.stack(draws)
        T["noise_step_index"] = np.array(draw_idx, dtype=np.int64)
    for k, v in T.items():
        assert np.all(np.isfinite(v)), (name, k)
    for k in ("timesteps_full", "timesteps"):  # diffusers' dtype: float32, float64 (numpy-made) or int64
        assert T[k].dtype in (np.float32, np.float64, np.int64), (name, k, T[k].dtype)
    meta = {"class": cls, "config": s.config, "constructor_kwargs": kwargs, "mode": mode,
            "num_inference_steps": n, "strength": strength, "order": s.order, "t_start": t_start,
            "init_noise_sigma": float(s.init_noise_sigma), "noise_draws": len(draws), "loop_steps": len(prev_l),
            "noise_from": f"numpy RandomState({noise_seed}).standard_normal((1,4,8,8)).astype(float32), one per draw"
            if draws else None}
    return T, meta


# ---------------------------------------------------------------- validation against golden D / E (PNDM, DDIM)

def validate_pipelines():
    worst = 0.0
    for fname, inpaint in (("tiny-sd-img2img-expected", False), ("tiny-sd-inpaint-expected", True)):
        meta = json.load(open(os.path.join(GOLDEN, fname + ".json")))
        t = read_safetensors(os.path.join(GOLDEN, fname + ".safetensors"))
        for run, r in meta["pipeline_runs"].items():
            cfg = {k: v for k, v in r["scheduler_config"].items() if not k.startswith("_")}
            cls = r["scheduler_class"]
            cfg = {k: v for k, v in cfg.items() if k in ts.DEFAULTS[cls]}
            s = Sched(cls, cfg)
            n, strength = r["call"]["num_inference_steps"], r["call"]["strength"]
            s.set_timesteps(n)
            steps, _ = get_timesteps(s, n, strength)
            p = f"pipeline/{run}/"
            assert np.array_equal(steps, t[p + "timesteps"].astype(steps.dtype)), (run, steps, t[p + "timesteps"])
            assert np.array_equal(s.timesteps, t[p + "timesteps_full"].astype(steps.dtype)), run
            noise = t[p + "noise"]
            if inpaint and strength == 1.0:
                x = (noise * s.init_noise_sigma).astype(f32)
            else:
                x = s.add_noise(t[p + "image_latents"], noise, steps[:1])
            errs = [rel_err(x, t[p + "initial_latents"])]
            uo, after = t[p + "unet_output"], t[p + "latents_after_step"]
            gs = F(r["call"]["guidance_scale"])
            for i, tt in enumerate(steps):
                un, tx = uo[i][:1], uo[i][1:]
                pred = un + gs * (tx - un)
                x = s.step(pred.astype(f32), tt, x, None)
                # feed diffusers' own latents on, so that a UNet difference cannot accumulate
                errs.append(rel_err(x, after[i]))
                x = after[i]
            e = max(errs)
            worst = max(worst, e)
            print(f"golden {fname}:{run:28s} {cls:15s} timesteps {list(steps)} exact; latents max rel err {e:.2e}")
            assert e < 1e-5, (run, errs)
    return worst


# ---------------------------------------------------------------- cases

SD = {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012}
SDO = {**SD, "steps_offset": 1}
CLASSES = [
    ("ddpm", "DDPMScheduler", {**SDO, "clip_sample": False}),
    ("ddim", "DDIMScheduler", {**SDO, "clip_sample": False, "set_alpha_to_one": False}),
    ("ddim-trailing-zsnr-v", "DDIMScheduler", {**SD, "clip_sample": False, "timestep_spacing": "trailing",
                                               "rescale_betas_zero_snr": True, "prediction_type": "v_prediction"}),
    ("pndm", "PNDMScheduler", {**SDO, "skip_prk_steps": True}),
    ("pndm-prk", "PNDMScheduler", {**SDO}),
    ("lms", "LMSDiscreteScheduler", SDO),
    ("euler", "EulerDiscreteScheduler", SDO),
    ("euler-leading", "EulerDiscreteScheduler", {**SDO, "timestep_spacing": "leading"}),
    ("eulera", "EulerAncestralDiscreteScheduler", SDO),
    ("eulera-trailing", "EulerAncestralDiscreteScheduler", {**SD, "timestep_spacing": "trailing"}),
    ("heun", "HeunDiscreteScheduler", SDO),
    ("heun-karras", "HeunDiscreteScheduler", {**SDO, "use_karras_sigmas": True}),
    ("kdpm2", "KDPM2DiscreteScheduler", SDO),
    ("kdpm2a", "KDPM2AncestralDiscreteScheduler", SDO),
    ("kdpm2-karras", "KDPM2DiscreteScheduler", {**SDO, "use_karras_sigmas": True}),
    ("lms-karras", "LMSDiscreteScheduler", {**SDO, "use_karras_sigmas": True}),
    ("euler-karras", "EulerDiscreteScheduler", {**SDO, "use_karras_sigmas": True}),
    ("dpmpp2m", "DPMSolverMultistepScheduler", SDO),
    ("dpmpp2m-karras", "DPMSolverMultistepScheduler", {**SDO, "use_karras_sigmas": True}),
    ("dpmpp2m-sde", "DPMSolverMultistepScheduler", {**SDO, "algorithm_type": "sde-dpmsolver++"}),
    ("dpmpp2s", "DPMSolverSinglestepScheduler", SD),
    ("dpmpp3s", "DPMSolverSinglestepScheduler", {**SD, "solver_order": 3}),
    ("deis", "DEISMultistepScheduler", SDO),
    ("deis3", "DEISMultistepScheduler", {**SDO, "solver_order": 3}),
    ("unipc", "UniPCMultistepScheduler", SDO),
    ("unipc-bh1-o3-dc7", "UniPCMultistepScheduler", {**SDO, "solver_type": "bh1", "solver_order": 3, "disable_corrector": [7]}),
    ("lcm", "LCMScheduler", {**SD}),
]
RUNS = [("img2img", 10, 0.3), ("img2img", 10, 0.6), ("img2img", 10, 0.75), ("img2img", 10, 1.0),
        ("img2img", 7, 0.5), ("img2img", 2, 0.5), ("inpaint", 10, 0.6), ("inpaint", 10, 1.0), ("inpaint", 7, 0.75)]


def all_cases():
    seed = 100
    for tag, cls, kw in CLASSES:
        for mode, n, strength in RUNS:
            seed += 1
            if tag == "pndm-prk" and n < 4:
                continue  # diffusers' PNDM set_timesteps raises (a numpy broadcast error) below pndm_order = 4 steps with PRK
            yield f"{tag}-{mode}-n{n}-s{strength}", cls, kw, mode, n, strength, seed
    for n, strength in ((4, 0.5), (4, 0.75), (10, 0.6)):
        seed += 1
        yield f"lcm-strength-n{n}-s{strength}", "LCMScheduler", SD, "lcm-strength", n, strength, seed
    # SDXL's denoising_start (the refiner's half of an ensemble of experts); "strength" holds denoising_start
    for tag, cls, kw in CLASSES:
        for n, d in ((10, 0.8), (25, 0.7)):
            seed += 1
            yield f"{tag}-denoising-start-n{n}-d{d}", cls, kw, "denoising-start", n, d, seed


def main():
    print("golden B, sigma transcription:", smake.validate())
    print("golden B, vp transcription:", vp.validate(golden_b()[0]))
    w = validate_pipelines()
    if "--validate" in sys.argv:
        return
    tensors, cases = {}, {}
    for name, cls, kw, mode, n, strength, seed in all_cases():
        T, meta = run_case(name, cls, dict(kw), mode, n, strength, seed)
        meta["tensors"] = {f"{name}/{k}": {"dtype": str(v.dtype), "shape": list(v.shape)} for k, v in sorted(T.items())}
        cases[name] = meta
        for k, v in T.items():
            tensors[f"{name}/{k}"] = v
    tensors["inputs/image_latents"] = IMAGE_LATENTS
    tensors["inputs/noise"] = NOISE
    tensors["inputs/E"] = E
    tensors["inputs/mask"] = MASK
    out = {"source": "numpy float32 transcription of diffusers 0.25.1 (../scheduler-transcripts-sigma, "
                     "../scheduler-transcripts-vp), the img2img / inpaint pipelines' scheduler use; see README.md",
           "validated_against_golden_DE_max_rel_err": w,
           "inputs": {"inputs/image_latents": "golden B euler-sd-linspace/add_noise/original[:1] (torch seeded 14)",
                      "inputs/noise": "golden B euler-sd-linspace/add_noise/noise[:1] (torch seeded 15)",
                      "inputs/E": "golden B loop/E (torch seeded 12)",
                      "inputs/mask": "fixed 0/1 [1,1,8,8]: 1 (repaint) at [2:6, 1:5] and row 7"},
           "cases": cases}
    with open(os.path.join(HERE, "cases.json"), "w") as fh:
        json.dump(out, fh, indent=1)
        fh.write("\n")
    write_safetensors(os.path.join(HERE, "cases.safetensors"), tensors, {"format": "pt"}, widest_first=True)
    print(len(cases), "cases written")


if __name__ == "__main__":
    main()
