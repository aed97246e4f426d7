"""Writes transcripts.json / transcripts.safetensors: scheduler cases golden/schedulers.json (section B) lacks,
computed by transcription.py (imported as sched), a numpy float32 transcription of diffusers 0.25.1 (torch 1.13 CPU
semantics) on ../transcripts-common/schedules.py. Inputs are golden B's torch-made tensors.
Run: /usr/bin/python3 make.py  (add --validate to only compare with golden B)."""
import json
import os
import sys

import numpy as np

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "..")
sys.path.insert(0, os.path.join(GOLDEN, "transcripts-common"))

import transcription as sched  # noqa: E402
from schedules import F, GoldenBInputs, diffusers_config, golden_b, rel_err  # noqa: E402
from torchlike import write_safetensors  # noqa: E402

G, GOLDEN_B_DOC = golden_b()
GJ = GOLDEN_B_DOC["cases"]


def golden_noise_pool():
    """seed -> the torch draws golden B recorded for that generator seed (each [1,4,8,8], consecutive)."""
    pool = {}
    for name, c in GJ.items():
        if c["generator_seed"] is not None and f"{name}/loop/noise" in G:
            pool[c["generator_seed"]] = G[f"{name}/loop/noise"]
    return pool


NOISE = golden_noise_pool()
_IN = GoldenBInputs(G)
INIT, E, V, ORIG, ANOISE = _IN.init_randn, _IN.E, _IN.V, _IN.original, _IN.noise


def full_config(cls, kwargs):
    return diffusers_config(sched.DEFAULTS[cls], {**sched.DEFAULTS[cls], **kwargs}, kwargs, cls)


