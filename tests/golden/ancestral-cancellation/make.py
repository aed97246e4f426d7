"""The numbers in tests/DiffusersSharp.Tests/Schedulers/AncestralCancellationTests.cs.

A numpy float32 transcription of diffusers 0.25.1's EulerAncestralDiscreteScheduler arithmetic on the cosine schedule
(betas_for_alpha_bar in float64 then float32; alphas_cumprod with a double accumulator, as torch's CPU cumprod kernel;
sigmas = ((1 - ac) / ac) ** 0.5 in float32; np.interp in float64; the step's sigma_up / sigma_down in float32).
The schedule (betas_for_alpha_bar, cumprod) is ../transcripts-common/schedules.py's, as the scheduler transcriptions'.
torch cannot be imported on this machine; Debian's python3-numpy runs it: /usr/bin/python3 make.py
"""
import os
import sys

import numpy as np

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "transcripts-common"))
from schedules import betas_for_alpha_bar, cumprod32  # noqa: E402

np.seterr(all="ignore")
N = 1000

betas = betas_for_alpha_bar(N)
alphas = (np.float32(1.0) - betas).astype(np.float32)
ac = cumprod32(alphas)
base = ((np.float32(1) - ac) / ac) ** np.float32(0.5)


def sigmas(spacing, n):
    if spacing == "linspace":
        ts = np.linspace(0, N - 1, n, dtype=np.float32)[::-1].copy()
    elif spacing == "leading":
        ts = (np.arange(0, n) * (N // n)).round()[::-1].copy().astype(np.float32)
    else:
        ts = np.arange(N, 0, -N / n).round().copy().astype(np.float32) - 1
    s = np.interp(ts, np.arange(0, N), base)
    return np.concatenate([s, [0.0]]).astype(np.float32)


s = sigmas("linspace", 4)
print("linspace 4 sigma bits:", [hex(int(v.view(np.int32))) for v in s])
for i in range(4):
    sf, st = s[i], s[i + 1]
    up = (st * st * (sf * sf - st * st) / (sf * sf)) ** np.float32(0.5)
    down = (st * st - up * up) ** np.float32(0.5)
    print(f"step {i}: sigma_up {float(up)!r} sigma_down {float(down)!r}")
for spacing in ["linspace", "leading", "trailing"]:
    hits = []
    for n in range(1, 1001):
        s = sigmas(spacing, n)
        sf, st = s[:-1], s[1:]
        up = (st * st * (sf * sf - st * st) / (sf * sf)) ** np.float32(0.5)
        down = (st * st - up * up) ** np.float32(0.5)
        if np.isnan(down).any():
            hits.append(n)
    print(spacing, "steps with a NaN sigma_down among 1-1000:", hits)
