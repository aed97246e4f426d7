"""Where diffusers 0.25.1's degenerate schedules first turn finite latents non-finite: the numbers behind the schedulers'
NonFiniteCause messages, held as constants by tests/DiffusersSharp.Tests/Pipelines/DenoisingLoopTests.cs and
Schedulers/NonFiniteCauseTests.cs (no file here is read by the tests; README.md sums up the output).

1. DPMSolverMultistep (DPM++ 2M, DPM++ 2M SDE), DEISMultistep and UniPCMultistep from tiny-sd's scheduler config
   (SD 1.x: scaled_linear 0.00085-0.012, "leading" spacing, steps_offset 1) at 1000 and 999 of 1000 steps, then DPM++ 2M
   heun on Karras sigmas (20 steps), "trailing" at 769 and "linspace" at 1000 steps, with
   ../scheduler-transcripts-vp/make.py's transcription (validated against golden B's three cases of these classes
   first: that script's validate()).
2. KDPM2AncestralDiscrete on the cosine schedule (squaredcos_cap_v2) at 4 and 5 "linspace" and 3 "trailing" steps, with
   ../scheduler-transcripts-sigma/transcription.py's (its cosine betas / alphas_cumprod checked bit for bit against
   golden B's ddpm-cos-sample-fixedlarge-clip-linspace first), and the step counts among 1-1000 where its interpolated
   sigma is NaN.

Each run uses golden B's recipe (sample = init_randn * init_noise_sigma; model_output = 0.1 * scaled + E) and prints
the schedule's head (timesteps, sigma bits), the first step whose sample is not finite, and the scalars of that step
that are not finite or divide by zero. numpy warnings are silenced: the NaN/Inf are the point.
Run with Debian's numpy: /usr/bin/python3 make.py
"""
import importlib.util
import os
import sys

import numpy as np

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "transcripts-common"))
sys.path.insert(0, os.path.join(HERE, "..", "scheduler-transcripts-sigma"))
spec = importlib.util.spec_from_file_location("vp", os.path.join(HERE, "..", "scheduler-transcripts-vp", "make.py"))
vp = importlib.util.module_from_spec(spec)
spec.loader.exec_module(vp)
import transcription as sig  # noqa: E402
from schedules import F, GoldenBInputs, golden_b  # noqa: E402

np.seterr(all="ignore")
G = golden_b()[0]
IN = GoldenBInputs(G)
rep = vp.validate(G)
for k, v in rep.items():
    print(f"validated against golden B {k}: max relative error {v:.3e}")

SD = {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "steps_offset": 1,
      "timestep_spacing": "leading"}


def bits(x):
    return hex(int(np.float32(x).view(np.int32)))


def lam(s, i):
    return s._ass(i)[2]


def trace_vp(label, cls, kw, n, tail=False):
    s = cls(**kw)
    s.set_timesteps(n)
    print(f"\n{label} at {n} steps: timesteps[:4] {s.timesteps[:4].tolist()} ... [-3:] {s.timesteps[-3:].tolist()}, "
          f"{len(s.timesteps)} values, max {s.timesteps.max()}")
    part = s.sigmas[-4:] if tail else s.sigmas[:4]
    print(f"  sigmas[{'-4:' if tail else ':4'}] {[float(v) for v in part]} bits {[bits(v) for v in part]}")
    rng = np.random.default_rng(0)
    sample = (IN.init_randn * F(s.init_noise_sigma)).astype(np.float32)
    for k, t in enumerate(s.timesteps):
        mo = (F(0.1) * s.scale_model_input(sample, t) + IN.E).astype(np.float32)
        prev = s.step(mo, t, sample, lambda shape: rng.standard_normal(shape).astype(np.float32))
        i = s._step_index - 1
        if not np.all(np.isfinite(prev)):
            bad = int((~np.isfinite(prev)).sum())
            nan = int(np.isnan(prev).sum())
            print(f"  first non-finite sample: loop step {k + 1} of {len(s.timesteps)} (timestep {t}, step_index {i}, "
                  f"order {getattr(s, 'this_order', None) or min(s.lower_order_nums, s.config['solver_order'])}): "
                  f"{bad} of {prev.size} values ({nan} NaN)")
            h = F(lam(s, i + 1) - lam(s, i))
            h0 = F(lam(s, i) - lam(s, i - 1))
            print(f"  h = lambda[{i + 1}] - lambda[{i}] = {float(h)!r}; h0 = lambda[{i}] - lambda[{i - 1}] = {float(h0)!r}")
            return s, k, i
        sample = prev
    print("  finite to the end")
    return s, None, None