def run_case(name, cls, kwargs, step_kwargs=None, seed=None, loop_n=10, ns=(4, 10, 25, 50), custom=None, alpha_add_noise_t=(0, 499, 999)):
    step_kwargs = step_kwargs or {}
    cfg = full_config(cls, kwargs)
    C = sched.CLASSES[cls]
    T, meta = {}, {}
    s0 = C(cfg)
    T["betas"], T["alphas_cumprod"] = s0.betas, s0.alphas_cumprod
    sets = {}
    for n in ns:
        s = C(cfg)
        s.set_timesteps(n)
        T[f"timesteps_N{n}"] = s.timesteps
        if s.sigmas is not None:
            T[f"sigmas_N{n}"] = s.sigmas
        sets[str(n)] = {"num_timesteps": int(len(s.timesteps)),
                        "timesteps_dtype": "torch.float64" if s.timesteps.dtype == np.float64 else
                        "torch.float32" if s.timesteps.dtype == np.float32 else "torch.int64",
                        "init_noise_sigma": float(s.init_noise_sigma), "num_inference_steps_attr": n}
    def set_loop(s):
        if custom is not None:
            s.set_timesteps(timesteps=list(custom))
        else:
            s.set_timesteps(loop_n)

    # loop
    s = C(cfg)
    set_loop(s)
    pool = NOISE[seed] if seed is not None else np.zeros((0, 1, 4, 8, 8), np.float32)
    draws, draw_idx, cur = [], [], [0]

    def draw():
        assert len(draws) < len(pool), f"{name}: needs more than the {len(pool)} recorded draws of seed {seed}"
        draws.append(pool[len(draws)])
        draw_idx.append(cur[0])
        return draws[-1]

    x = INIT * F(s.init_noise_sigma)
    T["loop/init_randn"], T["loop/E"], T["loop/x_T"] = INIT, E, x
    learned = cls == "DDPMScheduler" and cfg["variance_type"] == "learned_range"
    if learned:
        T["loop/V"] = V
    scaled_l, mo_l, prev_l = [], [], []
    T["loop/timesteps"] = s.timesteps.copy()
    for i, t in enumerate(list(s.timesteps)):
        cur[0] = i
        scaled = s.scale_model_input(x, t)
        mo = F(0.1) * scaled + E
        if learned:
            mo = np.concatenate([mo, V], axis=1)
        x = s.step(mo, t, x, draw, **step_kwargs)
        assert x.dtype == np.float32, (name, i, x.dtype)
        scaled_l.append(scaled)
        mo_l.append(mo)
        prev_l.append(x)
    T["loop/scaled_model_input"] = np.stack(scaled_l)
    T["loop/model_output"] = np.stack(mo_l)
    T["loop/prev_sample"] = np.stack(prev_l)
    if draws:
        T["loop/noise"] = np.stack(draws)
        T["loop/noise_step_index"] = np.array(draw_idx, dtype=np.int64)
    # add_noise
    s = C(cfg)
    set_loop(s)
    if s.sigma_based:
        L = len(s.timesteps)
        ts = s.timesteps[[0, L // 2, L - 1]].copy()
        frm = f"scheduler.timesteps[[0, {L // 2}, {L - 1}]] after set_timesteps({loop_n})"
    else:
        ts = np.array(alpha_add_noise_t, dtype=np.int64)
        frm = "fixed"
    if custom is not None:
        frm += f" (custom timesteps {list(custom)})"
    T["add_noise/original"], T["add_noise/noise"], T["add_noise/timesteps"] = ORIG, ANOISE, ts
    T["add_noise/noisy"] = s.add_noise(ORIG, ANOISE, ts)
    if s.has_velocity:
        T["get_velocity/velocity"] = s.get_velocity(ORIG, ANOISE, ts)
    for k, v in T.items():
        assert np.all(np.isfinite(v)), f"{name}: {k} is not finite"
    meta = {"class": cls, "config": cfg, "constructor_kwargs": kwargs, "step_kwargs": step_kwargs,
            "generator_seed": seed, "loop_num_inference_steps": len(custom) if custom is not None else loop_n,
            "custom_timesteps": list(custom) if custom is not None else None,
            "sample_shape": [1, 4, 8, 8]}
    if hasattr(s, "final_alpha_cumprod"):
        meta["final_alpha_cumprod"] = float(s.final_alpha_cumprod)
    meta.update({"set_timesteps": sets, "loop_init_noise_sigma": float(s.init_noise_sigma),
                 "noise_draws": len(draws), "loop_steps": len(prev_l), "add_noise_timesteps_from": frm})
    if s.has_velocity:
        meta["get_velocity"] = "same original/noise/timesteps as add_noise"
    return T, meta


def validate():
    worst_all = 0.0
    for name, c in GJ.items():
        if c["class"] not in sched.CLASSES:
            continue
        ns = tuple(int(n) for n in c["set_timesteps"])
        kw = {k: v for k, v in c["constructor_kwargs"].items()}
        T, meta = run_case(name, c["class"], kw, c["step_kwargs"], c["generator_seed"], c["loop_num_inference_steps"], ns)
        worst, exact_fail = 0.0, []
        for k, v in T.items():
            g = G[f"{name}/{k}"]
            assert g.shape == v.shape and g.dtype == v.dtype, (name, k, g.shape, v.shape, g.dtype, v.dtype)
            if k in ("betas", "alphas_cumprod") or k.startswith("timesteps_") or k == "loop/timesteps" or k.startswith("loop/noise"):
                if not np.array_equal(g, v):
                    exact_fail.append(k)
                continue
            rel = rel_err(v, g)
            worst = max(worst, rel)
            if rel > 1e-6:
                exact_fail.append(f"{k}:{rel:.2e}")
        for n, sv in c["set_timesteps"].items():
            mine = meta["set_timesteps"][n]
            if abs(mine["init_noise_sigma"] - sv["init_noise_sigma"]) > 1e-6 * max(1, sv["init_noise_sigma"]) or mine["num_timesteps"] != sv["num_timesteps"] or mine["timesteps_dtype"] != sv["timesteps_dtype"]:
                exact_fail.append(f"set_timesteps {n}: {mine} vs {sv}")
        assert meta["noise_draws"] == c["noise_draws"], (name, meta["noise_draws"])
        worst_all = max(worst_all, worst)
        print(f"{name:55s} max rel err {worst:.3e}  {'OK' if not exact_fail else 'MISMATCH ' + str(exact_fail)}")
    return worst_all


if __name__ == "__main__":
    w = validate()
    print("worst", w)
    if "--validate" in sys.argv:
        sys.exit(0)
    from cases import CASES
    tensors, cases = {}, {}
    for spec in CASES:
        T, meta = run_case(**spec)
        name = spec["name"]
        meta["tensors"] = {f"{name}/{k}": {"dtype": str(v.dtype), "shape": list(v.shape)} for k, v in sorted(T.items())}
        cases[name] = meta
        for k, v in T.items():
            tensors[f"{name}/{k}"] = v
        print("wrote", name, meta["noise_draws"], "draws")
    out = {"source": "numpy float32 transcription of diffusers 0.25.1 (sched.py), inputs from golden schedulers.safetensors",
           "validated_against_golden_B_max_rel_err": w,
           "recipe": GOLDEN_B_DOC["recipe"], "cases": cases}
    with open(os.path.join(HERE, "transcripts.json"), "w") as fh:
        json.dump(out, fh, indent=1, sort_keys=False, allow_nan=False, default=lambda o: "inf" if o == float("inf") else o)
        fh.write("\n")
    write_safetensors(os.path.join(HERE, "transcripts.safetensors"), tensors, {"format": "pt"}, widest_first=True)
