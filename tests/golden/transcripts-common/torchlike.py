"""The numpy building blocks the model transcriptions share (../model-transcripts-*/make.py; the scheduler
transcriptions use its safetensors helpers, through schedules.py and directly).

Safetensors read/write, the layers (float64 maths on the weights Params.get returns), diffusers' activations, the
float32-as-torch sinusoidal timestep embedding, and the blocks of diffusers 0.25.1 that the conditional UNet and the
ControlNet transcribe alike (Attention, BasicTransformerBlock, Transformer2DModel, ResnetBlock2D, Downsample2D).

Each make.py keeps its own Params (how weights are made differs: sequential seeded draws or per-name seeds) and its
model-specific code. A Params has get(name, shape, kind) with kind one of "weight", "bias", "norm_weight", "norm_bias",
"embedding"; it returns the weight in the dtype the model computes in. Where two scripts computed a step differently
(the float32 exp of the timestep embedding, mish's softplus), the difference is a parameter here, so every script
writes the same numbers as before.

Imported by each make.py through sys.path (this folder), with sys.dont_write_bytecode set: no __pycache__ is left.
"""
import json
import math
import struct
import zlib

import numpy as np

F32 = np.float32


# ---------------------------------------------------------------- safetensors

def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        dt = {"F32": np.float32, "I64": np.int64, "F64": np.float64, "F16": np.float16}[v["dtype"]]
        b, e = v["data_offsets"]
        out[k] = np.frombuffer(data[base + b:base + e], dtype=dt).reshape(v["shape"]).copy()
    return out