def dpm_detail(s, i):
    h = F(lam(s, i + 1) - lam(s, i))
    h0 = F(lam(s, i) - lam(s, i - 1))
    r0 = F(h0 / h)
    print(f"  DPM second order: r0 = h0 / h = {float(r0)!r}, 1 / r0 = {float(F(F(1) / r0))!r} -> D1 = (m0 - m1) / r0")


def deis_detail(s, i):
    at, st = s._sigma_to_alpha_sigma_t(s.sigmas[i + 1])
    a0, s0 = s._sigma_to_alpha_sigma_t(s.sigmas[i])
    a1, s1 = s._sigma_to_alpha_sigma_t(s.sigmas[i - 1])
    rt, r0, r1 = F(st / at), F(s0 / a0), F(s1 / a1)
    den = F(vp.log32(r0) - vp.log32(r1))

    def ind_fn(t, b, c):
        return F(F(t * F(F(-vp.log32(c) + vp.log32(t)) - F(1))) / F(vp.log32(b) - vp.log32(c)))
    c1 = F(ind_fn(rt, r0, r1) - ind_fn(r0, r0, r1))
    c2 = F(ind_fn(rt, r1, r0) - ind_fn(r0, r1, r0))
    print(f"  DEIS second order: rho = sigma/alpha: rho_t {float(rt)!r} rho_s0 {float(r0)!r} rho_s1 {float(r1)!r}; "
          f"log(rho_s0) - log(rho_s1) = {float(den)!r}; ind_fn(rho_t, rho_s0, rho_s1) {float(ind_fn(rt, r0, r1))!r}, "
          f"ind_fn(rho_s0, rho_s0, rho_s1) {float(ind_fn(r0, r0, r1))!r}; coef1 {float(c1)!r} coef2 {float(c2)!r}")


def unipc_detail(s, i):
    h = F(lam(s, i + 1) - lam(s, i))
    rk = F(F(lam(s, i - 1) - lam(s, i)) / h)
    hc = F(lam(s, i) - lam(s, i - 1))
    print(f"  UniPC step: corrector (order 1) h_c = lambda[{i}] - lambda[{i - 1}] = {float(hc)!r}: rhos_c = 0.5 and "
          f"B(h) = 0, finite; predictor order {s.this_order}: h = {float(h)!r}, r1 = (lambda[{i - 1}] - lambda[{i}]) / h = "
          f"{float(rk)!r} -> D1 = (m1 - m0) / r1")


VP = [
    ("DPM++ 2M (DPMSolverMultistep dpmsolver++ order 2)", vp.DPMSolverMultistep,
     {**SD, "algorithm_type": "dpmsolver++", "solver_order": 2}, dpm_detail),
    ("DPM++ 2M SDE (DPMSolverMultistep sde-dpmsolver++ order 2)", vp.DPMSolverMultistep,
     {**SD, "algorithm_type": "sde-dpmsolver++", "solver_order": 2}, dpm_detail),
    ("DEIS (DEISMultistep, tiny-sd config: order 2 by default)", vp.DEISMultistep, dict(SD), deis_detail),
    ("UniPC (UniPCMultistep bh2 order 2)", vp.UniPCMultistep, dict(SD), unipc_detail),
]
for label, cls, kw, detail in VP:
    for n in (1000, 999):
        s, k, i = trace_vp(label, cls, kw, n)
        if k is not None:
            detail(s, i)

# the same division elsewhere: Karras sigmas repeat the last sigma as the final one (h = 0 on the last step, which a
# heun second-order or a third-order update divides by from 15 steps on); "trailing" at 769 steps overshoots to -1
# next to timestep 0 (both sigma(0), as the final sigma); "linspace" at 1000 rounds timestep 500 twice
KARRAS_HEUN = {**SD, "timestep_spacing": "linspace", "solver_type": "heun", "use_karras_sigmas": True}
for label, cls, kw, n, tail in [
        ("DPM++ 2M heun, Karras, linspace", vp.DPMSolverMultistep, KARRAS_HEUN, 20, True),
        ("DPM++ 2M midpoint, Karras, linspace (healthy: the last step's h = 0 is harmless)", vp.DPMSolverMultistep,
         {**KARRAS_HEUN, "solver_type": "midpoint"}, 20, True),
        ("DPM++ 2M, trailing", vp.DPMSolverMultistep, {**SD, "timestep_spacing": "trailing"}, 769, True),
        ("DPM++ 2M, linspace", vp.DPMSolverMultistep, {**SD, "timestep_spacing": "linspace"}, 1000, False)]:
    s, k, i = trace_vp(label, cls, kw, n, tail)
    if k is not None:
        dpm_detail(s, i)
        if label.startswith("DPM++ 2M, linspace"):
            print(f"  timesteps[{i - 1}:{i + 2}] {s.timesteps[i - 1:i + 2].tolist()} sigma bits "
                  f"{[bits(v) for v in s.sigmas[i - 1:i + 2]]}")
        if "heun" in label:
            h = F(lam(s, i + 1) - lam(s, i))
            print(f"  heun term (exp(-h) - 1) / h = {float(F(F(vp.exp32(-h) - F(1)) / h))!r}")

