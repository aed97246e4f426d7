#!/usr/bin/python3
"""Scheduler transcripts for diffusers 0.25.1's VP exponential-integrator solvers, made without torch.

A numpy float32 transcription of diffusers 0.25.1's DPMSolverMultistepScheduler, DPMSolverSinglestepScheduler,
DEISMultistepScheduler and UniPCMultistepScheduler (src/diffusers/schedulers/scheduling_*.py at tag v0.25.1),
driven through the recipe of golden/schedulers.json (README section B), written in that file's format.

Dtypes follow diffusers operation by operation: torch float32 tensors (0-dim coefficients included) are numpy
float32 values, numpy float64 stays float64, Python floats combined with a float32 tensor are rounded to float32
first (as torch does with a wrapped number). torch's exp/log/expm1 of a float32 value are numpy's float32 ones
here (a few ulp apart at most, far inside the tests' 1e-5 relative tolerance). What the scheduler transcriptions share
(torch's float32 linspace and cumprod, the betas, _sigma_to_t, Karras, thresholding, golden B) is
../transcripts-common/schedules.py.

The harness is validated first against the golden B cases of these classes (dpmpp2m-sd, dpmpp2m-sd-karras,
unipc-bh2-order2-sd): running this script prints, and fails on, the errors against them.

Run from anywhere: /usr/bin/python3 make.py (numpy only; deterministic; writes cases.json and cases.safetensors
next to this file).
"""
import json
import math
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_JSON = os.path.join(HERE, "cases.json")
OUT_ST = os.path.join(HERE, "cases.safetensors")
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(HERE, "..", "transcripts-common"))
from schedules import (F, GoldenBInputs, cumprod32, diffusers_config, golden_b, karras, make_betas,  # noqa: E402
                       rel_err, sigma_to_t, threshold_sample, train_sigmas)
from torchlike import write_safetensors  # noqa: E402


# ---------------------------------------------------------------- torch float32 scalar kernels (numpy's)

def torch_pow_int(x, k):
    """torch.pow(float32 tensor, small int): 1, x, x*x, x*x*x (torch's specialised kernels)."""
    if k == 0:
        return np.ones_like(x)
    out = x
    for _ in range(k - 1):
        out = out * x
    return out


def log32(x):
    return F(np.log(F(x)))


def exp32(x):
    return F(np.exp(F(x)))


def sqrt32(x):
    return F(np.sqrt(F(x)))


# ---------------------------------------------------------------- the shared VP machinery

