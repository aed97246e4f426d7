using DiffusersSharp.Models.Lora;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>Downsample2D</c> (models/downsampling.py, v0.25.1): a stride-2 3×3 convolution
/// (<c>useConv</c>) or a 2×2 average pool. With <c>padding = 0</c> the input is first padded by
/// one on the right and bottom (the asymmetric pad of old checkpoints, e.g. google/ddpm-cat-256).
/// Weight names: <c>conv.weight</c>, <c>conv.bias</c> (diffusers' <c>name="conv"</c> also registers the
/// same convolution a second time as <c>Conv2d_0</c>; that alias is not reproduced).
/// </summary>
public sealed class Downsample2D : nn.Module
{
    private readonly nn.Module<Tensor, Tensor>? norm;
    private readonly nn.Module<Tensor, Tensor> conv;

    /// <summary>diffusers' <c>channels</c>: the input channels.</summary>
    public int Channels { get; }
    /// <summary>diffusers' <c>out_channels</c>: the output channels.</summary>
    public int OutChannels { get; }
    /// <summary>diffusers' <c>use_conv</c>: a stride-2 convolution (false: 2×2 average pooling).</summary>
    public bool UseConv { get; }
    /// <summary>diffusers' <c>padding</c>: the convolution's padding (0: pad right and bottom by one first).</summary>
    public int Padding { get; }

    /// <param name="normType">null or "ln_norm" (a LayerNorm over channels before the conv).</param>
    public Downsample2D(int channels, bool useConv = false, int? outChannels = null, int padding = 1, string name = "conv",
        int kernelSize = 3, string? normType = null, double eps = 1e-5, bool elementwiseAffine = true, bool bias = true)
        : base(nameof(Downsample2D))
    {
        Channels = channels;
        OutChannels = outChannels ?? channels;
        UseConv = useConv;
        Padding = padding;
        norm = normType switch
        {
            null => null,
            "ln_norm" => nn.LayerNorm(channels, eps, elementwiseAffine, dtype: Layers.BuildDType),
            _ => throw new ArgumentException($"Downsample2D: unknown or unsupported norm_type '{normType}' (supported: null, ln_norm)"),
        };
        if (useConv)
            conv = new LoRACompatibleConv(channels, OutChannels, kernelSize, stride: 2, padding: padding, bias: bias);
        else
        {
            if (channels != OutChannels)
                throw new ArgumentException($"Downsample2D: average pooling needs out_channels ({OutChannels}) == channels ({channels})");
            conv = nn.AvgPool2d(kernel_size: 2, stride: 2);
        }
        RegisterComponents();
    }

    /// <summary>Halves height and width; the caller owns the result.</summary>
    public Tensor Forward(Tensor hiddenStates)
    {
        if (hiddenStates.shape[1] != Channels)
            throw new ArgumentException($"Downsample2D expects {Channels} channels, got input of shape [{string.Join(", ", hiddenStates.shape)}]");
        // a scope of its own: the permuted and padded temporaries are held while the convolution reads them (a caller may
        // have none open: docs/ARCHITECTURE.md, "Tensor ownership")
        using var scope = torch.NewDisposeScope();
        var h = hiddenStates;
        if (norm is not null)
            h = norm.forward(h.permute(0, 2, 3, 1)).permute(0, 3, 1, 2);
        if (UseConv && Padding == 0)
            h = nn.functional.pad(h, new long[] { 0, 1, 0, 1 }, PaddingModes.Constant, 0);
        return scope.MoveToOuter(conv.forward(h));
    }
}
