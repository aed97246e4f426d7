"""numpy float32 transcription of diffusers 0.25.1 schedulers (torch 1.13 CPU semantics).

Conventions: a torch float32 tensor is a numpy float32 array (0-d tensors: np.float32 scalars); every Python
float that torch would turn into a float32 operand is wrapped in F() first, so numpy never promotes to float64
where torch stays in float32. Code that diffusers writes in numpy is transcribed verbatim (same numpy 1.24
semantics, including value-based casting).

The kernels and schedules the scheduler transcriptions share (linspace, cumprod, the betas, _sigma_to_t, Karras,
thresholding) are ../transcripts-common/schedules.py: the importing make.py puts that folder on sys.path.
"""
from fractions import Fraction

import numpy as np

from schedules import (F, cumprod32, f32, fma32, karras, linspace32, make_betas, rescale_zero_terminal_snr,
                       sigma_to_t, threshold_sample, train_sigmas)


def _two_sum(x, y):
    s = F(x + y)
    v = F(s - x)
    return s, F(F(x - F(s - v)) + F(y - v))


def sleef_log32(d):
    """torch.log of a float32 value on torch 1.13's CPU (AVX2 + FMA, no MKL): vml's vec::map runs every element, a
    lone 0-d one included, through SLEEF 3.5's logf (u10) in FMA arithmetic."""
    d = F(d)
    if np.isnan(d) or d < 0:
        return F(np.nan)
    if d == 0:
        return F(-np.inf)
    if np.isinf(d):
        return F(np.inf)
    sub = d < F(1.17549435e-38)
    if sub:
        d = F(d * F(1.8446744073709552e19))
    e = int(((int(F(d * F(1.0 / 0.75)).view(np.int32)) >> 23) & 0xFF) - 0x7F)
    m = np.array([int(d.view(np.int32)) + (-e << 23)], dtype=np.int64).astype(np.int32).view(np.float32)[0]
    if sub:
        e -= 64
    fe = F(e)
    sx = F(F(0.69314718246459960938) * fe)
    sy = fma32(F(-1.904654323148236017e-09), fe, fma32(F(0.69314718246459960938), fe, -sx))
    nx, ny = _two_sum(F(-1), m)
    dx, dy = _two_sum(F(1), m)
    t = F(F(1) / dx)
    qx = F(nx * t)
    u = fma32(t, nx, -qx)
    v = fma32(-dy, t, fma32(-dx, t, F(1)))
    qy = fma32(qx, v, fma32(ny, t, u))
    x2 = F(qx * qx)
    p = F(0.3027294874)
    p = fma32(p, x2, F(0.3996108174))
    p = fma32(p, x2, F(0.6666694880))
    ax, ay = F(F(2) * qx), F(F(2) * qy)
    s1 = F(sx + ax)
    s1y = F(F(F(F(sx - s1) + ax) + sy) + ay)
    w = F(F(x2 * qx) * p)
    s2 = F(s1 + w)
    s2y = F(F(F(s1 - s2) + w) + s1y)
    return F(s2 + s2y)


def sleef_exp32(d):
    """torch.exp of a float32 value on torch 1.13's CPU: SLEEF 3.5's expf (u10) with FMA (see sleef_log32)."""
    d = F(d)
    if np.isnan(d):
        return d
    if d > F(100):
        return F(np.inf)
    if d < F(-104):
        return F(0)
    q = int(np.rint(F(d * F(1.442695040888963407359924681001892137426645954152985934135449406931))))
    s = fma32(F(q), F(-0.693145751953125), d)
    s = fma32(F(q), F(-1.428606765330187045e-06), s)
    u = F(0.000198527617612853646278381)
    for c in (0.00139304355252534151077271, 0.00833336077630519866943359, 0.0416664853692054748535156,
              0.166666671633720397949219, 0.5):
        u = fma32(u, s, F(c))
    u = F(F(1) + fma32(F(s * s), u, s))
    h = q >> 1
    return F(F(u * F(2.0 ** h)) * F(2.0 ** (q - h)))


def log_scalar32(x):
    return sleef_log32(x)


def exp_scalar32(x):
    return sleef_exp32(x)


def exp32(a):
    """torch.exp of a float32 tensor (SLEEF on every element)."""
    a = np.asarray(a, dtype=np.float32)
    return np.array([sleef_exp32(v) for v in a.ravel()], dtype=np.float32).reshape(a.shape)


def spacing_float(cfg, n, num_train=None):
    """The float32 timestep spacings of the sigma schedulers (verbatim numpy)."""
    T = num_train or cfg["num_train_timesteps"]
    sp = cfg["timestep_spacing"]
    if sp == "linspace":
        return np.linspace(0, T - 1, n, dtype=np.float32)[::-1].copy()
    if sp == "leading":
        step_ratio = T // n
        ts = (np.arange(0, n) * step_ratio).round()[::-1].copy().astype(np.float32)
        ts += cfg["steps_offset"]
        return ts
    if sp == "trailing":
        step_ratio = T / n
        ts = np.arange(T, 0, -step_ratio).round().copy().astype(np.float32)
        ts -= 1
        return ts
    raise ValueError(sp)


def spacing_int(cfg, n):
    T = cfg["num_train_timesteps"]
    sp = cfg["timestep_spacing"]
    if sp == "linspace":
        return np.linspace(0, T - 1, n).round()[::-1].copy().astype(np.int64)
    if sp == "leading":
        step_ratio = T // n
        ts = (np.arange(0, n) * step_ratio).round()[::-1].copy().astype(np.int64)
        ts += cfg["steps_offset"]
        return ts
    if sp == "trailing":
        step_ratio = T / n
        ts = np.round(np.arange(T, 0, -step_ratio)).astype(np.int64)
        ts -= 1
        return ts
    raise ValueError(sp)