class VpBase:
    defaults = {}
    name = ""

    def __init__(self, **kwargs):
        cfg = dict(self.defaults)
        for k in kwargs:
            if k not in cfg:
                raise TypeError(f"{self.name} has no config key {k}")
        cfg.update(kwargs)
        self.config = cfg
        self.passed = set(kwargs)
        self.betas = make_betas(cfg)
        self.alphas = F(1.0) - self.betas
        self.alphas_cumprod = cumprod32(self.alphas)
        self.alpha_t = np.sqrt(self.alphas_cumprod)
        self.sigma_t = np.sqrt(F(1) - self.alphas_cumprod)
        self.lambda_t = np.log(self.alpha_t) - np.log(self.sigma_t)
        self.init_noise_sigma = 1.0
        self.num_inference_steps = None
        self._step_index = None

    def effective_config(self):
        return diffusers_config(self.defaults, self.config, self.passed, self.name)

    # --- helpers shared by the four set_timesteps
    @staticmethod
    def _convert_to_lu(in_lambdas, n):
        lambda_min = in_lambdas[-1].item()
        lambda_max = in_lambdas[0].item()
        rho = 1.0
        ramp = np.linspace(0, 1, n)
        min_inv_rho = lambda_min ** (1 / rho)
        max_inv_rho = lambda_max ** (1 / rho)
        return (max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho

    def _sigmas_from_timesteps(self, timesteps, n, use_karras, lu=False):
        """The common tail of set_timesteps: (timesteps float64/int64 numpy, sigmas float32 numpy)."""
        sigmas = train_sigmas(self.alphas_cumprod)  # float32 torch, then np.array
        log_sigmas = np.log(sigmas)
        if use_karras:
            sigmas = np.flip(sigmas).copy()
            sigmas = karras(sigmas, n)
            timesteps = np.array([sigma_to_t(s, log_sigmas) for s in sigmas]).round()
            sigmas = np.concatenate([sigmas, sigmas[-1:]]).astype(np.float32)
        elif lu:
            lambdas = np.flip(log_sigmas.copy())
            lambdas = self._convert_to_lu(lambdas, n)
            sigmas = np.exp(lambdas)
            timesteps = np.array([sigma_to_t(s, log_sigmas) for s in sigmas]).round()
            sigmas = np.concatenate([sigmas, sigmas[-1:]]).astype(np.float32)
        else:
            sigmas = np.interp(timesteps, np.arange(0, len(sigmas)), sigmas)
            ac0 = self.alphas_cumprod[0]
            sigma_last = sqrt32((F(1) - ac0) / ac0)  # torch 0-dim float32
            sigmas = np.concatenate([sigmas, [sigma_last]]).astype(np.float32)
        return timesteps, sigmas

    def _spaced(self, spacing, n, last_timestep, steps_offset):
        T = self.config["num_train_timesteps"]
        if spacing == "linspace":
            return np.linspace(0, last_timestep - 1, n + 1).round()[::-1][:-1].copy().astype(np.int64)
        if spacing == "leading":
            step_ratio = last_timestep // (n + 1)
            ts = (np.arange(0, n + 1) * step_ratio).round()[::-1][:-1].copy().astype(np.int64)
            return ts + steps_offset
        if spacing == "trailing":
            step_ratio = T / n
            ts = np.arange(last_timestep, 0, -step_ratio).round().copy().astype(np.int64)
            return ts - 1
        raise ValueError(spacing)

    def _clipped_idx(self):
        """torch.searchsorted(torch.flip(lambda_t), lambda_min_clipped) (left side)."""
        lam = self.config.get("lambda_min_clipped", -math.inf)
        flipped = self.lambda_t[::-1].astype(np.float64)
        # numpy's float32 log may differ from torch's in the last bit: make sure no lambda is that close to the cut
        if math.isfinite(lam):
            assert np.abs(flipped - lam).min() > 1e-4, "a lambda_t is within rounding of lambda_min_clipped"
        return int(np.searchsorted(flipped, lam, side="left"))

    @staticmethod
    def _sigma_to_alpha_sigma_t(sigma):
        sigma = F(sigma)
        alpha_t = F(F(1) / sqrt32(F(sigma * sigma) + F(1)))
        sigma_t = F(sigma * alpha_t)
        return alpha_t, sigma_t

    def _ass(self, idx):
        a, s = self._sigma_to_alpha_sigma_t(self.sigmas[idx])
        return a, s, F(log32(a) - log32(s))

    def _init_step_index(self, timestep):
        cands = np.nonzero(self.timesteps == timestep)[0]
        if len(cands) == 0:
            self._step_index = len(self.timesteps) - 1
        elif len(cands) > 1:
            self._step_index = int(cands[1])
        else:
            self._step_index = int(cands[0])

    def scale_model_input(self, sample, t):
        return sample

    def add_noise(self, original, noise, timesteps):
        sigmas = self.sigmas.astype(np.float32)
        idx = []
        for t in timesteps:
            cands = np.nonzero(self.timesteps == t)[0]
            idx.append(len(self.timesteps) - 1 if len(cands) == 0 else int(cands[1] if len(cands) > 1 else cands[0]))
        sigma = sigmas[idx].reshape(-1, *([1] * (original.ndim - 1)))
        alpha_t = F(1) / np.sqrt(sigma * sigma + F(1))
        sigma_t = sigma * alpha_t
        return (alpha_t * original + sigma_t * noise).astype(np.float32)

    # hooks for the driver
    timesteps_dtype = "torch.int64"
    draws_noise = False


def threshold_if(cfg, x0):
    if cfg["thresholding"]:
        return threshold_sample(x0, cfg["dynamic_thresholding_ratio"], cfg["sample_max_value"])
    return x0


# ---------------------------------------------------------------- DPMSolverMultistepScheduler

class DPMSolverMultistep(VpBase):
    name = "DPMSolverMultistepScheduler"
    defaults = {
        "num_train_timesteps": 1000, "beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": "linear",
        "trained_betas": None, "solver_order": 2, "prediction_type": "epsilon", "thresholding": False,
        "dynamic_thresholding_ratio": 0.995, "sample_max_value": 1.0, "algorithm_type": "dpmsolver++",
        "solver_type": "midpoint", "lower_order_final": True, "euler_at_final": False, "use_karras_sigmas": False,
        "use_lu_lambdas": False, "lambda_min_clipped": -math.inf, "variance_type": None,
        "timestep_spacing": "linspace", "steps_offset": 0,
    }

    def __init__(self, **kw):
        super().__init__(**kw)
        c = self.config
        if c["algorithm_type"] not in ["dpmsolver", "dpmsolver++", "sde-dpmsolver", "sde-dpmsolver++"]:
            if c["algorithm_type"] == "deis":
                c["algorithm_type"] = "dpmsolver++"
            else:
                raise NotImplementedError(c["algorithm_type"])
        if c["solver_type"] not in ["midpoint", "heun"]:
            if c["solver_type"] in ["logrho", "bh1", "bh2"]:
                c["solver_type"] = "midpoint"
            else:
                raise NotImplementedError(c["solver_type"])
        self.draws_noise = c["algorithm_type"] in ["sde-dpmsolver", "sde-dpmsolver++"]

    def set_timesteps(self, n):
        c = self.config
        clipped_idx = self._clipped_idx()
        last_timestep = c["num_train_timesteps"] - clipped_idx
        ts = self._spaced(c["timestep_spacing"], n, last_timestep, c["steps_offset"])
        ts, sigmas = self._sigmas_from_timesteps(ts, n, c["use_karras_sigmas"], c["use_lu_lambdas"])
        self.sigmas = sigmas
        self.timesteps = ts.astype(np.int64)
        self.num_inference_steps = len(ts)
        self.model_outputs = [None] * c["solver_order"]
        self.lower_order_nums = 0
        self._step_index = None

    def convert_model_output(self, model_output, sample):
        c = self.config
        learned = c["variance_type"] in ["learned", "learned_range"]
        a, s = self._sigma_to_alpha_sigma_t(self.sigmas[self._step_index])
        if c["algorithm_type"] in ["dpmsolver++", "sde-dpmsolver++"]:
            if c["prediction_type"] == "epsilon":
                if learned:
                    model_output = model_output[:, :3]
                x0 = (sample - s * model_output) / a
            elif c["prediction_type"] == "sample":
                x0 = model_output
            elif c["prediction_type"] == "v_prediction":
                x0 = a * sample - s * model_output
            return threshold_if(c, x0)
        if c["prediction_type"] == "epsilon":
            eps = model_output[:, :3] if learned else model_output
        elif c["prediction_type"] == "sample":
            eps = (sample - a * model_output) / s
        elif c["prediction_type"] == "v_prediction":
            eps = a * model_output + s * sample
        if c["thresholding"]:
            x0 = (sample - s * eps) / a
            x0 = threshold_sample(x0, c["dynamic_thresholding_ratio"], c["sample_max_value"])
            eps = (sample - a * x0) / s
        return eps

    def first_order(self, m, sample, noise):
        at, st, lt = self._ass(self._step_index + 1)
        as_, ss, ls = self._ass(self._step_index)
        h = F(lt - ls)
        alg = self.config["algorithm_type"]
        if alg == "dpmsolver++":
            return F(st / ss) * sample - F(at * F(exp32(-h) - F(1))) * m
        if alg == "dpmsolver":
            return F(at / as_) * sample - F(st * F(exp32(h) - F(1))) * m
        if alg == "sde-dpmsolver++":
            e2 = exp32(F(-2.0) * h)
            return (F(F(st / ss) * exp32(-h)) * sample + F(at * F(F(1) - e2)) * m
                    + F(st * sqrt32(F(1) - e2)) * noise)
        # sde-dpmsolver: 2.0 * (sigma_t * (exp(h) - 1)) then * model_output
        return (F(at / as_) * sample - F(F(2.0) * F(st * F(exp32(h) - F(1)))) * m
                + F(st * sqrt32(F(exp32(F(2) * h) - F(1)))) * noise)

    def second_order(self, sample, noise):
        i = self._step_index
        at, st, lt = self._ass(i + 1)
        a0, s0, l0 = self._ass(i)
        a1, s1, l1 = self._ass(i - 1)
        m0, m1 = self.model_outputs[-1], self.model_outputs[-2]
        h, h0 = F(lt - l0), F(l0 - l1)
        r0 = F(h0 / h)
        D0, D1 = m0, F(F(1) / r0) * (m0 - m1)
        alg, st_ = self.config["algorithm_type"], self.config["solver_type"]
        if alg == "dpmsolver++":
            c = F(at * F(exp32(-h) - F(1)))
            if st_ == "midpoint":
                return F(st / s0) * sample - c * D0 - F(F(0.5) * c) * D1
            return F(st / s0) * sample - c * D0 + F(at * F(F(F(exp32(-h) - F(1)) / h) + F(1))) * D1
        if alg == "dpmsolver":
            c = F(st * F(exp32(h) - F(1)))
            if st_ == "midpoint":
                return F(at / a0) * sample - c * D0 - F(F(0.5) * c) * D1
            return F(at / a0) * sample - c * D0 - F(st * F(F(F(exp32(h) - F(1)) / h) - F(1))) * D1
        if alg == "sde-dpmsolver++":
            e2 = exp32(F(-2.0) * h)
            c = F(at * F(F(1) - e2))
            x = F(F(st / s0) * exp32(-h)) * sample + c * D0
            if st_ == "midpoint":
                x = x + F(F(0.5) * c) * D1
            else:
                x = x + F(at * F(F(F(F(1) - e2) / F(F(-2.0) * h)) + F(1))) * D1
            return x + F(st * sqrt32(F(1) - e2)) * noise
        # sde-dpmsolver
        c = F(st * F(exp32(h) - F(1)))
        x = F(at / a0) * sample - F(F(2.0) * c) * D0
        if st_ == "midpoint":
            x = x - c * D1
        else:
            x = x - F(F(2.0) * F(st * F(F(F(exp32(h) - F(1)) / h) - F(1)))) * D1
        return x + F(st * sqrt32(F(exp32(F(2) * h) - F(1)))) * noise

    def third_order(self, sample):
        i = self._step_index
        at, st, lt = self._ass(i + 1)
        a0, s0, l0 = self._ass(i)
        _, _, l1 = self._ass(i - 1)
        _, _, l2 = self._ass(i - 2)
        m0, m1, m2 = self.model_outputs[-1], self.model_outputs[-2], self.model_outputs[-3]
        h, h0, h1 = F(lt - l0), F(l0 - l1), F(l1 - l2)
        r0, r1 = F(h0 / h), F(h1 / h)
        D0 = m0
        D1_0, D1_1 = F(F(1) / r0) * (m0 - m1), F(F(1) / r1) * (m1 - m2)
        D1 = D1_0 + F(r0 / F(r0 + r1)) * (D1_0 - D1_1)
        D2 = F(F(1) / F(r0 + r1)) * (D1_0 - D1_1)
        hh = F(h * h)  # h ** 2
        if self.config["algorithm_type"] == "dpmsolver++":
            e = exp32(-h)
            return (F(st / s0) * sample - F(at * F(e - F(1))) * D0 + F(at * F(F(F(e - F(1)) / h) + F(1))) * D1
                    - F(at * F(F(F(F(e - F(1)) + h) / hh) - F(0.5))) * D2)
        e = exp32(h)
        return (F(at / a0) * sample - F(st * F(e - F(1))) * D0 - F(st * F(F(F(e - F(1)) / h) - F(1))) * D1
                - F(st * F(F(F(F(e - F(1)) - h) / hh) - F(0.5))) * D2)

    def step(self, model_output, timestep, sample, noise_source):
        c = self.config
        if self._step_index is None:
            self._init_step_index(timestep)
        n = len(self.timesteps)
        lower_order_final = (self._step_index == n - 1) and (c["euler_at_final"] or (c["lower_order_final"] and n < 15))
        lower_order_second = (self._step_index == n - 2) and c["lower_order_final"] and n < 15
        m = self.convert_model_output(model_output, sample)
        for i in range(c["solver_order"] - 1):
            self.model_outputs[i] = self.model_outputs[i + 1]
        self.model_outputs[-1] = m
        noise = noise_source(m.shape) if self.draws_noise else None
        if c["solver_order"] == 1 or self.lower_order_nums < 1 or lower_order_final:
            prev = self.first_order(m, sample, noise)
        elif c["solver_order"] == 2 or self.lower_order_nums < 2 or lower_order_second:
            prev = self.second_order(sample, noise)
        else:
            if self.draws_noise:
                raise RuntimeError("diffusers 0.25.1 has no third-order SDE update")
            prev = self.third_order(sample)
        if self.lower_order_nums < c["solver_order"]:
            self.lower_order_nums += 1
        self._step_index += 1
        return prev.astype(np.float32)


# ---------------------------------------------------------------- DPMSolverSinglestepScheduler

class DPMSolverSinglestep(VpBase):
    name = "DPMSolverSinglestepScheduler"
    defaults = {
        "num_train_timesteps": 1000, "beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": "linear",
        "trained_betas": None, "solver_order": 2, "prediction_type": "epsilon", "thresholding": False,
        "dynamic_thresholding_ratio": 0.995, "sample_max_value": 1.0, "algorithm_type": "dpmsolver++",
        "solver_type": "midpoint", "lower_order_final": True, "use_karras_sigmas": False,
        "lambda_min_clipped": -math.inf, "variance_type": None,
    }

    def __init__(self, **kw):
        super().__init__(**kw)
        c = self.config
        if c["algorithm_type"] not in ["dpmsolver", "dpmsolver++"]:
            if c["algorithm_type"] == "deis":
                c["algorithm_type"] = "dpmsolver++"
            else:
                raise NotImplementedError(c["algorithm_type"])
        if c["solver_type"] not in ["midpoint", "heun"]:
            if c["solver_type"] in ["logrho", "bh1", "bh2"]:
                c["solver_type"] = "midpoint"
            else:
                raise NotImplementedError(c["solver_type"])
        self.sample = None

    def get_order_list(self, steps):
        order, lof = self.config["solver_order"], self.config["lower_order_final"]
        if lof:
            if order == 3:
                if steps % 3 == 0:
                    return [1, 2, 3] * (steps // 3 - 1) + [1, 2] + [1]
                if steps % 3 == 1:
                    return [1, 2, 3] * (steps // 3) + [1]
                return [1, 2, 3] * (steps // 3) + [1, 2]
            if order == 2:
                return [1, 2] * (steps // 2) + ([1] if steps % 2 else [])
            return [1] * steps
        if order == 3:
            return [1, 2, 3] * (steps // 3)
        if order == 2:
            return [1, 2] * (steps // 2)
        return [1] * steps

    def set_timesteps(self, n):
        c = self.config
        self.num_inference_steps = n
        clipped_idx = self._clipped_idx()
        ts = np.linspace(0, c["num_train_timesteps"] - 1 - clipped_idx, n + 1).round()[::-1][:-1].copy().astype(np.int64)
        ts, sigmas = self._sigmas_from_timesteps(ts, n, c["use_karras_sigmas"])
        self.sigmas = sigmas
        self.timesteps = ts.astype(np.int64)
        self.model_outputs = [None] * c["solver_order"]
        self.sample = None
        if not c["lower_order_final"] and n % c["solver_order"] != 0:
            c["lower_order_final"] = True  # register_to_config(lower_order_final=True), with a warning
        self.order_list = self.get_order_list(n)
        self._step_index = None

    def convert_model_output(self, model_output, sample):
        c = self.config
        a, s = self._sigma_to_alpha_sigma_t(self.sigmas[self._step_index])
        if c["algorithm_type"] == "dpmsolver++":
            if c["prediction_type"] == "epsilon":
                if c["variance_type"] in ["learned_range"]:
                    model_output = model_output[:, :3]
                x0 = (sample - s * model_output) / a
            elif c["prediction_type"] == "sample":
                x0 = model_output
            elif c["prediction_type"] == "v_prediction":
                x0 = a * sample - s * model_output
            return threshold_if(c, x0)
        if c["prediction_type"] == "epsilon":
            return model_output[:, :3] if c["variance_type"] in ["learned_range"] else model_output
        if c["prediction_type"] == "sample":
            return (sample - a * model_output) / s
        return a * model_output + s * sample

    def first_order(self, m, sample):
        at, st, lt = self._ass(self._step_index + 1)
        as_, ss, ls = self._ass(self._step_index)
        h = F(lt - ls)
        if self.config["algorithm_type"] == "dpmsolver++":
            return F(st / ss) * sample - F(at * F(exp32(-h) - F(1))) * m
        return F(at / as_) * sample - F(st * F(exp32(h) - F(1))) * m

    def second_order(self, sample):
        i = self._step_index
        at, st, lt = self._ass(i + 1)
        a0, s0, l0 = self._ass(i)
        a1, s1, l1 = self._ass(i - 1)
        m0, m1 = self.model_outputs[-1], self.model_outputs[-2]
        h, h0 = F(lt - l1), F(l0 - l1)
        r0 = F(h0 / h)
        D0, D1 = m1, F(F(1) / r0) * (m0 - m1)
        alg, st_ = self.config["algorithm_type"], self.config["solver_type"]
        if alg == "dpmsolver++":
            c = F(at * F(exp32(-h) - F(1)))
            if st_ == "midpoint":
                return F(st / s1) * sample - c * D0 - F(F(0.5) * c) * D1
            return F(st / s1) * sample - c * D0 + F(at * F(F(F(exp32(-h) - F(1)) / h) + F(1))) * D1
        c = F(st * F(exp32(h) - F(1)))
        if st_ == "midpoint":
            return F(at / a1) * sample - c * D0 - F(F(0.5) * c) * D1
        return F(at / a1) * sample - c * D0 - F(st * F(F(F(exp32(h) - F(1)) / h) - F(1))) * D1

    def third_order(self, sample):
        i = self._step_index
        at, st, lt = self._ass(i + 1)
        a0, s0, l0 = self._ass(i)
        a1, s1, l1 = self._ass(i - 1)
        a2, s2, l2 = self._ass(i - 2)
        m0, m1, m2 = self.model_outputs[-1], self.model_outputs[-2], self.model_outputs[-3]
        h, h0, h1 = F(lt - l2), F(l0 - l2), F(l1 - l2)
        r0, r1 = F(h0 / h), F(h1 / h)
        D0 = m2
        D1_0, D1_1 = F(F(1) / r1) * (m1 - m2), F(F(1) / r0) * (m0 - m2)
        D1 = (r0 * D1_0 - r1 * D1_1) / F(r0 - r1)
        D2 = F(2.0) * (D1_1 - D1_0) / F(r0 - r1)
        hh = F(h * h)
        alg, st_ = self.config["algorithm_type"], self.config["solver_type"]
        if alg == "dpmsolver++":
            e = exp32(-h)
            x = F(st / s2) * sample - F(at * F(e - F(1))) * D0
            if st_ == "midpoint":
                return x + F(at * F(F(F(e - F(1)) / h) + F(1))) * D1_1
            return (x + F(at * F(F(F(e - F(1)) / h) + F(1))) * D1
                    - F(at * F(F(F(F(e - F(1)) + h) / hh) - F(0.5))) * D2)
        e = exp32(h)
        x = F(at / a2) * sample - F(st * F(e - F(1))) * D0
        if st_ == "midpoint":
            return x - F(st * F(F(F(e - F(1)) / h) - F(1))) * D1_1
        return (x - F(st * F(F(F(e - F(1)) / h) - F(1))) * D1
                - F(st * F(F(F(F(e - F(1)) - h) / hh) - F(0.5))) * D2)

    def step(self, model_output, timestep, sample, noise_source):
        c = self.config
        if self._step_index is None:
            self._init_step_index(timestep)
        m = self.convert_model_output(model_output, sample)
        for i in range(c["solver_order"] - 1):
            self.model_outputs[i] = self.model_outputs[i + 1]
        self.model_outputs[-1] = m
        order = self.order_list[self._step_index]
        while self.model_outputs[-order] is None:
            order -= 1
        if order == 1:
            self.sample = sample
        if order == 1:
            prev = self.first_order(self.model_outputs[-1], self.sample)
        elif order == 2:
            prev = self.second_order(self.sample)
        else:
            prev = self.third_order(self.sample)
        self._step_index += 1
        return prev.astype(np.float32)


# ---------------------------------------------------------------- DEISMultistepScheduler

class DEISMultistep(VpBase):
    name = "DEISMultistepScheduler"
    defaults = {
        "num_train_timesteps": 1000, "beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": "linear",
        "trained_betas": None, "solver_order": 2, "prediction_type": "epsilon", "thresholding": False,
        "dynamic_thresholding_ratio": 0.995, "sample_max_value": 1.0, "algorithm_type": "deis",
        "solver_type": "logrho", "lower_order_final": True, "use_karras_sigmas": False,
        "timestep_spacing": "linspace", "steps_offset": 0,
    }

    def __init__(self, **kw):
        super().__init__(**kw)
        c = self.config
        if c["algorithm_type"] not in ["deis"]:
            if c["algorithm_type"] in ["dpmsolver", "dpmsolver++"]:
                c["algorithm_type"] = "deis"
            else:
                raise NotImplementedError(c["algorithm_type"])
        if c["solver_type"] not in ["logrho"]:
            if c["solver_type"] in ["midpoint", "heun", "bh1", "bh2"]:
                c["solver_type"] = "logrho"
            else:
                raise NotImplementedError(c["solver_type"])

    def set_timesteps(self, n):
        c = self.config
        ts = self._spaced(c["timestep_spacing"], n, c["num_train_timesteps"], c["steps_offset"])
        ts, sigmas = self._sigmas_from_timesteps(ts, n, c["use_karras_sigmas"])
        self.sigmas = sigmas
        self.timesteps = ts.astype(np.int64)
        self.num_inference_steps = len(ts)
        self.model_outputs = [None] * c["solver_order"]
        self.lower_order_nums = 0
        self._step_index = None

    def convert_model_output(self, model_output, sample):
        c = self.config
        a, s = self._sigma_to_alpha_sigma_t(self.sigmas[self._step_index])
        if c["prediction_type"] == "epsilon":
            x0 = (sample - s * model_output) / a
        elif c["prediction_type"] == "sample":
            x0 = model_output
        elif c["prediction_type"] == "v_prediction":
            x0 = a * sample - s * model_output
        x0 = threshold_if(c, x0)
        return (sample - a * x0) / s

    def first_order(self, m, sample):
        at, st, lt = self._ass(self._step_index + 1)
        as_, ss, ls = self._ass(self._step_index)
        h = F(lt - ls)
        return F(at / as_) * sample - F(st * F(exp32(h) - F(1))) * m

    # np.log of a 0-dim float32 tensor: numpy's float32 log, the result wrapped back into a float32 tensor
    def second_order(self, sample):
        i = self._step_index
        at, st = self._sigma_to_alpha_sigma_t(self.sigmas[i + 1])
        a0, s0 = self._sigma_to_alpha_sigma_t(self.sigmas[i])
        a1, s1 = self._sigma_to_alpha_sigma_t(self.sigmas[i - 1])
        m0, m1 = self.model_outputs[-1], self.model_outputs[-2]
        rt, r0, r1 = F(st / at), F(s0 / a0), F(s1 / a1)

        def ind_fn(t, b, c):
            return F(F(t * F(F(-log32(c) + log32(t)) - F(1))) / F(log32(b) - log32(c)))

        coef1 = F(ind_fn(rt, r0, r1) - ind_fn(r0, r0, r1))
        coef2 = F(ind_fn(rt, r1, r0) - ind_fn(r0, r1, r0))
        return at * (sample / a0 + coef1 * m0 + coef2 * m1)

    def third_order(self, sample):
        i = self._step_index
        at, st = self._sigma_to_alpha_sigma_t(self.sigmas[i + 1])
        a0, s0 = self._sigma_to_alpha_sigma_t(self.sigmas[i])
        a1, s1 = self._sigma_to_alpha_sigma_t(self.sigmas[i - 1])
        a2, s2 = self._sigma_to_alpha_sigma_t(self.sigmas[i - 2])
        m0, m1, m2 = self.model_outputs[-1], self.model_outputs[-2], self.model_outputs[-3]
        rt, r0, r1, r2 = F(st / at), F(s0 / a0), F(s1 / a1), F(s2 / a2)

        def ind_fn(t, b, c, d):
            lt, lb, lc, ld = log32(t), log32(b), log32(c), log32(d)
            # (((((log c * (log d - log t + 1)) - log d * log t) + log d) + log t ** 2) - 2 * log t) + 2
            inner = F(lc * F(F(ld - lt) + F(1)))
            inner = F(inner - F(ld * lt))
            inner = F(inner + ld)
            inner = F(inner + F(lt * lt))
            inner = F(inner - F(F(2) * lt))
            inner = F(inner + F(2))
            numerator = F(t * inner)
            denominator = F(F(lb - lc) * F(lb - ld))
            return F(numerator / denominator)

        coef1 = F(ind_fn(rt, r0, r1, r2) - ind_fn(r0, r0, r1, r2))
        coef2 = F(ind_fn(rt, r1, r2, r0) - ind_fn(r0, r1, r2, r0))
        coef3 = F(ind_fn(rt, r2, r0, r1) - ind_fn(r0, r2, r0, r1))
        return at * (sample / a0 + coef1 * m0 + coef2 * m1 + coef3 * m2)

    def step(self, model_output, timestep, sample, noise_source):
        c = self.config
        if self._step_index is None:
            self._init_step_index(timestep)
        n = len(self.timesteps)
        lower_order_final = self._step_index == n - 1 and c["lower_order_final"] and n < 15
        lower_order_second = self._step_index == n - 2 and c["lower_order_final"] and n < 15
        m = self.convert_model_output(model_output, sample)
        for i in range(c["solver_order"] - 1):
            self.model_outputs[i] = self.model_outputs[i + 1]
        self.model_outputs[-1] = m
        if c["solver_order"] == 1 or self.lower_order_nums < 1 or lower_order_final:
            prev = self.first_order(m, sample)
        elif c["solver_order"] == 2 or self.lower_order_nums < 2 or lower_order_second:
            prev = self.second_order(sample)
        else:
            prev = self.third_order(sample)
        if self.lower_order_nums < c["solver_order"]:
            self.lower_order_nums += 1
        self._step_index += 1
        return prev.astype(np.float32)


# ---------------------------------------------------------------- UniPCMultistepScheduler

class UniPCMultistep(VpBase):
    name = "UniPCMultistepScheduler"
    defaults = {
        "num_train_timesteps": 1000, "beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": "linear",
        "trained_betas": None, "solver_order": 2, "prediction_type": "epsilon", "thresholding": False,
        "dynamic_thresholding_ratio": 0.995, "sample_max_value": 1.0, "predict_x0": True, "solver_type": "bh2",
        "lower_order_final": True, "disable_corrector": [], "solver_p": None, "use_karras_sigmas": False,
        "timestep_spacing": "linspace", "steps_offset": 0,
    }

    def __init__(self, **kw):
        super().__init__(**kw)
        c = self.config
        if c["solver_type"] not in ["bh1", "bh2"]:
            if c["solver_type"] in ["midpoint", "heun", "logrho"]:
                c["solver_type"] = "bh2"
            else:
                raise NotImplementedError(c["solver_type"])
        self.predict_x0 = c["predict_x0"]
        self.disable_corrector = c["disable_corrector"]
        self.last_sample = None

    def set_timesteps(self, n):
        c = self.config
        ts = self._spaced(c["timestep_spacing"], n, c["num_train_timesteps"], c["steps_offset"])
        ts, sigmas = self._sigmas_from_timesteps(ts, n, c["use_karras_sigmas"])
        self.sigmas = sigmas
        self.timesteps = ts.astype(np.int64)
        self.num_inference_steps = len(ts)
        self.model_outputs = [None] * c["solver_order"]
        self.timestep_list = [None] * c["solver_order"]
        self.lower_order_nums = 0
        self.last_sample = None
        self._step_index = None

    def convert_model_output(self, model_output, sample):
        c = self.config
        a, s = self._sigma_to_alpha_sigma_t(self.sigmas[self._step_index])
        if self.predict_x0:
            if c["prediction_type"] == "epsilon":
                x0 = (sample - s * model_output) / a
            elif c["prediction_type"] == "sample":
                x0 = model_output
            elif c["prediction_type"] == "v_prediction":
                x0 = a * sample - s * model_output
            return threshold_if(c, x0)
        if c["prediction_type"] == "epsilon":
            return model_output
        if c["prediction_type"] == "sample":
            return (sample - a * model_output) / s
        return a * model_output + s * sample

    def _coefficients(self, h, rks, order):
        """rks (float32 list ending in 1.0), then R and b as diffusers builds them, all float32."""
        hh = F(-h) if self.predict_x0 else F(h)
        h_phi_1 = F(np.expm1(hh))
        with np.errstate(invalid="ignore"):  # h = 0 at the last step of a Karras schedule: NaN in b, unused there
            h_phi_k = F(F(h_phi_1 / hh) - F(1))
        factorial_i = 1
        if self.config["solver_type"] == "bh1":
            B_h = hh
        else:
            B_h = F(np.expm1(hh))
        rks = np.array(rks, dtype=np.float32)
        R, b = [], []
        for i in range(1, order + 1):
            R.append(torch_pow_int(rks, i - 1))
            b.append(F(F(h_phi_k * F(factorial_i)) / B_h))
            factorial_i *= i + 1
            h_phi_k = F(F(h_phi_k / hh) - F(1 / factorial_i))
        R = np.stack(R).astype(np.float32)
        b = np.array(b, dtype=np.float32)
        return hh, h_phi_1, B_h, R, b

    @staticmethod
    def _einsum(rhos, D1s):
        # torch.einsum('k,bkc...->bc...', rhos, stack(D1s, dim=1)): sum_k rhos[k] * D1s[k]
        out = rhos[0] * D1s[0]
        for k in range(1, len(D1s)):
            out = out + rhos[k] * D1s[k]
        return out

    def uni_p(self, sample, order):
        m0 = self.model_outputs[-1]
        x = sample
        i0 = self._step_index
        at, st, lt = self._ass(i0 + 1)
        a0, s0, l0 = self._ass(i0)
        h = F(lt - l0)
        rks, D1s = [], []
        for i in range(1, order):
            si = i0 - i
            mi = self.model_outputs[-(i + 1)]
            _, _, lsi = self._ass(si)
            rk = F(F(lsi - l0) / h)
            rks.append(rk)
            D1s.append((mi - m0) / rk)
        rks.append(F(1.0))
        hh, h_phi_1, B_h, R, b = self._coefficients(h, rks, order)
        if len(D1s) > 0:
            if order == 2:
                rhos_p = np.array([0.5], dtype=np.float32)
            else:
                rhos_p = np.linalg.solve(R[:-1, :-1], b[:-1]).astype(np.float32)
            pred_res = self._einsum(rhos_p, D1s)
        else:
            pred_res = None
        if self.predict_x0:
            x_t_ = F(st / s0) * x - F(at * h_phi_1) * m0
            coef = F(at * B_h)
        else:
            x_t_ = F(at / a0) * x - F(st * h_phi_1) * m0
            coef = F(st * B_h)
        x_t = x_t_ - coef * pred_res if pred_res is not None else x_t_ - F(coef * F(0))
        return x_t.astype(np.float32)

    def uni_c(self, this_model_output, last_sample, this_sample, order):
        m0 = self.model_outputs[-1]
        x = last_sample
        model_t = this_model_output
        i0 = self._step_index
        at, st, lt = self._ass(i0)
        a0, s0, l0 = self._ass(i0 - 1)
        h = F(lt - l0)
        rks, D1s = [], []
        for i in range(1, order):
            si = i0 - (i + 1)
            mi = self.model_outputs[-(i + 1)]
            _, _, lsi = self._ass(si)
            rk = F(F(lsi - l0) / h)
            rks.append(rk)
            D1s.append((mi - m0) / rk)
        rks.append(F(1.0))
        hh, h_phi_1, B_h, R, b = self._coefficients(h, rks, order)
        if order == 1:
            rhos_c = np.array([0.5], dtype=np.float32)
        else:
            rhos_c = np.linalg.solve(R, b).astype(np.float32)
        D1_t = model_t - m0
        if self.predict_x0:
            x_t_ = F(st / s0) * x - F(at * h_phi_1) * m0
            coef = F(at * B_h)
        else:
            x_t_ = F(at / a0) * x - F(st * h_phi_1) * m0
            coef = F(st * B_h)
        if D1s:
            corr_res = self._einsum(rhos_c[:-1], D1s)
            x_t = x_t_ - coef * (corr_res + rhos_c[-1] * D1_t)
        else:
            x_t = x_t_ - coef * (rhos_c[-1] * D1_t)  # corr_res = 0 (python int): 0 + t is t
        return x_t.astype(np.float32)

    def step(self, model_output, timestep, sample, noise_source):
        c = self.config
        if self._step_index is None:
            self._init_step_index(timestep)
        use_corrector = (self._step_index > 0 and (self._step_index - 1) not in self.disable_corrector
                         and self.last_sample is not None)
        mc = self.convert_model_output(model_output, sample)
        if use_corrector:
            sample = self.uni_c(mc, self.last_sample, sample, self.this_order)
        for i in range(c["solver_order"] - 1):
            self.model_outputs[i] = self.model_outputs[i + 1]
            self.timestep_list[i] = self.timestep_list[i + 1]
        self.model_outputs[-1] = mc
        self.timestep_list[-1] = timestep
        if c["lower_order_final"]:
            this_order = min(c["solver_order"], len(self.timesteps) - self._step_index)
        else:
            this_order = c["solver_order"]
        self.this_order = min(this_order, self.lower_order_nums + 1)
        assert self.this_order > 0
        self.last_sample = sample
        prev = self.uni_p(sample, self.this_order)
        if self.lower_order_nums < c["solver_order"]:
            self.lower_order_nums += 1
        self._step_index += 1
        return prev


CLASSES = {c.name: c for c in (DPMSolverMultistep, DPMSolverSinglestep, DEISMultistep, UniPCMultistep)}


# ---------------------------------------------------------------- the recipe of golden B (README section B)

N_LIST = [4, 10, 25, 50]


def to_json_value(v):
    if isinstance(v, float) and math.isinf(v):
        return "-inf" if v < 0 else "inf"
    return v


def run_case(name, cls_name, kwargs, inputs, loop_n=10, generator_seed=None, noise_from=None, channels=4,
             learned=False, n_list=N_LIST):
    Cls = CLASSES[cls_name]
    s0 = Cls(**kwargs)
    config = {k: to_json_value(v) for k, v in s0.effective_config().items()}
    full = dict(s0.config)
    t = {}
    t[f"{name}/betas"] = s0.betas
    t[f"{name}/alphas_cumprod"] = s0.alphas_cumprod

    sets = {}
    for n in n_list:
        s = Cls(**full)
        s.set_timesteps(n)
        t[f"{name}/timesteps_N{n}"] = s.timesteps.astype(np.int64)
        t[f"{name}/sigmas_N{n}"] = s.sigmas.astype(np.float32)
        sets[str(n)] = {"num_timesteps": int(len(s.timesteps)), "timesteps_dtype": "torch.int64",
                        "init_noise_sigma": 1.0, "num_inference_steps_attr": int(s.num_inference_steps)}

    # loop
    s = Cls(**full)
    s.set_timesteps(loop_n)
    init = inputs.init_randn[:, :channels].copy()
    E = inputs.E[:, :channels].copy()
    V = inputs.V[:, :channels].copy()
    sample = (init * F(s.init_noise_sigma)).astype(np.float32)
    t[f"{name}/loop/init_randn"] = init
    t[f"{name}/loop/E"] = E
    if learned:
        t[f"{name}/loop/V"] = V
    t[f"{name}/loop/x_T"] = sample.copy()
    t[f"{name}/loop/timesteps"] = s.timesteps.astype(np.int64)

    recorded = inputs.golden[f"{noise_from}/loop/noise"] if noise_from else None
    draws, draw_steps = [], []
    current = [0]

    def noise_source(shape):
        if recorded is None:
            raise RuntimeError(f"{name}: step draws noise but the case has no noise source")
        k = len(draws)
        z = recorded[k]
        assert tuple(z.shape) == tuple(shape), (z.shape, shape)
        draws.append(z)
        draw_steps.append(current[0])
        return z

    scaled_l, out_l, prev_l = [], [], []
    for i, ts in enumerate(s.timesteps):
        current[0] = i
        scaled = s.scale_model_input(sample, ts)
        mo = (F(0.1) * scaled + E).astype(np.float32)
        if learned:
            mo = np.concatenate([mo, V], axis=1)
        sample = s.step(mo, ts, sample, noise_source)
        scaled_l.append(scaled)
        out_l.append(mo)
        prev_l.append(sample)
        if not np.all(np.isfinite(sample)):
            raise RuntimeError(f"{name}: non-finite sample at step {i}")
    t[f"{name}/loop/scaled_model_input"] = np.stack(scaled_l)
    t[f"{name}/loop/model_output"] = np.stack(out_l)
    t[f"{name}/loop/prev_sample"] = np.stack(prev_l)
    if draws:
        t[f"{name}/loop/noise"] = np.stack(draws)
        t[f"{name}/loop/noise_step_index"] = np.array(draw_steps, dtype=np.int64)

    # add_noise
    s = Cls(**full)
    s.set_timesteps(loop_n)
    L = len(s.timesteps)
    at = s.timesteps[[0, L // 2, L - 1]].astype(np.int64)
    original = inputs.original[:, :channels].copy()
    noise = inputs.noise[:, :channels].copy()
    t[f"{name}/add_noise/original"] = original
    t[f"{name}/add_noise/noise"] = noise
    t[f"{name}/add_noise/timesteps"] = at
    t[f"{name}/add_noise/noisy"] = s.add_noise(original, noise, at)

    meta = {
        "class": cls_name,
        "config": config,
        "constructor_kwargs": {k: to_json_value(v) for k, v in kwargs.items()},
        "step_kwargs": {},
        "generator_seed": generator_seed,
        "loop_num_inference_steps": loop_n,
        "custom_timesteps": None,
        "sample_shape": [1, channels, 8, 8],
        "set_timesteps": sets,
        "loop_init_noise_sigma": 1.0,
        "noise_draws": len(draws),
        "loop_steps": int(len(prev_l)),
        "add_noise_timesteps_from": f"scheduler.timesteps[[0, {L // 2}, {L - 1}]] after set_timesteps({loop_n})",
    }
    if learned:
        meta["model_output"] = f"cat([0.1 * scaled + E, V], dim=1): {2 * channels} channels"
    if draws:
        meta["noise_from"] = (f"golden schedulers.safetensors {noise_from}/loop/noise: the first {len(draws)} "
                              f"torch.randn([1,4,8,8]) draws of torch.Generator('cpu').manual_seed({generator_seed})")
    meta["tensors"] = {k: {"dtype": "float32" if v.dtype == np.float32 else "int64", "shape": list(v.shape)}
                       for k, v in sorted(t.items())}
    return meta, t


def validate(golden):
    """Reproduce golden B's cases of these classes; return {case: max relative error} (fails on a mismatch)."""
    gj = golden_b()[1]["cases"]
    inputs = GoldenBInputs(golden)
    report = {}
    for case in ["dpmpp2m-sd", "dpmpp2m-sd-karras", "unipc-bh2-order2-sd"]:
        g = gj[case]
        meta, t = run_case(case, g["class"], g["constructor_kwargs"], inputs)
        want_cfg = {k: v for k, v in g["config"].items() if k != "_use_default_values"}
        got_cfg = {k: v for k, v in meta["config"].items() if k != "_use_default_values"}
        assert want_cfg == got_cfg, (case, want_cfg, got_cfg)
        assert sorted(g["config"]["_use_default_values"]) == meta["config"]["_use_default_values"], case
        assert set(g["tensors"]) == set(meta["tensors"]), (case, set(g["tensors"]) ^ set(meta["tensors"]))
        worst = 0.0
        for k, v in t.items():
            e = golden[k]
            assert e.shape == v.shape and e.dtype == v.dtype, (k, e.shape, v.shape, e.dtype, v.dtype)
            exact = any(k.endswith(x) for x in ("/betas", "/alphas_cumprod")) or "timesteps" in k
            if exact:
                assert np.array_equal(e, v), (k, np.abs(e.astype(np.float64) - v).max())
            else:
                err = rel_err(v, e)
                worst = max(worst, err)
                assert err <= 1e-6, (k, err)
        report[case] = worst
    return report


SD = {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "steps_offset": 1}
SD_BETAS = {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012}  # Singlestep has no steps_offset
DPM, DPMSS, DEIS, UNIPC = ("DPMSolverMultistepScheduler", "DPMSolverSinglestepScheduler", "DEISMultistepScheduler",
                           "UniPCMultistepScheduler")

# (case, class, constructor kwargs, options). Options: loop_n, generator_seed + noise_from (the golden B case whose
# recorded step noise is exactly the first draws of that seed), channels/learned (variance_type learned_range).
CASES = [
    # DPMSolverMultistepScheduler
    ("dpmpp2m-sde-sd", DPM, {**SD, "algorithm_type": "sde-dpmsolver++"}, {"generator_seed": 30, "noise_from": "eulera-sd-linspace"}),
    ("dpmpp2m-sde-sd-karras", DPM, {**SD, "algorithm_type": "sde-dpmsolver++", "use_karras_sigmas": True}, {"generator_seed": 21, "noise_from": "euler-sd-karras"}),
    ("dpmpp2m-sde-heun-sd", DPM, {**SD, "algorithm_type": "sde-dpmsolver++", "solver_type": "heun"}, {"generator_seed": 22, "noise_from": "euler-sd-leading-offset1"}),
    ("sdedpm2m-sd", DPM, {**SD, "algorithm_type": "sde-dpmsolver"}, {"generator_seed": 20, "noise_from": "euler-sd-linspace"}),
    ("sdedpm2m-heun-sd", DPM, {**SD, "algorithm_type": "sde-dpmsolver", "solver_type": "heun"}, {"generator_seed": 10, "noise_from": "ddim-sd-eta1"}),
    ("dpm2m-sd", DPM, {**SD, "algorithm_type": "dpmsolver"}, {}),
    ("dpm2m-heun-sd", DPM, {**SD, "algorithm_type": "dpmsolver", "solver_type": "heun"}, {}),
    ("dpmpp2m-heun-sd", DPM, {**SD, "solver_type": "heun"}, {}),
    ("dpmpp3m-sd", DPM, {**SD, "solver_order": 3}, {}),
    ("dpm3m-sd", DPM, {**SD, "algorithm_type": "dpmsolver", "solver_order": 3}, {}),
    ("dpmpp3m-sd-nolowerorderfinal", DPM, {**SD, "solver_order": 3, "lower_order_final": False}, {}),
    ("dpmpp2m-sd-eulerfinal-nolowerorderfinal", DPM, {**SD, "lower_order_final": False, "euler_at_final": True}, {}),
    ("dpmpp2m-sd-eulerfinal-16steps", DPM, {**SD, "euler_at_final": True}, {"loop_n": 16}),
    ("dpmpp2m-sd-lu", DPM, {**SD, "use_lu_lambdas": True}, {}),
    ("dpmpp2m-sd2-v", DPM, {**SD, "prediction_type": "v_prediction"}, {}),
    ("dpmpp2m-sd-trailing", DPM, {**SD, "timestep_spacing": "trailing"}, {"n_list": N_LIST + [61]}),
    ("dpmpp2m-sd-leading", DPM, {**SD, "timestep_spacing": "leading"}, {}),
    ("dpmpp2m-cos-learnedrange-clipped", DPM, {"beta_schedule": "squaredcos_cap_v2", "variance_type": "learned_range", "lambda_min_clipped": -5.1}, {"channels": 3, "learned": True}),
    ("dpmpp2m-linear-thresholding", DPM, {"thresholding": True, "dynamic_thresholding_ratio": 0.95, "sample_max_value": 1.5}, {}),
    ("dpm2m-sd-sample", DPM, {**SD, "algorithm_type": "dpmsolver", "prediction_type": "sample"}, {}),
    ("dpm2m-v-thresholding", DPM, {**SD, "algorithm_type": "dpmsolver", "prediction_type": "v_prediction", "thresholding": True, "sample_max_value": 1.5}, {}),
    # DPMSolverSinglestepScheduler
    ("dpmss1-sd", DPMSS, {**SD_BETAS, "solver_order": 1}, {}),
    ("dpmss2-sd", DPMSS, {**SD_BETAS, "solver_order": 2}, {}),
    ("dpmss3-sd", DPMSS, {**SD_BETAS, "solver_order": 3}, {}),
    ("dpmss2-dpmsolver-sd", DPMSS, {**SD_BETAS, "solver_order": 2, "algorithm_type": "dpmsolver"}, {}),
    ("dpmss3-dpmsolver-sd", DPMSS, {**SD_BETAS, "solver_order": 3, "algorithm_type": "dpmsolver"}, {}),
    ("dpmss3-heun-sd", DPMSS, {**SD_BETAS, "solver_order": 3, "solver_type": "heun"}, {}),
    ("dpmss3-dpmsolver-heun-sd", DPMSS, {**SD_BETAS, "solver_order": 3, "algorithm_type": "dpmsolver", "solver_type": "heun"}, {}),
    ("dpmss2-sd-karras", DPMSS, {**SD_BETAS, "solver_order": 2, "use_karras_sigmas": True}, {}),
    ("dpmss3-sd-nolowerorderfinal-12steps", DPMSS, {**SD_BETAS, "solver_order": 3, "lower_order_final": False}, {"loop_n": 12}),
    ("dpmss3-sd-nolowerorderfinal-10steps", DPMSS, {**SD_BETAS, "solver_order": 3, "lower_order_final": False}, {}),
    ("dpmss2-cos-learnedrange-clipped", DPMSS, {"beta_schedule": "squaredcos_cap_v2", "variance_type": "learned_range", "lambda_min_clipped": -5.1}, {"channels": 3, "learned": True}),
    ("dpmss2-linear-thresholding", DPMSS, {"thresholding": True, "dynamic_thresholding_ratio": 0.95, "sample_max_value": 1.5}, {}),
    ("dpmss2-sd2-v", DPMSS, {**SD_BETAS, "prediction_type": "v_prediction"}, {}),
    # DEISMultistepScheduler
    ("deis2-sd", DEIS, {**SD}, {}),
    ("deis3-sd", DEIS, {**SD, "solver_order": 3}, {}),
    ("deis2-sd-karras", DEIS, {**SD, "use_karras_sigmas": True}, {}),
    ("deis3-sd2-v-trailing", DEIS, {**SD, "solver_order": 3, "prediction_type": "v_prediction", "timestep_spacing": "trailing"}, {"n_list": N_LIST + [61]}),
    ("deis2-linear-thresholding", DEIS, {"thresholding": True, "dynamic_thresholding_ratio": 0.95, "sample_max_value": 1.5}, {}),
    # UniPCMultistepScheduler
    ("unipc-bh1-order2-sd", UNIPC, {**SD, "solver_type": "bh1"}, {}),
    ("unipc-bh2-order3-sd", UNIPC, {**SD, "solver_order": 3}, {}),
    ("unipc-bh1-order3-sd", UNIPC, {**SD, "solver_order": 3, "solver_type": "bh1"}, {}),
    ("unipc-bh2-order2-sd-disablecorrector0", UNIPC, {**SD, "disable_corrector": [0]}, {}),
    ("unipc-bh2-order2-sd-noisepred", UNIPC, {**SD, "predict_x0": False}, {}),
    ("unipc-bh2-order3-sd-noisepred", UNIPC, {**SD, "solver_order": 3, "predict_x0": False}, {}),
    ("unipc-bh2-order2-sd-karras", UNIPC, {**SD, "use_karras_sigmas": True}, {}),
    ("unipc-bh2-order2-sd2-v", UNIPC, {**SD, "prediction_type": "v_prediction"}, {}),
    ("unipc-bh2-order2-linear-thresholding", UNIPC, {"thresholding": True, "dynamic_thresholding_ratio": 0.95, "sample_max_value": 1.5}, {}),
    ("unipc-bh2-order3-sd-nolowerorderfinal-leading", UNIPC, {**SD, "solver_order": 3, "lower_order_final": False, "timestep_spacing": "leading"}, {}),
]


def main():
    golden = golden_b()[0]
    rep = validate(golden)
    for k, v in rep.items():
        print(f"golden B {k}: max relative error {v:.3e}")
    inputs = GoldenBInputs(golden)
    cases, tensors = {}, {}
    for name, cls_name, kwargs, opts in CASES:
        meta, t = run_case(name, cls_name, kwargs, inputs, **opts)
        cases[name] = meta
        tensors.update(t)
        ps = t[f"{name}/loop/prev_sample"]
        print(f"{name}: {meta['loop_steps']} steps, {meta['noise_draws']} draws, max|prev_sample| {np.abs(ps).max():.4g}")
    doc = {
        "about": ("numpy float32 transcription of diffusers 0.25.1 (not made by diffusers itself); recipe of "
                  "golden/schedulers.json (README section B); see README.md in this folder"),
        "validated_against_golden_b": {k: {"max_relative_error": v} for k, v in rep.items()},
        "recipe": golden_b()[1]["recipe"],
        "cases": cases,
    }
    with open(OUT_JSON, "w") as f:
        json.dump(doc, f, indent=1, allow_nan=False)
        f.write("\n")
    write_safetensors(OUT_ST, tensors, widest_first=True)
    print(f"wrote {len(cases)} cases, {os.path.getsize(OUT_ST)} bytes of tensors")


if __name__ == "__main__":
    main()
