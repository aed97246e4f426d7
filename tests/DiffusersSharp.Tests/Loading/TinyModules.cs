using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Loading;

/// <summary>An attention block laid out like diffusers' <c>Attention</c> (group_norm, to_q/k/v, to_out.0).</summary>
internal sealed class TinyAttention : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE0044
    private GroupNorm group_norm;
    private Linear to_q, to_k, to_v;
    private ModuleList<nn.Module<Tensor, Tensor>> to_out;
#pragma warning restore IDE0044

    public TinyAttention(int c) : base(nameof(TinyAttention))
    {
        group_norm = nn.GroupNorm(2, c);
        to_q = nn.Linear(c, c); to_k = nn.Linear(c, c); to_v = nn.Linear(c, c);
        to_out = nn.ModuleList<nn.Module<Tensor, Tensor>>(nn.Linear(c, c), nn.Dropout(0.0));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => x;
}

/// <summary>A conv, a registered buffer and an attention block: small enough to hand-write weights for.</summary>
internal sealed class TinyNet : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE0044
    private Conv2d conv;
    private TinyAttention attn;
#pragma warning restore IDE0044

    public TinyNet() : base(nameof(TinyNet))
    {
        conv = nn.Conv2d(2, 4, 3);
        attn = new TinyAttention(4);
        RegisterComponents();
        register_buffer("scale", torch.ones(3));
    }

    public override Tensor forward(Tensor x) => x;

    /// <summary>Every parameter/buffer name with its shape (the state dict the loader must fill).</summary>
    public static readonly (string Name, long[] Shape)[] Keys =
    [
        ("attn.group_norm.bias", [4]), ("attn.group_norm.weight", [4]),
        ("attn.to_k.bias", [4]), ("attn.to_k.weight", [4, 4]),
        ("attn.to_out.0.bias", [4]), ("attn.to_out.0.weight", [4, 4]),
        ("attn.to_q.bias", [4]), ("attn.to_q.weight", [4, 4]),
        ("attn.to_v.bias", [4]), ("attn.to_v.weight", [4, 4]),
        ("conv.bias", [4]), ("conv.weight", [4, 2, 3, 3]),
        ("scale", [3]),
    ];

    /// <summary>A state dict whose tensor i holds i*1000 + 0, 1, 2, ... (exact in F16, BF16 up to 256).</summary>
    public static Dictionary<string, Tensor> Weights(ScalarType dtype = ScalarType.Float32, bool small = false)
    {
        var d = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        for (int i = 0; i < Keys.Length; i++)
        {
            var (name, shape) = Keys[i];
            long n = shape.Aggregate(1L, (a, b) => a * b);
            var t = torch.arange(n, ScalarType.Float32).add(small ? i : i * 1000).reshape(shape);
            d[name] = t.to(dtype);
        }
        return d;
    }
}
