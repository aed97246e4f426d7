"""The numpy building blocks the scheduler transcriptions share (../scheduler-transcripts-sigma, -vp and -img2img).

torch 1.13's float32 CPU kernels that diffusers 0.25.1's schedulers build on (linspace, cumprod, quantile), the beta
schedules (linear, scaled_linear, squaredcos_cap_v2, Heun's exp; rescale_zero_terminal_snr), the numpy code the sigma
schedules share (train sigmas, _sigma_to_t, Karras), dynamic thresholding, the diffusers config record, and golden B
(../schedulers.json / .safetensors, README section B): its file, its torch-made inputs and the error measured against
it. Safetensors reading and writing is torchlike's (write_safetensors(..., widest_first=True) is golden B's layout).

Conventions: a torch float32 tensor is a numpy float32 array or scalar; a Python float that torch turns into a
float32 operand is wrapped in F() first, so numpy never promotes to float64 where torch stays in float32.

Imported by each make.py through sys.path (this folder), with sys.dont_write_bytecode set: no __pycache__ is left.
"""
import json
import math
import os
from fractions import Fraction

import numpy as np

from torchlike import read_safetensors

F = np.float32
f32 = np.float32

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
GOLDEN_B = os.path.join(GOLDEN, "schedulers.safetensors")
GOLDEN_B_JSON = os.path.join(GOLDEN, "schedulers.json")


# ---------------------------------------------------------------- torch float32 kernels

def round_f32(fr):
    """A Fraction rounded to the nearest float32 (ties to even), without double rounding."""
    d = float(fr)
    r = np.float32(d)
    if float(r) == d:
        return r
    lo, hi = (r, np.nextafter(r, np.float32(np.inf))) if float(r) < d else (np.nextafter(r, np.float32(-np.inf)), r)
    dl, dh = abs(Fraction(float(lo)) - fr), abs(Fraction(float(hi)) - fr)
    if dl < dh:
        return lo
    if dh < dl:
        return hi
    return lo if (lo.view(np.int32) & 1) == 0 else hi


def fma32(a, b, c):
    """float32 fused multiply-add: a * b + c computed exactly, rounded to float32 once (the hardware FMA).

    Exact for every operand, which float64 arithmetic is not: float64(a * b + c) is exact only while the sum fits in
    53 bits, and otherwise rounds twice (to float64, then to float32). linspace32 once used that shortcut; on every
    input the scripts give it (the beta_start / beta_end pairs and Euler's log-linear ends) it agrees bit for bit,
    but e.g. torch.linspace(1.0, 1.0 + 2 ** -22, 1889) in float32 has element 472 = 1.0000001 (exact FMA) where the
    float64 shortcut gives 1.0: a * b lands 2 ** -55 above the float32 midpoint 1 + 2 ** -24, the float64 sum drops
    that and ties to even."""
    return round_f32(Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c)))


def linspace32(start_d, end_d, steps):
    """torch.linspace(..., dtype=float32) as torch 1.13's AVX2 CPU kernel computes it (see SchedulerMath.Linspace32):
    step = (end - start) / (steps - 1); the first half from start, the second from end (fma of step and the index);
    blocks of 16 run as two 8-lane vectors (Vectorized::arange: base + j * step), the rest one by one."""
    y = np.zeros(steps, dtype=f32)
    start, end = F(start_d), F(end_d)
    if steps == 1:
        y[0] = start
        return y
    step = F(F(end - start) / F(steps - 1))
    halfway = steps // 2

    def at(k):
        return fma32(step, k, start) if k < halfway else fma32(-step, steps - k - 1, end)

    i = 0
    while i <= steps - 16:
        for half in range(2):
            b0 = i + half * 8
            b = at(b0)
            for j in range(8):
                y[b0 + j] = F(b + F(F(j) * step))
        i += 16
    while i < steps:
        y[i] = at(i)
        i += 1
    return y


def cumprod32(x):
    """torch.cumprod of a float32 CPU tensor: running product accumulated in double, each entry stored as float32
    (numpy's cumprod of the float64 values is the same sequential product)."""
    return np.cumprod(np.asarray(x).astype(np.float64)).astype(np.float32)


def quantile_linear32(x, q):
    """torch.quantile(x, q, dim=1) (linear interpolation) for a float32 [B, N] array: sort, rank q * (N - 1) in float32,
    torch.lerp (weight below 0.5: lo + w * (hi - lo); else hi - (hi - lo) * (1 - w))."""
    srt = np.sort(x, axis=1)
    n = srt.shape[1]
    rank = F(F(q) * F(n - 1))
    below = int(math.floor(rank))
    above = int(math.ceil(rank))
    w = F(rank - F(below))
    out = []
    for b in range(srt.shape[0]):
        lo, hi = srt[b, below], srt[b, above]
        if w < F(0.5):
            out.append(F(lo + F(w * F(hi - lo))))
        else:
            out.append(F(hi - F(F(hi - lo) * F(F(1) - w))))
    return np.array(out, dtype=f32)


def threshold_sample(sample, ratio, max_value):
    """diffusers' _threshold_sample (dynamic thresholding) of a float32 sample."""
    b, c = sample.shape[:2]
    rest = sample.shape[2:]
    s2 = sample.reshape(b, c * int(np.prod(rest)))
    s = quantile_linear32(np.abs(s2), ratio)
    s = np.clip(s, F(1), F(max_value)).astype(f32)  # torch.clamp(s, min=1, max=sample_max_value)
    s = s[:, None]
    out = np.clip(s2, -s, s) / s
    return out.reshape(sample.shape).astype(f32)