def write_safetensors(path, tensors, metadata=None, widest_first=False):
    """Tensors sorted by name (widest_first: by dtype width, widest first, then name: the layout of the safetensors
    files torch wrote, golden B's), the header padded with spaces to a multiple of 8 bytes."""
    code = {np.dtype(np.float32): "F32", np.dtype(np.int64): "I64", np.dtype(np.float64): "F64",
            np.dtype(np.float16): "F16"}
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    if widest_first:
        names = sorted(tensors, key=lambda k: (-np.dtype(tensors[k].dtype).itemsize, k))
    else:
        names = sorted(tensors)
    for k in names:
        a = np.ascontiguousarray(tensors[k])
        b = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[k] = {"dtype": code[a.dtype], "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def err(actual, expected):
    """(max abs error, max error relative to max(|expected|, 1e-3))."""
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    assert a.shape == e.shape, (a.shape, e.shape)
    d = np.abs(a - e)
    return float(d.max()), float((d / np.maximum(np.abs(e), 1e-3)).max())


# ---------------------------------------------------------------- parameters

class SequentialParams:
    """Weights by state-dict name. With `rng` set, a missing weight is made (drawn from rng in forward order, stored
    in `dtype`: float16 models compute in float32 on the rounded weights). get returns float64."""

    def __init__(self, tensors=None, rng=None, dtype=F32):
        self.t = dict(tensors or {})
        self.rng = rng
        self.dtype = dtype
        self.used = set()

    def get(self, name, shape, kind):
        if name not in self.t:
            if self.rng is None:
                raise KeyError(name)
            self.t[name] = self.make(shape, kind)
        a = self.t[name]
        assert tuple(a.shape) == tuple(shape), (name, a.shape, shape)
        self.used.add(name)
        return a.astype(np.float64)

    def make(self, shape, kind):
        r = self.rng
        if kind == "weight":          # conv / linear weight: unit-variance outputs
            fan_in = int(np.prod(shape[1:]))
            a = r.standard_normal(shape) / math.sqrt(fan_in)
        elif kind == "bias":
            a = 0.1 * r.standard_normal(shape)
        elif kind == "norm_weight":
            a = 1.0 + 0.1 * r.standard_normal(shape)
        elif kind == "norm_bias":
            a = 0.1 * r.standard_normal(shape)
        elif kind == "embedding":
            a = r.standard_normal(shape)
        elif kind == "fourier":       # GaussianFourierProjection: randn(embedding_size) * 16
            a = 16.0 * r.standard_normal(shape)
        else:
            raise ValueError(kind)
        return a.astype(self.dtype)


class NamedSeedParams:
    """Weights by diffusers state-dict name: stored ones (every stored weight must be read: check_all_used), else,
    with a seed, made on first use (seeded by name, float32, scaled so that activations stay O(1)). get returns them
    in compute_dtype; a subclass may scale some made weights (weight_scale)."""

    compute_dtype = np.float64

    def __init__(self, stored=None, seed=None):
        self.stored = dict(stored or {})
        self.made = {}
        self.used = set()
        self.seed = seed

    def weight_scale(self, name):
        """The factor a made "weight" kind is drawn at (1: unit-variance output for unit-variance input)."""
        return 1.0

    def get(self, name, shape, kind):
        shape = tuple(int(s) for s in shape)
        self.used.add(name)
        if name in self.stored:
            a = self.stored[name]
            assert a.shape == shape, (name, a.shape, shape)
            return a.astype(self.compute_dtype)
        assert self.seed is not None, f"missing weight {name}"
        if name not in self.made:
            rng = np.random.RandomState((zlib.crc32(name.encode()) + 7919 * self.seed) % (2 ** 32))
            if kind == "weight":        # conv / linear weight
                a = rng.standard_normal(shape) / math.sqrt(int(np.prod(shape[1:])))
                scale = self.weight_scale(name)
                if scale != 1.0:
                    a = a * scale
            elif kind == "norm_weight":
                a = 1.0 + 0.1 * rng.standard_normal(shape)
            elif kind == "embedding":
                a = rng.standard_normal(shape)
            else:                       # biases, norm shifts
                a = 0.1 * rng.standard_normal(shape)
            self.made[name] = a.astype(F32)
        return self.made[name].astype(self.compute_dtype)

    def weights(self):
        """The stored weights read and the made ones."""
        out = {k: v for k, v in self.stored.items() if k in self.used}
        out.update(self.made)
        return out

    def check_all_used(self):
        unused = sorted(set(self.stored) - self.used)
        assert not unused, f"weights never read: {unused[:10]}"


def check_intermediates(exp, prefix, inter, report, with_rel=False):
    """Compares the intermediates a hook collected with those the golden file holds (whole, or as #corner8, #chmean
    and #chstd summaries) into report[key] = (max abs, max rel or None); with_rel: a whole one's max rel as well.
    Returns the largest max abs."""
    worst = 0.0
    for k, v in inter.items():
        key = prefix + k
        if key in exp:
            a, r = err(v, exp[key])
            report[key] = (a, r if with_rel else None)
        elif key + "#corner8" in exp:
            dims = tuple(d for d in range(v.ndim) if d != 1)
            a = max(err(v[:, :, :8, :8], exp[key + "#corner8"])[0], err(v.mean(dims), exp[key + "#chmean"])[0],
                    err(v.std(dims, ddof=1), exp[key + "#chstd"])[0])
            report[key] = (a, None)
        else:
            continue
        worst = max(worst, a)
    return worst


# ---------------------------------------------------------------- layers

def linear(P, name, x, fin, fout, bias=True):
    y = x @ P.get(name + ".weight", (fout, fin), "weight").T
    if bias:
        y = y + P.get(name + ".bias", (fout,), "bias")
    return y


def conv2d(P, name, x, cin, cout, k, stride=1, padding=0, bias=True):
    assert x.shape[1] == cin, (name, x.shape, cin)
    w = P.get(name + ".weight", (cout, cin, k, k), "weight")
    if padding:
        x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
    y = np.einsum("nchwij,ocij->nohw", win, w, optimize=True)
    if bias:
        y = y + P.get(name + ".bias", (cout,), "bias")[None, :, None, None]
    return y


def group_norm(P, name, x, groups, eps):
    n, c = x.shape[:2]
    g = x.reshape(n, groups, -1)
    mean = g.mean(-1, keepdims=True)
    var = g.var(-1, keepdims=True)
    y = ((g - mean) / np.sqrt(var + eps)).reshape(x.shape)
    shape = (1, c) + (1,) * (x.ndim - 2)
    return y * P.get(name + ".weight", (c,), "norm_weight").reshape(shape) + \
        P.get(name + ".bias", (c,), "norm_bias").reshape(shape)


def layer_norm(P, name, x, eps=1e-5):
    """LayerNorm over the last axis (its width: x.shape[-1])."""
    c = x.shape[-1]
    mean = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    y = (x - mean) / np.sqrt(var + eps)
    return y * P.get(name + ".weight", (c,), "norm_weight") + P.get(name + ".bias", (c,), "norm_bias")


# ---------------------------------------------------------------- activations

def erf(x):
    """math.erf elementwise, in x's dtype (float64 inputs: exact math.erf values)."""
    return np.vectorize(math.erf, otypes=[np.float64])(x).astype(x.dtype)


def softplus_logaddexp(x):
    return np.logaddexp(0.0, x)


def softplus_torch(x):
    """torch's softplus with its threshold 20 (x itself above it), log1p(exp(x)) below."""
    return np.where(x > 20, x, np.log1p(np.exp(np.minimum(x, 20))))


def activation(name, x, softplus=softplus_logaddexp):
    """diffusers' get_activation (the name lowercased): silu / swish, mish (x * tanh(softplus(x))), gelu (exact), relu."""
    name = name.lower()
    if name in ("silu", "swish"):
        return x / (1.0 + np.exp(-x))
    if name == "mish":
        return x * np.tanh(softplus(x))
    if name == "gelu":
        return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))
    if name == "relu":
        return np.maximum(x, 0.0)
    raise ValueError(name)