def sigma_to_t_torch(sigma, log_sigmas):
    """_sigma_to_t called with torch tensors (KDPM2's interpolated timesteps): a float32 0-d sigma and float32
    log_sigmas; np.log(np.maximum(tensor, 1e-10)) is a float64 numpy scalar, every later op is a torch float32 op."""
    log_sigma = np.log(np.maximum(np.float32(sigma), 1e-10))  # np.float64
    ls32 = F(log_sigma)
    dists = ls32 - log_sigmas  # torch: tensor.__rsub__(scalar) -> float32
    low_idx = min(int(np.cumsum(dists >= 0).argmax()), log_sigmas.shape[0] - 2)
    high_idx = low_idx + 1
    low = log_sigmas[low_idx]
    high = log_sigmas[high_idx]
    w = F(F(low - ls32) / F(low - high))
    w = F(min(max(w, F(0)), F(1)))
    return F(F(F(F(1) - w) * F(low_idx)) + F(w * F(high_idx)))


def init_step_index(timesteps, t):
    idx = np.nonzero(timesteps == t)[0]
    return int(idx[1] if len(idx) > 1 else idx[0])


DEFAULTS = {
    "EulerDiscreteScheduler": {"num_train_timesteps": 1000, "beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": 'linear', "trained_betas": None, "prediction_type": 'epsilon', "interpolation_type": 'linear', "use_karras_sigmas": False, "sigma_min": None, "sigma_max": None, "timestep_spacing": 'linspace', "timestep_type": 'discrete', "steps_offset": 0, "rescale_betas_zero_snr": False},
    "EulerAncestralDiscreteScheduler": {"num_train_timesteps": 1000, "beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": 'linear', "trained_betas": None, "prediction_type": 'epsilon', "timestep_spacing": 'linspace', "steps_offset": 0, "rescale_betas_zero_snr": False},
    "HeunDiscreteScheduler": {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": 'linear', "trained_betas": None, "prediction_type": 'epsilon', "use_karras_sigmas": False, "clip_sample": False, "clip_sample_range": 1.0, "timestep_spacing": 'linspace', "steps_offset": 0},
    "LMSDiscreteScheduler": {"num_train_timesteps": 1000, "beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": 'linear', "trained_betas": None, "use_karras_sigmas": False, "prediction_type": 'epsilon', "timestep_spacing": 'linspace', "steps_offset": 0},
    "KDPM2DiscreteScheduler": {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": 'linear', "trained_betas": None, "use_karras_sigmas": False, "prediction_type": 'epsilon', "timestep_spacing": 'linspace', "steps_offset": 0},
    "KDPM2AncestralDiscreteScheduler": {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": 'linear', "trained_betas": None, "use_karras_sigmas": False, "prediction_type": 'epsilon', "timestep_spacing": 'linspace', "steps_offset": 0},
    "DDIMScheduler": {"num_train_timesteps": 1000, "beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": 'linear', "trained_betas": None, "clip_sample": True, "set_alpha_to_one": True, "steps_offset": 0, "prediction_type": 'epsilon', "thresholding": False, "dynamic_thresholding_ratio": 0.995, "clip_sample_range": 1.0, "sample_max_value": 1.0, "timestep_spacing": 'leading', "rescale_betas_zero_snr": False},
    "DDPMScheduler": {"num_train_timesteps": 1000, "beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": 'linear', "trained_betas": None, "variance_type": 'fixed_small', "clip_sample": True, "prediction_type": 'epsilon', "thresholding": False, "dynamic_thresholding_ratio": 0.995, "clip_sample_range": 1.0, "sample_max_value": 1.0, "timestep_spacing": 'leading', "steps_offset": 0, "rescale_betas_zero_snr": False},
    "PNDMScheduler": {"num_train_timesteps": 1000, "beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": 'linear', "trained_betas": None, "skip_prk_steps": False, "set_alpha_to_one": False, "prediction_type": 'epsilon', "timestep_spacing": 'leading', "steps_offset": 0},
    "LCMScheduler": {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": 'scaled_linear', "trained_betas": None, "original_inference_steps": 50, "clip_sample": False, "clip_sample_range": 1.0, "set_alpha_to_one": True, "steps_offset": 0, "prediction_type": 'epsilon', "thresholding": False, "dynamic_thresholding_ratio": 0.995, "sample_max_value": 1.0, "timestep_spacing": 'leading', "timestep_scaling": 10.0, "rescale_betas_zero_snr": False},
}


class Base:
    sigma_based = False
    has_velocity = False

    def __init__(self, cfg):
        self.cfg = cfg
        self.betas = make_betas(cfg, getattr(self, "extra_schedules", ()))
        if cfg.get("rescale_betas_zero_snr"):
            self.betas = rescale_zero_terminal_snr(self.betas)
        self.alphas = F(1.0) - self.betas
        self.alphas_cumprod = cumprod32(self.alphas)
        self.sigmas = None


# ---------------------------------------------------------------- sigma schedulers

class _SigmaCommon(Base):
    sigma_based = True

    @property
    def init_noise_sigma(self):
        m = self.sigmas.max()
        if self.cfg["timestep_spacing"] in ["linspace", "trailing"]:
            return F(m)
        return np.sqrt(F(m * m + F(1)))

    def scale_model_input(self, sample, t):
        if self.step_index is None:
            self.step_index = init_step_index(self.timesteps, t)
        sigma = self.sigmas[self.step_index]
        return sample / np.sqrt(F(sigma * sigma + F(1)))

    def add_noise(self, original, noise, timesteps):
        idx = []
        for t in timesteps:
            m = np.nonzero(self.timesteps == t)[0]
            assert len(m) == 1, (t, m)
            idx.append(int(m[0]))
        sigma = self.sigmas[idx].reshape(-1, 1, 1, 1)
        return original + noise * sigma


def v_pred_x0(model_output, sample, sigma):
    s2p1 = F(sigma * sigma + F(1))
    return model_output * F(-sigma / np.sqrt(s2p1)) + sample / s2p1


class EulerDiscreteScheduler(_SigmaCommon):
    def __init__(self, cfg):
        super().__init__(cfg)
        if cfg["rescale_betas_zero_snr"]:
            self.alphas_cumprod[-1] = F(2 ** -24)
        self.continuous = cfg["timestep_type"] == "continuous" and cfg["prediction_type"] == "v_prediction"
        self.step_index = None

    def set_timesteps(self, n):
        cfg = self.cfg
        timesteps = spacing_float(cfg, n)
        sigmas = np.array(train_sigmas(self.alphas_cumprod))
        log_sigmas = np.log(sigmas)
        if cfg["interpolation_type"] == "linear":
            sigmas = np.interp(timesteps, np.arange(0, len(sigmas)), sigmas)
        elif cfg["interpolation_type"] == "log_linear":
            lin = linspace32(float(np.log(sigmas[-1])), float(np.log(sigmas[0])), n + 1)
            sigmas = exp32(lin)
        else:
            raise ValueError
        if cfg["use_karras_sigmas"]:
            sigmas = karras(sigmas, n, cfg["sigma_min"], cfg["sigma_max"])
            timesteps = np.array([sigma_to_t(sigma, log_sigmas) for sigma in sigmas])
        sigmas = sigmas.astype(f32)
        if self.continuous:
            self.timesteps = np.array([F(F(0.25) * log_scalar32(s)) for s in sigmas], dtype=f32)
        else:
            self.timesteps = timesteps.astype(np.float32)
        self.sigmas = np.concatenate([sigmas, np.zeros(1, f32)])
        self.step_index = None

    def step(self, model_output, t, sample, draw, s_churn=0.0, s_tmin=0.0, s_tmax=float("inf"), s_noise=1.0):
        if self.step_index is None:
            self.step_index = init_step_index(self.timesteps, t)
        sigma = self.sigmas[self.step_index]
        gamma = min(s_churn / (len(self.sigmas) - 1), 2 ** 0.5 - 1) if s_tmin <= sigma <= s_tmax else 0.0
        noise = draw()
        eps = noise * F(s_noise)
        sigma_hat = F(sigma * F(gamma + 1))
        if gamma > 0:
            sample = sample + eps * np.sqrt(F(F(sigma_hat * sigma_hat) - F(sigma * sigma)))
        pt = self.cfg["prediction_type"]
        if pt in ("original_sample", "sample"):
            x0 = model_output
        elif pt == "epsilon":
            x0 = sample - sigma_hat * model_output
        elif pt == "v_prediction":
            x0 = v_pred_x0(model_output, sample, sigma)
        derivative = (sample - x0) / sigma_hat
        dt = F(self.sigmas[self.step_index + 1] - sigma_hat)
        prev = sample + derivative * dt
        self.step_index += 1
        return prev


class EulerAncestralDiscreteScheduler(_SigmaCommon):
    def __init__(self, cfg):
        super().__init__(cfg)
        if cfg["rescale_betas_zero_snr"]:
            self.alphas_cumprod[-1] = F(2 ** -24)
        self.step_index = None

    def set_timesteps(self, n):
        timesteps = spacing_float(self.cfg, n)
        sigmas = np.array(train_sigmas(self.alphas_cumprod))
        sigmas = np.interp(timesteps, np.arange(0, len(sigmas)), sigmas)
        self.sigmas = np.concatenate([sigmas, [0.0]]).astype(np.float32)
        self.timesteps = timesteps
        self.step_index = None

    def step(self, model_output, t, sample, draw):
        if self.step_index is None:
            self.step_index = init_step_index(self.timesteps, t)
        sigma = self.sigmas[self.step_index]
        pt = self.cfg["prediction_type"]
        if pt == "epsilon":
            x0 = sample - sigma * model_output
        elif pt == "v_prediction":
            x0 = v_pred_x0(model_output, sample, sigma)
        else:
            raise NotImplementedError(pt)
        sf, st = self.sigmas[self.step_index], self.sigmas[self.step_index + 1]
        sf2, st2 = F(sf * sf), F(st * st)
        sigma_up = np.sqrt(F(F(st2 * F(sf2 - st2)) / sf2))
        sigma_down = np.sqrt(F(st2 - F(sigma_up * sigma_up)))
        derivative = (sample - x0) / sigma
        dt = F(sigma_down - sigma)
        prev = sample + derivative * dt
        noise = draw()
        prev = prev + noise * sigma_up
        self.step_index += 1
        return prev


class HeunDiscreteScheduler(_SigmaCommon):
    extra_schedules = ("exp",)

    def __init__(self, cfg):
        super().__init__(cfg)
        self.step_index = None

    def set_timesteps(self, n):
        cfg = self.cfg
        timesteps = spacing_float(cfg, n)
        sigmas = np.array(train_sigmas(self.alphas_cumprod))
        log_sigmas = np.log(sigmas)
        sigmas = np.interp(timesteps, np.arange(0, len(sigmas)), sigmas)
        if cfg["use_karras_sigmas"]:
            sigmas = karras(sigmas, n)
            timesteps = np.array([sigma_to_t(sigma, log_sigmas) for sigma in sigmas])  # float64: no astype here
        sigmas = np.concatenate([sigmas, [0.0]]).astype(np.float32)
        self.sigmas = np.concatenate([sigmas[:1], np.repeat(sigmas[1:-1], 2), sigmas[-1:]])
        self.timesteps = np.concatenate([timesteps[:1], np.repeat(timesteps[1:], 2)])
        self.prev_derivative = None
        self.dt = None
        self.step_index = None

    def step(self, model_output, t, sample, draw):
        if self.step_index is None:
            self.step_index = init_step_index(self.timesteps, t)
        first = self.dt is None
        if first:
            sigma, sigma_next = self.sigmas[self.step_index], self.sigmas[self.step_index + 1]
        else:
            sigma, sigma_next = self.sigmas[self.step_index - 1], self.sigmas[self.step_index]
        sigma_hat = F(sigma * F(1))
        pt = self.cfg["prediction_type"]
        sigma_input = sigma_hat if first else sigma_next
        if pt == "epsilon":
            x0 = sample - sigma_input * model_output
        elif pt == "v_prediction":
            x0 = v_pred_x0(model_output, sample, sigma_input)
        elif pt == "sample":
            x0 = model_output
        if self.cfg["clip_sample"]:
            r = F(self.cfg["clip_sample_range"])
            x0 = np.clip(x0, -r, r)
        if first:
            derivative = (sample - x0) / sigma_hat
            dt = F(sigma_next - sigma_hat)
            self.prev_derivative, self.dt, self.sample = derivative, dt, sample
        else:
            derivative = (sample - x0) / sigma_next
            derivative = (self.prev_derivative + derivative) / F(2)
            dt = self.dt
            sample = self.sample
            self.prev_derivative = self.dt = self.sample = None
        prev = sample + derivative * dt
        self.step_index += 1
        return prev

    def add_noise(self, original, noise, timesteps):
        idx = []
        for t in timesteps:
            m = np.nonzero(self.timesteps == t)[0]
            idx.append(int(m[1] if len(m) > 1 else m[0]))  # index_for_timestep with an empty _index_counter
        sigma = self.sigmas[idx].reshape(-1, 1, 1, 1)
        return original + noise * sigma


class LMSDiscreteScheduler(_SigmaCommon):
    def __init__(self, cfg):
        super().__init__(cfg)
        self.step_index = None

    def set_timesteps(self, n):
        cfg = self.cfg
        timesteps = spacing_float(cfg, n)
        sigmas = np.array(train_sigmas(self.alphas_cumprod))
        log_sigmas = np.log(sigmas)
        sigmas = np.interp(timesteps, np.arange(0, len(sigmas)), sigmas)
        if cfg["use_karras_sigmas"]:
            sigmas = karras(sigmas, n)
            timesteps = np.array([sigma_to_t(sigma, log_sigmas) for sigma in sigmas])  # float64 timesteps
        self.sigmas = np.concatenate([sigmas, [0.0]]).astype(np.float32)
        self.timesteps = timesteps
        self.step_index = None
        self.derivatives = []

    def lms_coefficient(self, order, t, current_order):
        """integrate.quad of the Lagrange basis polynomial over [sigma_t, sigma_t+1]: integrated exactly here
        (the integrand is a polynomial of degree < 4; quad's 21-point Gauss-Kronrod rule is exact for it up to the
        float32 rounding of diffusers' integrand, ~1e-7 relative)."""
        s = [Fraction(float(self.sigmas[t - k])) for k in range(order)]
        c = s[current_order]
        poly = [Fraction(1)]  # coefficients, lowest degree first
        for k in range(order):
            if k == current_order:
                continue
            den = c - s[k]
            poly = [((poly[i - 1] if i > 0 else 0) - (poly[i] * s[k] if i < len(poly) else 0)) / den for i in range(len(poly) + 1)]
        a, b = Fraction(float(self.sigmas[t])), Fraction(float(self.sigmas[t + 1]))
        integral = sum(p * (b ** (i + 1) - a ** (i + 1)) / (i + 1) for i, p in enumerate(poly))
        return float(integral)

    def step(self, model_output, t, sample, draw, order=4):
        if self.step_index is None:
            self.step_index = init_step_index(self.timesteps, t)
        sigma = self.sigmas[self.step_index]
        pt = self.cfg["prediction_type"]
        if pt == "epsilon":
            x0 = sample - sigma * model_output
        elif pt == "v_prediction":
            x0 = v_pred_x0(model_output, sample, sigma)
        elif pt == "sample":
            x0 = model_output
        derivative = (sample - x0) / sigma
        self.derivatives.append(derivative)
        if len(self.derivatives) > order:
            self.derivatives.pop(0)
        order = min(self.step_index + 1, order)
        coeffs = [self.lms_coefficient(order, self.step_index, co) for co in range(order)]
        acc = 0  # python sum(): 0 + first term, then + each
        for coeff, d in zip(coeffs, reversed(self.derivatives)):
            acc = acc + F(coeff) * d
        prev = sample + acc
        self.step_index += 1
        return prev


# ---------------------------------------------------------------- alpha schedulers

def _alpha_add_noise(ac, original, noise, timesteps):
    a = ac[timesteps]
    sa = np.sqrt(a).reshape(-1, 1, 1, 1)
    s1a = np.sqrt(F(1) - a).reshape(-1, 1, 1, 1)
    return sa * original + s1a * noise, sa, s1a


class _AlphaCommon(Base):
    has_velocity = True
    init_noise_sigma = F(1.0)

    def scale_model_input(self, sample, t):
        return sample

    def add_noise(self, original, noise, timesteps):
        return _alpha_add_noise(self.alphas_cumprod, original, noise, timesteps)[0]

    def get_velocity(self, sample, noise, timesteps):
        _, sa, s1a = _alpha_add_noise(self.alphas_cumprod, sample, noise, timesteps)
        return sa * noise - s1a * sample


class DDIMScheduler(_AlphaCommon):
    def __init__(self, cfg):
        super().__init__(cfg)
        self.final_alpha_cumprod = F(1.0) if cfg["set_alpha_to_one"] else self.alphas_cumprod[0]
        self.num_inference_steps = None

    def set_timesteps(self, n):
        self.num_inference_steps = n
        self.timesteps = spacing_int(self.cfg, n)

    def step(self, model_output, t, sample, draw, eta=0.0, use_clipped_model_output=False):
        cfg = self.cfg
        prev_t = t - cfg["num_train_timesteps"] // self.num_inference_steps
        apt = self.alphas_cumprod[t]
        aptp = self.alphas_cumprod[prev_t] if prev_t >= 0 else self.final_alpha_cumprod
        bpt = F(F(1) - apt)
        pt = cfg["prediction_type"]
        if pt == "epsilon":
            x0 = (sample - np.sqrt(bpt) * model_output) / np.sqrt(apt)
            eps = model_output
        elif pt == "sample":
            x0 = model_output
            eps = (sample - np.sqrt(apt) * x0) / np.sqrt(bpt)
        elif pt == "v_prediction":
            x0 = np.sqrt(apt) * sample - np.sqrt(bpt) * model_output
            eps = np.sqrt(apt) * model_output + np.sqrt(bpt) * sample
        if cfg["thresholding"]:
            x0 = threshold_sample(x0, cfg["dynamic_thresholding_ratio"], cfg["sample_max_value"])
        elif cfg["clip_sample"]:
            r = F(cfg["clip_sample_range"])
            x0 = np.clip(x0, -r, r)
        bptp = F(F(1) - aptp)
        variance = F(F(bptp / bpt) * F(F(1) - F(apt / aptp)))
        std = F(F(eta) * np.sqrt(variance))
        if use_clipped_model_output:
            eps = (sample - np.sqrt(apt) * x0) / np.sqrt(bpt)
        direction = np.sqrt(F(F(F(1) - aptp) - F(std * std))) * eps
        prev = np.sqrt(aptp) * x0 + direction
        if eta > 0:
            prev = prev + std * draw()
        return prev


class DDPMScheduler(_AlphaCommon):
    def __init__(self, cfg):
        super().__init__(cfg)
        self.num_inference_steps = None
        self.custom_timesteps = False

    def set_timesteps(self, n=None, timesteps=None):
        if timesteps is not None:
            assert all(timesteps[i] < timesteps[i - 1] for i in range(1, len(timesteps)))
            assert timesteps[0] < self.cfg["num_train_timesteps"]
            self.timesteps = np.array(timesteps, dtype=np.int64)
            self.custom_timesteps = True  # num_inference_steps is left as it was (None on a fresh instance)
            return
        self.num_inference_steps = n
        self.custom_timesteps = False
        self.timesteps = spacing_int(self.cfg, n)

    def prev_timestep(self, t):
        if self.custom_timesteps:
            index = int(np.nonzero(self.timesteps == t)[0][0])
            return -1 if index == self.timesteps.shape[0] - 1 else self.timesteps[index + 1]
        n = self.num_inference_steps if self.num_inference_steps else self.cfg["num_train_timesteps"]
        return t - self.cfg["num_train_timesteps"] // n

    def _get_variance(self, t, predicted_variance):
        prev_t = self.prev_timestep(t)
        apt = self.alphas_cumprod[t]
        aptp = self.alphas_cumprod[prev_t] if prev_t >= 0 else F(1)
        cb = F(F(1) - F(apt / aptp))
        variance = F(F(F(F(1) - aptp) / F(F(1) - apt)) * cb)
        variance = max(variance, F(1e-20))
        vt = self.cfg["variance_type"]
        if vt == "fixed_small":
            return variance
        if vt == "fixed_small_log":
            return exp_scalar32(F(F(0.5) * log_scalar32(variance)))
        if vt == "fixed_large":
            return cb
        if vt == "learned_range":
            min_log = log_scalar32(variance)
            max_log = log_scalar32(cb)
            frac = (predicted_variance + F(1)) / F(2)
            return frac * max_log + (F(1) - frac) * min_log
        raise NotImplementedError(vt)

    def step(self, model_output, t, sample, draw):
        cfg = self.cfg
        prev_t = self.prev_timestep(t)
        if model_output.shape[1] == sample.shape[1] * 2 and cfg["variance_type"] in ["learned", "learned_range"]:
            model_output, predicted_variance = model_output[:, :sample.shape[1]], model_output[:, sample.shape[1]:]
        else:
            predicted_variance = None
        apt = self.alphas_cumprod[t]
        aptp = self.alphas_cumprod[prev_t] if prev_t >= 0 else F(1)
        bpt = F(F(1) - apt)
        bptp = F(F(1) - aptp)
        ca = F(apt / aptp)
        cb = F(F(1) - ca)
        pt = cfg["prediction_type"]
        if pt == "epsilon":
            x0 = (sample - np.sqrt(bpt) * model_output) / np.sqrt(apt)
        elif pt == "sample":
            x0 = model_output
        elif pt == "v_prediction":
            x0 = np.sqrt(apt) * sample - np.sqrt(bpt) * model_output
        if cfg["thresholding"]:
            x0 = threshold_sample(x0, cfg["dynamic_thresholding_ratio"], cfg["sample_max_value"])
        elif cfg["clip_sample"]:
            r = F(cfg["clip_sample_range"])
            x0 = np.clip(x0, -r, r)
        c0 = F(F(np.sqrt(aptp) * cb) / bpt)
        cs = F(F(np.sqrt(ca) * bptp) / bpt)
        prev = c0 * x0 + cs * sample
        if t > 0:
            noise = draw()
            vt = cfg["variance_type"]
            if vt == "fixed_small_log":
                variance = self._get_variance(t, predicted_variance) * noise
            elif vt == "learned_range":
                v = self._get_variance(t, predicted_variance)
                variance = exp32(F(0.5) * v) * noise
            else:
                variance = np.sqrt(self._get_variance(t, predicted_variance)) * noise
            prev = prev + variance
        return prev


class PNDMScheduler(_AlphaCommon):
    has_velocity = False

    def __init__(self, cfg):
        super().__init__(cfg)
        self.final_alpha_cumprod = F(1.0) if cfg["set_alpha_to_one"] else self.alphas_cumprod[0]
        self.pndm_order = 4

    def set_timesteps(self, n):
        cfg = self.cfg
        T = cfg["num_train_timesteps"]
        self.num_inference_steps = n
        sp = cfg["timestep_spacing"]
        if sp == "linspace":
            _t = np.linspace(0, T - 1, n).round().astype(np.int64)
        elif sp == "leading":
            step_ratio = T // n
            _t = (np.arange(0, n) * step_ratio).round()
            _t += cfg["steps_offset"]
        elif sp == "trailing":
            step_ratio = T / n
            _t = np.round(np.arange(T, 0, -step_ratio))[::-1].astype(np.int64)
            _t -= 1
        if cfg["skip_prk_steps"]:
            self.prk_timesteps = np.array([])
            self.plms_timesteps = np.concatenate([_t[:-1], _t[-2:-1], _t[-1:]])[::-1].copy()
        else:
            prk = np.array(_t[-self.pndm_order:]).repeat(2) + np.tile(np.array([0, T // n // 2]), self.pndm_order)
            self.prk_timesteps = prk[:-1].repeat(2)[1:-1][::-1].copy()
            self.plms_timesteps = _t[:-3][::-1].copy()
        self.timesteps = np.concatenate([self.prk_timesteps, self.plms_timesteps]).astype(np.int64)
        self.ets = []
        self.counter = 0
        self.cur_model_output = 0
        self.cur_sample = None

    def step(self, model_output, t, sample, draw):
        if self.counter < len(self.prk_timesteps) and not self.cfg["skip_prk_steps"]:
            return self.step_prk(model_output, t, sample)
        return self.step_plms(model_output, t, sample)

    def step_prk(self, model_output, timestep, sample):
        T = self.cfg["num_train_timesteps"]
        diff = 0 if self.counter % 2 else T // self.num_inference_steps // 2
        prev_timestep = timestep - diff
        timestep = int(self.prk_timesteps[self.counter // 4 * 4])
        if self.counter % 4 == 0:
            self.cur_model_output = self.cur_model_output + F(1 / 6) * model_output
            self.ets.append(model_output)
            self.cur_sample = sample
        elif (self.counter - 1) % 4 == 0:
            self.cur_model_output = self.cur_model_output + F(1 / 3) * model_output
        elif (self.counter - 2) % 4 == 0:
            self.cur_model_output = self.cur_model_output + F(1 / 3) * model_output
        elif (self.counter - 3) % 4 == 0:
            model_output = self.cur_model_output + F(1 / 6) * model_output
            self.cur_model_output = 0
        cur_sample = self.cur_sample if self.cur_sample is not None else sample
        prev = self._prev(cur_sample, timestep, prev_timestep, model_output)
        self.counter += 1
        return prev

    def step_plms(self, model_output, timestep, sample):
        T = self.cfg["num_train_timesteps"]
        prev_timestep = timestep - T // self.num_inference_steps
        if self.counter != 1:
            self.ets = self.ets[-3:]
            self.ets.append(model_output)
        else:
            prev_timestep = timestep
            timestep = timestep + T // self.num_inference_steps
        e = self.ets
        if len(e) == 1 and self.counter == 0:
            self.cur_sample = sample
        elif len(e) == 1 and self.counter == 1:
            model_output = (model_output + e[-1]) / F(2)
            sample = self.cur_sample
            self.cur_sample = None
        elif len(e) == 2:
            model_output = (F(3) * e[-1] - e[-2]) / F(2)
        elif len(e) == 3:
            model_output = (F(23) * e[-1] - F(16) * e[-2] + F(5) * e[-3]) / F(12)
        else:
            model_output = F(1 / 24) * (F(55) * e[-1] - F(59) * e[-2] + F(37) * e[-3] - F(9) * e[-4])
        prev = self._prev(sample, timestep, prev_timestep, model_output)
        self.counter += 1
        return prev

    def _prev(self, sample, timestep, prev_timestep, model_output):
        apt = self.alphas_cumprod[timestep]
        aptp = self.alphas_cumprod[prev_timestep] if prev_timestep >= 0 else self.final_alpha_cumprod
        bpt = F(F(1) - apt)
        bptp = F(F(1) - aptp)
        if self.cfg["prediction_type"] == "v_prediction":
            model_output = np.sqrt(apt) * model_output + np.sqrt(bpt) * sample
        sample_coeff = np.sqrt(F(aptp / apt))
        denom = F(F(apt * np.sqrt(bptp)) + np.sqrt(F(F(apt * bpt) * aptp)))
        return sample_coeff * sample - (F(aptp - apt) * model_output) / denom


class LCMScheduler(_AlphaCommon):
    def __init__(self, cfg):
        super().__init__(cfg)
        self.final_alpha_cumprod = F(1.0) if cfg["set_alpha_to_one"] else self.alphas_cumprod[0]
        self.step_index = None

    def set_timesteps(self, n=None, timesteps=None, strength=1.0):
        """strength: LatentConsistencyModelImg2ImgPipeline's (the schedule is cut to original_inference_steps *
        strength; custom timesteps lose their first t_start, as the img2img pipelines' get_timesteps)."""
        cfg = self.cfg
        orig = cfg["original_inference_steps"]
        k = cfg["num_train_timesteps"] // orig
        origin = np.asarray(list(range(1, int(orig * strength) + 1))) * k - 1
        if timesteps is not None:
            train = set(origin)
            assert all(timesteps[i] < timesteps[i - 1] for i in range(1, len(timesteps)))
            assert all(t in train for t in timesteps[1:]) and timesteps[0] == cfg["num_train_timesteps"] - 1
            assert len(timesteps) <= orig
            timesteps = np.array(timesteps, dtype=np.int64)
            self.num_inference_steps = len(timesteps)
            self.custom_timesteps = True
            init_timestep = min(int(self.num_inference_steps * strength), self.num_inference_steps)
            t_start = max(self.num_inference_steps - init_timestep, 0)
            self.timesteps = timesteps[t_start:].astype(np.int64)
            self.step_index = None
            return
        skipping_step = len(origin) // n
        assert skipping_step >= 1 and n <= orig
        self.num_inference_steps = n
        origin = origin[::-1].copy()
        idx = np.floor(np.linspace(0, len(origin), num=n, endpoint=False)).astype(np.int64)
        self.timesteps = origin[idx].astype(np.int64)
        self.step_index = None

    def step(self, model_output, t, sample, draw):
        cfg = self.cfg
        if self.step_index is None:
            self.step_index = init_step_index(self.timesteps, t)
        psi = self.step_index + 1
        prev_t = self.timesteps[psi] if psi < len(self.timesteps) else t
        apt = self.alphas_cumprod[t]
        aptp = self.alphas_cumprod[prev_t] if prev_t >= 0 else self.final_alpha_cumprod
        bpt = F(F(1) - apt)
        bptp = F(F(1) - aptp)
        scaled = F(F(t) * F(cfg["timestep_scaling"]))
        den = F(F(scaled * scaled) + F(0.25))
        c_skip = F(F(F(1) / den) * F(0.25))  # python float / tensor: tensor.reciprocal() * other
        c_out = F(scaled / np.sqrt(den))
        pt = cfg["prediction_type"]
        if pt == "epsilon":
            x0 = (sample - np.sqrt(bpt) * model_output) / np.sqrt(apt)
        elif pt == "sample":
            x0 = model_output
        elif pt == "v_prediction":
            x0 = np.sqrt(apt) * sample - np.sqrt(bpt) * model_output
        if cfg["thresholding"]:
            x0 = threshold_sample(x0, cfg["dynamic_thresholding_ratio"], cfg["sample_max_value"])
        elif cfg["clip_sample"]:
            r = F(cfg["clip_sample_range"])
            x0 = np.clip(x0, -r, r)
        denoised = c_out * x0 + c_skip * sample
        if self.step_index != self.num_inference_steps - 1:
            noise = draw()
            prev = np.sqrt(aptp) * denoised + np.sqrt(bptp) * noise
        else:
            prev = denoised
        self.step_index += 1
        return prev


def log32(a):
    """torch.log of a float32 tensor (SLEEF on every element)."""
    a = np.asarray(a, dtype=np.float32)
    return np.array([sleef_log32(v) for v in a.ravel()], dtype=np.float32).reshape(a.shape)


def lerp_half32(start, end):
    """torch.lerp(start, end, 0.5) (float32): weight 0.5 takes end - (end - start) * (1 - 0.5); the product is exact."""
    with np.errstate(invalid="ignore"):
        return (end - (end - start) * F(0.5)).astype(np.float32)


def repeat_ends(x):
    return np.concatenate([x[:1], np.repeat(x[1:], 2), x[-1:]])


class _KDPM2Common(_SigmaCommon):
    def __init__(self, cfg):
        super().__init__(cfg)
        self.step_index = None

    def _base_schedule(self, n):
        cfg = self.cfg
        timesteps = spacing_float(cfg, n)
        sigmas = np.array(train_sigmas(self.alphas_cumprod))
        log_sigmas = np.log(sigmas)
        sigmas = np.interp(timesteps, np.arange(0, len(sigmas)), sigmas)
        if cfg["use_karras_sigmas"]:
            sigmas = karras(sigmas, n)
            timesteps = np.array([sigma_to_t(sigma, log_sigmas) for sigma in sigmas]).round()  # float64
        self.log_sigmas = log_sigmas  # float32 (torch.from_numpy of numpy's float32 log)
        sigmas = np.concatenate([sigmas, [0.0]]).astype(np.float32)
        return timesteps, sigmas

    def _interp_timesteps(self, sigmas_interpol, dtype):
        # _sigma_to_t called with torch tensors: every op after the float64 log is a torch float32 op; np.array of the
        # 0-d float32 results, then .to(timesteps.dtype)
        t = np.array([sigma_to_t_torch(si, self.log_sigmas) for si in sigmas_interpol], dtype=np.float32)
        return t.astype(dtype)

    def add_noise(self, original, noise, timesteps):
        idx = []
        for t in timesteps:
            m = np.nonzero(self.timesteps == t)[0]
            idx.append(int(m[1] if len(m) > 1 else m[0]))  # index_for_timestep with an empty _index_counter
        sigma = self.sigmas[idx].reshape(-1, 1, 1, 1)
        return original + noise * sigma

    @property
    def first_order(self):
        return self.sample is None


def _x0(pt, model_output, sample, sigma_input):
    if pt == "epsilon":
        return sample - sigma_input * model_output
    if pt == "v_prediction":
        return v_pred_x0(model_output, sample, sigma_input)
    raise NotImplementedError(pt)


class KDPM2DiscreteScheduler(_KDPM2Common):
    def set_timesteps(self, n):
        timesteps, sigmas = self._base_schedule(n)
        with np.errstate(invalid="ignore", divide="ignore"):
            sigmas_interpol = exp32(lerp_half32(log32(sigmas), log32(np.roll(sigmas, 1))))
        self.sigmas = repeat_ends(sigmas)
        self.sigmas_interpol = repeat_ends(sigmas_interpol)
        ti = self._interp_timesteps(sigmas_interpol, timesteps.dtype)
        inter = np.stack([ti[1:-1], timesteps[1:]], axis=-1).reshape(-1)
        self.timesteps = np.concatenate([timesteps[:1], inter])
        self.sample = None
        self.step_index = None

    def scale_model_input(self, sample, t):
        if self.step_index is None:
            self.step_index = init_step_index(self.timesteps, t)
        sigma = self.sigmas[self.step_index] if self.first_order else self.sigmas_interpol[self.step_index]
        return sample / np.sqrt(F(sigma * sigma + F(1)))

    def step(self, model_output, t, sample, draw):
        if self.step_index is None:
            self.step_index = init_step_index(self.timesteps, t)
        i = self.step_index
        first = self.first_order
        if first:
            sigma, sigma_interpol, sigma_next = self.sigmas[i], self.sigmas_interpol[i + 1], self.sigmas[i + 1]
        else:
            sigma, sigma_interpol, sigma_next = self.sigmas[i - 1], self.sigmas_interpol[i], self.sigmas[i]
        sigma_hat = F(sigma * F(1))
        x0 = _x0(self.cfg["prediction_type"], model_output, sample, sigma_hat if first else sigma_interpol)
        if first:
            derivative = (sample - x0) / sigma_hat
            dt = F(sigma_interpol - sigma_hat)
            self.sample = sample
        else:
            derivative = (sample - x0) / sigma_interpol
            dt = F(sigma_next - sigma_hat)
            sample = self.sample
            self.sample = None
        self.step_index += 1
        return sample + derivative * dt


class KDPM2AncestralDiscreteScheduler(_KDPM2Common):
    def set_timesteps(self, n):
        timesteps, sigmas = self._base_schedule(n)
        with np.errstate(invalid="ignore", divide="ignore"):
            sn = np.roll(sigmas, -1)
            sn[-1] = 0.0
            s2, sn2 = sigmas * sigmas, sn * sn
            up = np.sqrt((sn2 * (s2 - sn2)) / s2)
            down = np.sqrt(sn2 - up * up)
            down[-1] = 0.0
            sigmas_interpol = exp32(lerp_half32(log32(sigmas), log32(down)))
        sigmas_interpol[-2:] = 0.0
        self.sigmas = repeat_ends(sigmas)
        self.sigmas_interpol = repeat_ends(sigmas_interpol)
        self.sigmas_up = repeat_ends(up)
        self.sigmas_down = repeat_ends(down)
        ti = self._interp_timesteps(sigmas_interpol, timesteps.dtype)
        inter = np.stack([ti[:-2], timesteps[1:]], axis=-1).reshape(-1)
        self.timesteps = np.concatenate([timesteps[:1], inter])
        self.sample = None
        self.step_index = None

    def scale_model_input(self, sample, t):
        if self.step_index is None:
            self.step_index = init_step_index(self.timesteps, t)
        sigma = self.sigmas[self.step_index] if self.first_order else self.sigmas_interpol[self.step_index - 1]
        return sample / np.sqrt(F(sigma * sigma + F(1)))

    def step(self, model_output, t, sample, draw):
        if self.step_index is None:
            self.step_index = init_step_index(self.timesteps, t)
        i = self.step_index
        first = self.first_order
        if first:
            sigma, sigma_interpol, sigma_up = self.sigmas[i], self.sigmas_interpol[i], self.sigmas_up[i]
            sigma_down = self.sigmas_down[i - 1]
        else:
            sigma, sigma_interpol, sigma_up = self.sigmas[i - 1], self.sigmas_interpol[i - 1], self.sigmas_up[i - 1]
            sigma_down = self.sigmas_down[i - 1]
        sigma_hat = F(sigma * F(1))
        noise = draw()
        x0 = _x0(self.cfg["prediction_type"], model_output, sample, sigma_hat if first else sigma_interpol)
        if first:
            derivative = (sample - x0) / sigma_hat
            dt = F(sigma_interpol - sigma_hat)
            self.sample = sample
            prev = sample + derivative * dt
        else:
            derivative = (sample - x0) / sigma_interpol
            dt = F(sigma_down - sigma_hat)
            sample = self.sample
            self.sample = None
            prev = sample + derivative * dt
            prev = prev + noise * sigma_up
        self.step_index += 1
        return prev


CLASSES = {c.__name__: c for c in [EulerDiscreteScheduler, EulerAncestralDiscreteScheduler, HeunDiscreteScheduler,
                                   LMSDiscreteScheduler, DDIMScheduler, DDPMScheduler, PNDMScheduler, LCMScheduler,
                                   KDPM2DiscreteScheduler, KDPM2AncestralDiscreteScheduler]}