# ---------------------------------------------------------------- KDPM2 ancestral on the cosine schedule
cos = sig.KDPM2AncestralDiscreteScheduler({**sig.DEFAULTS["KDPM2AncestralDiscreteScheduler"], "beta_schedule": "squaredcos_cap_v2"})
gb = "ddpm-cos-sample-fixedlarge-clip-linspace"
assert np.array_equal(cos.betas, G[f"{gb}/betas"]) and np.array_equal(cos.alphas_cumprod, G[f"{gb}/alphas_cumprod"])
print(f"\ncosine betas and alphas_cumprod equal golden B {gb} bit for bit")
for spacing, n in (("linspace", 4), ("trailing", 3), ("linspace", 5)):
    cfg = {**sig.DEFAULTS["KDPM2AncestralDiscreteScheduler"], "beta_schedule": "squaredcos_cap_v2", "timestep_spacing": spacing}
    s = sig.KDPM2AncestralDiscreteScheduler(cfg)
    s.set_timesteps(n)
    print(f"\nKDPM2 ancestral cosine {spacing} {n}: timesteps {s.timesteps.tolist()}")
    print(f"  sigmas (doubled) {[float(v) for v in s.sigmas]}")
    print(f"  sigmas bits {[bits(v) for v in s.sigmas]}")
    print(f"  sigmas_up {[float(v) for v in s.sigmas_up]} bits {[bits(v) for v in s.sigmas_up]}")
    print(f"  sigmas_down {[float(v) for v in s.sigmas_down]}")
    print(f"  sigmas_down bits {[bits(v) for v in s.sigmas_down]}")
    print(f"  sigmas_interpol {[float(v) for v in s.sigmas_interpol]}")
    draws = iter(G["eulera-sd-linspace/loop/noise"])
    sample = (IN.init_randn * F(s.init_noise_sigma)).astype(np.float32)
    for k, t in enumerate(s.timesteps):
        mo = (F(0.1) * s.scale_model_input(sample, t) + IN.E).astype(np.float32)
        prev = s.step(mo, t, sample, lambda: next(draws))
        if not np.all(np.isfinite(prev)):
            print(f"  first non-finite sample: call {k + 1} of {len(s.timesteps)} (timestep {t!r}, "
                  f"{'first' if s.sample is not None else 'second'} half), {int((~np.isfinite(prev)).sum())} values")
            break
        sample = prev

# which step counts give a NaN interpolated sigma on the cosine schedule. exp(lerp(log sigma, log sigma_down, 0.5)) is NaN
# exactly where sigma_down is NaN (sigma_up above sigma_to) or 0 (equal: log 0 = -inf, and torch.lerp at weight 0.5 is
# end - (end - start) * 0.5 = -inf + inf), so only set_timesteps' base tables are computed here (as the transcription
# does), for the entries whose interpolated sigma the steps read (diffusers zeroes the last two)
for spacing in ("linspace", "leading", "trailing"):
    above, equal = [], []
    cfg = {**sig.DEFAULTS["KDPM2AncestralDiscreteScheduler"], "beta_schedule": "squaredcos_cap_v2", "timestep_spacing": spacing}
    s = sig.KDPM2AncestralDiscreteScheduler(cfg)
    for n in range(1, 1001):
        _, sigmas = s._base_schedule(n)
        sn = np.roll(sigmas, -1)
        sn[-1] = 0.0
        up = np.sqrt((sn * sn * (sigmas * sigmas - sn * sn)) / (sigmas * sigmas))
        down = np.sqrt(sn * sn - up * up)[:-2]
        if np.isnan(down).any():
            above.append(n)
        elif (down == 0).any():
            equal.append(n)
    print(f"cosine {spacing}, 1-1000 steps: NaN interpolated sigma with sigma_up above sigma_to at {above}, "
          f"equal to it at {equal}")