def silu(x):
    return activation("silu", x)


# ---------------------------------------------------------------- samplers

def upsample_nearest2x(x):
    return x.repeat(2, axis=2).repeat(2, axis=3)


def avg_pool2(v):
    """AvgPool2d(2, 2) of an even-sized input, as the sum of the four taps over 4."""
    return (v[:, :, 0::2, 0::2] + v[:, :, 1::2, 0::2] + v[:, :, 0::2, 1::2] + v[:, :, 1::2, 1::2]) / 4


def downsample(P, name, x, padding):
    """downsampling.Downsample2D(use_conv=True): a stride-2 3x3 conv; padding 0 pads right and bottom by one first."""
    c = x.shape[1]
    if padding == 0:
        x = np.pad(x, ((0, 0), (0, 0), (0, 1), (0, 1)))
    return conv2d(P, name + ".conv", x, c, c, 3, stride=2, padding=padding)


# ---------------------------------------------------------------- timestep embeddings

def timestep_embedding(t, dim, flip_sin_to_cos, shift, scale=1, max_period=10000, exp_dtype=np.float64):
    """embeddings.get_timestep_embedding in torch's float32 steps (exponent, exp, t * freq, scale, sin / cos), float32.
    exp_dtype: the dtype exp is taken in before the float32 rounding (float32: numpy's float32 exp)."""
    half = dim // 2
    exponent = (F32(-math.log(max_period)) * np.arange(half, dtype=F32)).astype(F32)
    exponent = (exponent / F32(half - shift)).astype(F32)
    freqs = np.exp(exponent.astype(exp_dtype)).astype(F32)
    arg = (np.asarray(t, dtype=np.float64).astype(F32).reshape(-1)[:, None] * freqs[None, :]).astype(F32)
    arg = (F32(scale) * arg).astype(F32)
    emb = np.concatenate([np.sin(arg.astype(np.float64)), np.cos(arg.astype(np.float64))], -1).astype(F32)
    if flip_sin_to_cos:
        emb = np.concatenate([emb[:, half:], emb[:, :half]], -1)
    if dim % 2 == 1:
        emb = np.pad(emb, ((0, 0), (0, 1)))
    return emb


