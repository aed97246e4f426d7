"""Writes cases.json / cases.safetensors: diffusers 0.25.1's IPNDMScheduler, DDIMInverseScheduler and
CMStochasticIterativeScheduler (the real classes, run on Debian's torch 1.13.1), for the C# ports. See README.md.

Run from the repository root, in the environment ../diffusers-common/diffusers_prelude.py describes (keep that
folder next to this one):
  PYTHONPATH=/tmp/d/src:/tmp/hh/src /usr/bin/python3 tests/golden/schedulers2/make.py
"""
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.dirname(HERE)
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(GOLDEN, "diffusers-common"))
from diffusers_prelude import diffusers, seeded, write_expected  # noqa: E402
import diffusers.schedulers.scheduling_consistency_models as cm_module  # noqa: E402
import diffusers.schedulers.scheduling_dpmsolver_multistep_inverse as dpminv_module  # noqa: E402
from diffusers import (CMStochasticIterativeScheduler, DDIMInverseScheduler, DPMSolverMultistepInverseScheduler,  # noqa: E402
                       IPNDMScheduler)

CLASSES = {c.__name__: c for c in (IPNDMScheduler, DDIMInverseScheduler, DPMSolverMultistepInverseScheduler,
                                    CMStochasticIterativeScheduler)}


# every randn_tensor draw the steps of CMStochasticIterativeScheduler and DPMSolverMultistepInverseScheduler make, in order
DRAWS = []
_randn_tensor = cm_module.randn_tensor
assert dpminv_module.randn_tensor is _randn_tensor


def _recording_randn_tensor(*args, **kwargs):
    t = _randn_tensor(*args, **kwargs)
    DRAWS.append(t.clone())
    return t


cm_module.randn_tensor = dpminv_module.randn_tensor = _recording_randn_tensor

SHAPE = (1, 4, 8, 8)
INIT, E = seeded(SHAPE, 11), seeded(SHAPE, 12)
ORIGINAL, NOISE = seeded((3, 4, 8, 8), 14), seeded((3, 4, 8, 8), 15)
out, index = {}, {"diffusers": diffusers.__version__, "torch": torch.__version__, "numpy": np.__version__, "cases": {}}


def plain(v):
    """A config value as JSON (numpy arrays and tuples as lists, a non-finite float as .NET writes it: "-Infinity")."""
    if isinstance(v, float) and not np.isfinite(v):
        return "NaN" if np.isnan(v) else ("Infinity" if v > 0 else "-Infinity")
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, tuple):
        return list(v)
    return v