# ---------------------------------------------------------------- beta schedules

def betas_for_alpha_bar(n, max_beta=0.999, alpha_transform_type="cosine"):
    """diffusers' betas_for_alpha_bar: Python float maths, then torch.tensor(betas, dtype=float32)."""
    if alpha_transform_type == "cosine":
        def fn(t):
            return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
    elif alpha_transform_type == "exp":
        def fn(t):
            return math.exp(t * -12.0)
    else:
        raise ValueError(alpha_transform_type)
    betas = [min(1 - fn((i + 1) / n) / fn(i / n), max_beta) for i in range(n)]
    return np.array(betas, dtype=np.float64).astype(f32)


def rescale_zero_terminal_snr(betas):
    """diffusers' rescale_zero_terminal_snr in torch float32 ops."""
    alphas = F(1.0) - betas
    ac = cumprod32(alphas)
    s = np.sqrt(ac)
    s0, sT = s[0].copy(), s[-1].copy()
    s = s - sT
    s = s * F(s0 / F(s0 - sT))
    ab = s * s
    a = ab[1:] / ab[:-1]
    a = np.concatenate([ab[0:1], a])
    return F(1) - a


def make_betas(cfg, extra=()):
    """The betas a scheduler's __init__ makes from its config (float32). "exp" only where the class has it (extra)."""
    n = cfg["num_train_timesteps"]
    if cfg.get("trained_betas") is not None:
        return np.array(cfg["trained_betas"], dtype=f32)
    bs = cfg["beta_schedule"]
    if bs == "linear":
        return linspace32(cfg["beta_start"], cfg["beta_end"], n)
    if bs == "scaled_linear":
        v = linspace32(cfg["beta_start"] ** 0.5, cfg["beta_end"] ** 0.5, n)
        return v * v
    if bs == "squaredcos_cap_v2":
        return betas_for_alpha_bar(n)
    if bs == "exp" and "exp" in extra:
        return betas_for_alpha_bar(n, alpha_transform_type="exp")
    raise NotImplementedError(bs)


# ---------------------------------------------------------------- sigma schedules (diffusers' numpy code, verbatim)

def train_sigmas(ac):
    """np.array(((1 - alphas_cumprod) / alphas_cumprod) ** 0.5) with torch float32 ops."""
    return np.sqrt((F(1) - ac) / ac)


def sigma_to_t(sigma, log_sigmas):
    """diffusers' _sigma_to_t with numpy arguments (verbatim)."""
    log_sigma = np.log(np.maximum(sigma, 1e-10))
    dists = log_sigma - log_sigmas[:, np.newaxis]
    low_idx = np.cumsum((dists >= 0), axis=0).argmax(axis=0).clip(max=log_sigmas.shape[0] - 2)
    high_idx = low_idx + 1
    low = log_sigmas[low_idx]
    high = log_sigmas[high_idx]
    w = (low - log_sigma) / (low - high)
    w = np.clip(w, 0, 1)
    t = (1 - w) * low_idx + w * high_idx
    t = t.reshape(sigma.shape)
    return t


def karras(in_sigmas, n, sigma_min=None, sigma_max=None):
    """diffusers' _convert_to_karras (rho 7; sigma_min / sigma_max: Euler's config values, else the schedule's ends)."""
    sigma_min = sigma_min if sigma_min is not None else in_sigmas[-1].item()
    sigma_max = sigma_max if sigma_max is not None else in_sigmas[0].item()
    rho = 7.0
    ramp = np.linspace(0, 1, n)
    min_inv_rho = sigma_min ** (1 / rho)
    max_inv_rho = sigma_max ** (1 / rho)
    return (max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho


# ---------------------------------------------------------------- config record, golden B

def diffusers_config(defaults, config, passed, class_name):
    """A scheduler's config as diffusers records it: every key (defaults with the passed kwargs), then
    _use_default_values (the defaults not passed, sorted) and _class_name."""
    c = dict(config)
    c["_use_default_values"] = sorted(k for k in defaults if k not in passed)
    c["_class_name"] = class_name
    return c


_GOLDEN_B = {}


def golden_b():
    """Golden B: (tensors of schedulers.safetensors, schedulers.json), read once."""
    if not _GOLDEN_B:
        _GOLDEN_B["tensors"] = read_safetensors(GOLDEN_B)
        with open(GOLDEN_B_JSON) as fh:
            _GOLDEN_B["doc"] = json.load(fh)
    return _GOLDEN_B["tensors"], _GOLDEN_B["doc"]


class GoldenBInputs:
    """Golden B's torch-made loop and add_noise inputs (README section B; every golden B case records the same seeded
    tensors, so one case's are taken): init_randn = seeded([1,4,8,8], 11), E = seeded([1,4,8,8], 12),
    V = tanh(seeded([1,4,8,8], 13)), original = seeded([3,4,8,8], 14), noise = seeded([3,4,8,8], 15)."""

    def __init__(self, golden):
        self.golden = golden
        self.init_randn = golden["euler-sd-linspace/loop/init_randn"]
        self.E = golden["euler-sd-linspace/loop/E"]
        self.V = golden["ddpm-linear-eps-learnedrange-leading-offset1/loop/V"]
        self.original = golden["euler-sd-linspace/add_noise/original"]
        self.noise = golden["euler-sd-linspace/add_noise/noise"]


def rel_err(actual, expected):
    """max|actual - expected| / max|expected| (float64; the denominator at least 1e-12)."""
    a = np.asarray(actual).astype(np.float64)
    e = np.asarray(expected)
    return float(np.max(np.abs(a - e))) / max(float(np.max(np.abs(e))), 1e-12)