def timestep_embedding_module(P, name, x, cin, dim, act_fn="silu", post_act=None, cond=None, cond_dim=None,
                              out_dim=None, softplus=softplus_logaddexp):
    """embeddings.TimestepEmbedding: [cond_proj,] linear_1, act, linear_2[, post_act]."""
    if cond_dim is not None and cond is not None:
        x = x + linear(P, name + ".cond_proj", cond, cond_dim, cin, bias=False)
    elif cond_dim is not None:
        P.get(name + ".cond_proj.weight", (cin, cond_dim), "weight")
    x = linear(P, name + ".linear_1", x, cin, dim)
    x = activation(act_fn, x, softplus)
    x = linear(P, name + ".linear_2", x, dim, out_dim or dim)
    if post_act is not None:
        x = activation(post_act, x, softplus)
    return x


# ---------------------------------------------------------------- attention

def attention(P, name, x, ctx, heads, dim_head, ctx_dim, mask=None, qkv_bias=False):
    """attention_processor.Attention (AttnProcessor): to_out.0 with bias, scale dim_head**-0.5. upcast_attention only
    changes the dtype of the scores (float64 here). mask: the additive (B, 1, S) bias, added to every head's scores
    (baddbmm), of the same key length here."""
    inner = heads * dim_head
    dim = x.shape[-1]
    q = linear(P, name + ".to_q", x, dim, inner, bias=qkv_bias)
    k = linear(P, name + ".to_k", ctx, ctx_dim, inner, bias=qkv_bias)
    v = linear(P, name + ".to_v", ctx, ctx_dim, inner, bias=qkv_bias)
    b, n, _ = q.shape
    s = k.shape[1]
    q = q.reshape(b, n, heads, dim_head).transpose(0, 2, 1, 3)
    k = k.reshape(b, s, heads, dim_head).transpose(0, 2, 1, 3)
    v = v.reshape(b, s, heads, dim_head).transpose(0, 2, 1, 3)
    scores = q @ k.transpose(0, 1, 3, 2) * dim_head ** -0.5
    if mask is not None:
        assert mask.shape[-1] == s, "diffusers pads a mask of another key length, then fails to broadcast it"
        scores = scores + mask[:, None, :, :]
    scores = scores - scores.max(-1, keepdims=True)
    p = np.exp(scores)
    p = p / p.sum(-1, keepdims=True)
    o = (p @ v).transpose(0, 2, 1, 3).reshape(b, n, inner)
    return linear(P, name + ".to_out.0", o, inner, dim)