def case(name, cls, kwargs, ns, loop_n=None, custom=None, seed=None, add_noise=False):
    C = CLASSES[cls]
    s0 = C(**kwargs)
    p = name + "/"
    info = {"class": cls, "config": {"_class_name": cls, **{k: plain(v) for k, v in kwargs.items()}},
            "full_config": {k: plain(v) for k, v in dict(s0.config).items() if not k.startswith("_")},
            "order": C.order, "init_noise_sigma": float(s0.init_noise_sigma), "set_timesteps": {}}
    out[p + "init/timesteps"] = s0.timesteps.clone()
    if getattr(s0, "sigmas", None) is not None:
        out[p + "init/sigmas"] = s0.sigmas.clone()
    if hasattr(s0, "alphas_cumprod"):
        out[p + "betas"], out[p + "alphas_cumprod"] = s0.betas.clone(), s0.alphas_cumprod.clone()
    for n in ns:
        s = C.from_config(s0.config)
        s.set_timesteps(n)
        out[p + f"timesteps_N{n}"] = s.timesteps.clone()
        if getattr(s, "sigmas", None) is not None:
            out[p + f"sigmas_N{n}"] = s.sigmas.clone()
        if cls == "IPNDMScheduler":   # its betas / alphas are rebuilt by set_timesteps
            out[p + f"betas_N{n}"], out[p + f"alphas_N{n}"] = s.betas.clone(), s.alphas.clone()
        info["set_timesteps"][str(n)] = {"num_timesteps": len(s.timesteps), "timesteps_dtype": str(s.timesteps.dtype)}

    # the loop: x_T = init_randn * init_noise_sigma, model_output = 0.1 * scale_model_input(x, t) + E
    s = C.from_config(s0.config)
    if custom is not None:
        s.set_timesteps(timesteps=custom)
    else:
        s.set_timesteps(loop_n)
    info["loop"] = {"num_inference_steps": loop_n, "custom_timesteps": custom, "generator_seed": seed}
    g = torch.Generator("cpu").manual_seed(seed) if seed is not None else None
    DRAWS.clear()
    x = INIT * s.init_noise_sigma
    out[p + "loop/timesteps"], out[p + "loop/x_T"] = s.timesteps.clone(), x
    scaled_all, mo_all, prev_all, x0_all, draw_step = [], [], [], [], []
    for i, t in enumerate(s.timesteps):
        scaled = s.scale_model_input(x, t)
        mo = 0.1 * scaled + E
        kw = {"generator": g} if seed is not None else {}
        before = len(DRAWS)
        res = s.step(mo, t, x, **kw)
        draw_step += [i] * (len(DRAWS) - before)
        x = res.prev_sample
        scaled_all.append(scaled)
        mo_all.append(mo)
        prev_all.append(x)
        if getattr(res, "pred_original_sample", None) is not None:
            x0_all.append(res.pred_original_sample)
    out[p + "loop/scaled_model_input"] = torch.stack(scaled_all)
    out[p + "loop/model_output"] = torch.stack(mo_all)
    out[p + "loop/prev_sample"] = torch.stack(prev_all)
    if x0_all:
        out[p + "loop/pred_original_sample"] = torch.stack(x0_all)
    if DRAWS:
        out[p + "loop/noise"] = torch.stack(DRAWS)
        out[p + "loop/noise_step_index"] = torch.tensor(draw_step, dtype=torch.int64)
    info["loop"]["noise_draws"] = len(DRAWS)
    info["defines_add_noise"] = hasattr(s, "add_noise")
    if add_noise:
        ts = s.timesteps[[0, len(s.timesteps) // 2, -1]]
        out[p + "add_noise/timesteps"] = ts.clone()
        out[p + "add_noise/noisy"] = s.add_noise(ORIGINAL, NOISE, ts)
    index["cases"][name] = info


SD = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")

# IPNDM: its own sin² schedule (set_timesteps rebuilds betas and alphas), or trained_betas of any length
case("ipndm-default", "IPNDMScheduler", {}, (1, 2, 4, 10, 25, 50), loop_n=10)
case("ipndm-1000", "IPNDMScheduler", {"num_train_timesteps": 1000}, (1000,), loop_n=6)
case("ipndm-trained-betas", "IPNDMScheduler",
     {"trained_betas": [0.99, 0.9, 0.8, 0.7, 0.55, 0.4, 0.3, 0.2, 0.1, 0.05, 0.0]}, (4, 10), loop_n=4)

# DDIM inverse: ascending timesteps, "leading" or "trailing"; prediction types, clipping, zero-SNR
case("ddiminv-sd", "DDIMInverseScheduler",
     {**SD, "clip_sample": False, "set_alpha_to_one": False, "steps_offset": 1}, (4, 10, 25, 50), loop_n=10)
case("ddiminv-linear-v-trailing-clip", "DDIMInverseScheduler",
     {"prediction_type": "v_prediction", "timestep_spacing": "trailing", "clip_sample_range": 0.5}, (4, 10, 25, 50),
     loop_n=10)
case("ddiminv-cos-sample-zerosnr", "DDIMInverseScheduler",
     {"beta_schedule": "squaredcos_cap_v2", "prediction_type": "sample", "rescale_betas_zero_snr": True,
      "clip_sample": False, "set_alpha_to_one": False}, (4, 10, 25), loop_n=10)
# (with set_alpha_to_one true a "sample" prediction's first step divides by sqrt(1 - 1): NaN from step 0 on)
case("ddiminv-eps-trailing-alphaone", "DDIMInverseScheduler",
     {**SD, "timestep_spacing": "trailing", "clip_sample": False, "set_alpha_to_one": True}, (4, 10), loop_n=4)

# DPM-Solver inverse: ascending linspace / leading / trailing or Karras schedules, the solvers' options, SDE noise
case("dpminv-default", "DPMSolverMultistepInverseScheduler", {}, (4, 10, 25, 50, 1000), loop_n=10, add_noise=True)
case("dpminv-sd-karras", "DPMSolverMultistepInverseScheduler", {**SD, "use_karras_sigmas": True}, (4, 10, 25), loop_n=10,
     add_noise=True)
case("dpminv-dpmsolver-order3-leading", "DPMSolverMultistepInverseScheduler",
     {**SD, "algorithm_type": "dpmsolver", "solver_order": 3, "timestep_spacing": "leading", "steps_offset": 1},
     (4, 10, 25), loop_n=10, add_noise=True)
case("dpminv-v-trailing", "DPMSolverMultistepInverseScheduler",
     {**SD, "prediction_type": "v_prediction", "timestep_spacing": "trailing", "thresholding": True,
      "sample_max_value": 3.0}, (4, 10, 25), loop_n=10, add_noise=True)
# the SDE variants' noise term is sqrt(1 - exp(-2h)) (sde-dpmsolver++) or sqrt(exp(2h) - 1) (sde-dpmsolver), and h < 0
# on every step of the inverse, where the noise grows: NaN from the first step (the C# port refuses these configs)
index["sde_inverse"] = {}
for algorithm in ("sde-dpmsolver++", "sde-dpmsolver"):
    s = DPMSolverMultistepInverseScheduler(**SD, algorithm_type=algorithm)
    s.set_timesteps(10)
    x = s.step(0.1 * INIT + E, s.timesteps[0], INIT, generator=torch.Generator("cpu").manual_seed(5)).prev_sample
    assert not x.isfinite().any(), algorithm
    index["sde_inverse"][algorithm] = "step 0 of 10 (SD betas): every value NaN"
DRAWS.clear()
# "trailing" ends at the noisiest timestep, whose sigma is also the final one: h = 0 on the last step, which a heun
# second-order update divides by at 20 steps (lower_order_final applies below 15); euler_at_final makes it first-order
index["heun_trailing_inverse_finite"] = {}
for euler_at_final in (False, True):
    s = DPMSolverMultistepInverseScheduler(timestep_spacing="trailing", solver_type="heun", euler_at_final=euler_at_final)
    s.set_timesteps(20)
    x, finite = torch.linspace(-1, 1, 256).reshape(1, 4, 8, 8), []
    for t in s.timesteps:
        x = s.step(x * 0.1, t, x).prev_sample
        finite.append(bool(x.isfinite().all()))
    index["heun_trailing_inverse_finite"]["euler_at_final" if euler_at_final else "plain"] = finite
case("dpminv-cos-clipped-heun", "DPMSolverMultistepInverseScheduler",
     {"beta_schedule": "squaredcos_cap_v2", "lambda_min_clipped": -5.1, "solver_type": "heun", "lower_order_final": False,
      "solver_order": 3, "prediction_type": "sample"}, (4, 10, 25), loop_n=20, add_noise=True)

# Consistency models: Karras sigmas over num_train_timesteps; noise drawn in every step of a loop of several steps
case("cm-default", "CMStochasticIterativeScheduler", {}, (1, 2, 4, 10, 40), loop_n=4, seed=0, add_noise=True)
case("cm-imagenet64-custom", "CMStochasticIterativeScheduler", {}, (), custom=[22, 0], seed=1, add_noise=True)
case("cm-one-step", "CMStochasticIterativeScheduler", {}, (), loop_n=1, seed=2)
case("cm-variant", "CMStochasticIterativeScheduler",
     {"num_train_timesteps": 151, "sigma_min": 0.01, "sigma_max": 40.0, "sigma_data": 0.7, "s_noise": 0.5,
      "rho": 5.0, "clip_denoised": False}, (3, 10, 151), loop_n=5, seed=3, add_noise=True)
case("cm-variant-custom", "CMStochasticIterativeScheduler",
     {"num_train_timesteps": 151, "sigma_min": 0.01, "sigma_max": 40.0, "sigma_data": 0.7, "s_noise": 0.5,
      "rho": 5.0, "clip_denoised": False}, (), custom=[150, 100, 37, 5], seed=4)

out["inputs/init_randn"], out["inputs/E"] = INIT, E
out["inputs/add_noise_original"], out["inputs/add_noise_noise"] = ORIGINAL, NOISE
write_expected(HERE, "cases", {k: v.contiguous() for k, v in out.items()}, index, keys=False)
print(len(out), "tensors,", len(index["cases"]), "cases")
