using DiffusersSharp.Models.Lora;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>Upsample2D</c> (models/upsampling.py, v0.25.1): nearest-neighbour ×2 (or to
/// <c>outputSize</c>) followed by a 3×3 convolution (<c>useConv</c>), or a transposed
/// convolution (<c>useConvTranspose</c>). The convolution is named <c>conv</c> when
/// <c>name</c> is "conv", else <c>Conv2d_0</c>, as in diffusers.
/// </summary>
public sealed class Upsample2D : nn.Module
{
    private readonly nn.Module<Tensor, Tensor>? norm;
    private readonly nn.Module<Tensor, Tensor>? conv;
    private readonly nn.Module<Tensor, Tensor>? Conv2d_0;

    /// <summary>diffusers' <c>channels</c>: the input channels.</summary>
    public int Channels { get; }
    /// <summary>diffusers' <c>out_channels</c>: the output channels.</summary>
    public int OutChannels { get; }
    /// <summary>diffusers' <c>use_conv</c>: a 3×3 convolution after the interpolation.</summary>
    public bool UseConv { get; }
    /// <summary>
    /// diffusers' <c>use_conv_transpose</c>: a stride-2 transposed convolution instead of interpolation.
    /// </summary>
    public bool UseConvTranspose { get; }
    /// <summary>diffusers' <c>interpolate</c>: nearest-neighbour ×2 (false: only the convolution).</summary>
    public bool Interpolate { get; }

    /// <summary>
    /// Builds the block from diffusers' constructor arguments (same names and defaults, in .NET casing).
    /// </summary>
    public Upsample2D(int channels, bool useConv = false, bool useConvTranspose = false, int? outChannels = null,
        string name = "conv", int? kernelSize = null, int padding = 1, string? normType = null, double eps = 1e-5,
        bool elementwiseAffine = true, bool bias = true, bool interpolate = true)
        : base(nameof(Upsample2D))
    {
        Channels = channels;
        OutChannels = outChannels ?? channels;
        UseConv = useConv;
        UseConvTranspose = useConvTranspose;
        Interpolate = interpolate;
        norm = normType switch
        {
            null => null,
            "ln_norm" => nn.LayerNorm(channels, eps, elementwiseAffine, dtype: Layers.BuildDType),
            _ => throw new ArgumentException($"Upsample2D: unknown or unsupported norm_type '{normType}' (supported: null, ln_norm)"),
        };
        nn.Module<Tensor, Tensor>? c = null;
        if (useConvTranspose)
            c = Layers.ConvTranspose2d(channels, OutChannels, kernel_size: kernelSize ?? 4, stride: 2, padding: padding, bias: bias);
        else if (useConv)
            c = new LoRACompatibleConv(channels, OutChannels, kernelSize ?? 3, stride: 1, padding: padding, bias: bias);
        if (name == "conv") conv = c; else Conv2d_0 = c;
        RegisterComponents();
    }

    /// <param name="outputSize">Target (height, width); null doubles the size.</param>
    /// <param name="consumeInput">The caller hands <paramref name="hiddenStates"/> over: it is disposed once interpolated.</param>
    public Tensor Forward(Tensor hiddenStates, long[]? outputSize = null, bool consumeInput = false)
    {
        if (hiddenStates.shape[1] != Channels)
            throw new ArgumentException($"Upsample2D expects {Channels} channels, got input of shape [{string.Join(", ", hiddenStates.shape)}]");
        var h = new Chain(hiddenStates, handedOver: consumeInput);
        if (norm is not null)
            h.Then(x => norm.forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2));
        var c = conv ?? Conv2d_0;
        if (UseConvTranspose)
            return h.Then(c!.forward).Value;
        // nearest ×2 and a 3×3 convolution in one pass where the Winograd path applies: the 4× larger upsampled tensor
        // is never made (in the SD VAE decoder's last upsampler, 268 MB)
        if (Interpolate && UseConv && outputSize is null && c is LoRACompatibleConv lc && lc.FusesUpsample(h.Value))
            return h.Then(lc.ForwardUpsampled).Value;
        // diffusers casts bf16 to fp32 around the interpolation only because old torch lacked a bf16 kernel;
        // nearest-neighbour copies values, so the result is the same without the casts.
        if (Interpolate)
            h.Then(x => outputSize is null
                ? nn.functional.interpolate(x, scale_factor: new[] { 2.0, 2.0 }, mode: InterpolationMode.Nearest)
                : nn.functional.interpolate(x, size: outputSize, mode: InterpolationMode.Nearest));
        if (UseConv)
            h.Then(c!.forward);
        return h.Value;
    }
}