def spatial_attention(P, name, x, dim_head, groups, eps, rescale=1.0):
    """Attention(C, heads=C // dim_head, dim_head, norm_num_groups=groups, residual_connection=True, bias=True,
    upcast_softmax=True) on a 4-d input (AttnDownBlock2D, AttnUpBlock2D, the UNetMidBlock2D attention); groups None:
    no GroupNorm."""
    b, c, hh, ww = x.shape
    hs = x.reshape(b, c, hh * ww)
    if groups is not None:
        hs = group_norm(P, name + ".group_norm", hs, groups, eps)
    hs = hs.transpose(0, 2, 1)
    out = attention(P, name, hs, hs, c // dim_head, dim_head, c, qkv_bias=True)
    out = out.transpose(0, 2, 1).reshape(b, c, hh, ww)
    return (out + x) / rescale


def basic_transformer_block(P, name, x, ehs, heads, dim_head, cross_dim, only_cross, self_mask=None, enc_mask=None):
    """attention.BasicTransformerBlock (layer_norm, GEGLU feed-forward of 4 * dim). self_mask goes to attn1,
    enc_mask to attn2."""
    dim = x.shape[-1]
    h = layer_norm(P, name + ".norm1", x)
    if only_cross:   # attn1 attends to the encoder hidden states
        x = attention(P, name + ".attn1", h, ehs, heads, dim_head, cross_dim, self_mask) + x
    else:
        x = attention(P, name + ".attn1", h, h, heads, dim_head, dim, self_mask) + x
    h = layer_norm(P, name + ".norm2", x)
    x = attention(P, name + ".attn2", h, ehs, heads, dim_head, cross_dim, enc_mask) + x
    h = layer_norm(P, name + ".norm3", x)
    # FeedForward: GEGLU(dim, 4*dim) -> Dropout -> Linear(4*dim, dim)
    inner = dim * 4
    hg = linear(P, name + ".ff.net.0.proj", h, dim, inner * 2)
    h = hg[..., :inner] * activation("gelu", hg[..., inner:])
    return linear(P, name + ".ff.net.2", h, inner, dim) + x


def transformer_2d(P, name, x, ehs, heads, depth, cross_dim, groups, use_linear, only_cross, self_mask=None,
                   enc_mask=None, hook=None):
    """transformer_2d.Transformer2DModel(heads, in_channels // heads, ...) on continuous inputs (GroupNorm eps 1e-6)."""
    b, c, hh, ww = x.shape
    dim_head = c // heads
    inner = heads * dim_head
    residual = x
    h = group_norm(P, name + ".norm", x, groups, 1e-6)
    if not use_linear:
        h = conv2d(P, name + ".proj_in", h, c, inner, 1)
        h = h.transpose(0, 2, 3, 1).reshape(b, hh * ww, inner)
    else:
        h = h.transpose(0, 2, 3, 1).reshape(b, hh * ww, c)
        h = linear(P, name + ".proj_in", h, c, inner)
    for d in range(depth):
        h = basic_transformer_block(P, f"{name}.transformer_blocks.{d}", h, ehs, heads, dim_head, cross_dim, only_cross,
                                    self_mask, enc_mask)
        if hook is not None:
            hook(f"{name}.transformer_blocks.{d}", h)
    if not use_linear:
        h = h.reshape(b, hh, ww, inner).transpose(0, 3, 1, 2)
        h = conv2d(P, name + ".proj_out", h, inner, c, 1)
    else:
        h = linear(P, name + ".proj_out", h, inner, c)
        h = h.reshape(b, hh, ww, inner).transpose(0, 3, 1, 2)
    return h + residual


# ---------------------------------------------------------------- resnet

def resnet(P, name, x, temb, cout, a, updown=None, softplus=softplus_logaddexp):
    """resnet.ResnetBlock2D (pre-norm; time_embedding_norm a["tss"] "default" or "scale_shift"; conv_shortcut when
    channels change; divided by a.get("out_scale", 1)). a: groups, eps, act, tss[, skip_time_act, out_scale].
    updown "down": Downsample2D(use_conv=False), a 2x2 average pool of the input and of the hidden states after norm1
    and the activation; "up": Upsample2D(use_conv=False), nearest x2 of both."""
    cin = x.shape[1]
    h = activation(a["act"], group_norm(P, name + ".norm1", x, a["groups"], a["eps"]), softplus)
    if updown == "down":
        x, h = avg_pool2(x), avg_pool2(h)
    elif updown == "up":
        x, h = upsample_nearest2x(x), upsample_nearest2x(h)
    h = conv2d(P, name + ".conv1", h, cin, cout, 3, padding=1)
    scale_shift = a["tss"] == "scale_shift"
    t = activation(a["act"], temb, softplus) if not a.get("skip_time_act", False) else temb
    t = linear(P, name + ".time_emb_proj", t, temb.shape[-1], cout * 2 if scale_shift else cout)[:, :, None, None]
    if not scale_shift:
        h = h + t
    h = group_norm(P, name + ".norm2", h, a["groups"], a["eps"])
    if scale_shift:
        h = h * (1 + t[:, :cout]) + t[:, cout:]
    h = conv2d(P, name + ".conv2", activation(a["act"], h, softplus), cout, cout, 3, padding=1)
    if cin != cout:
        x = conv2d(P, name + ".conv_shortcut", x, cin, cout, 1)
    return (x + h) / a.get("out_scale", 1.0)
