using DiffusersSharp.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Models.Lora;

/// <summary>
/// diffusers' <c>LoRACompatibleConv</c>: <c>nn.Conv2d(in, out, kernel, stride, padding, bias)</c> (same parameter names
/// and initialisation) plus LoRA adapters: down = a convolution [r, in, kh, kw] with the layer's stride and padding, up =
/// a 1×1 convolution [out, r, 1, 1] (kohya's LoCon), see <see cref="LoRACompatibleLayer"/>. 1×1 convolutions on
/// channels-last inputs whose channel pair oneDNN 3.7 mishandles run as <c>addmm</c> (<see cref="Layers.Pointwise"/>);
/// the LoRA's 1×1 products always run as matrix products over channels.
/// </summary>
public sealed class LoRACompatibleConv : LoRACompatibleLayer
{
    /// <summary>A convolution initialised as <c>nn.Conv2d</c>.</summary>
    public LoRACompatibleConv(long inChannels, long outChannels, long kernelSize, long stride = 1, long padding = 0, bool bias = true)
        : this(DefaultInit([outChannels, inChannels, kernelSize, kernelSize], bias), stride, padding) { }

    private LoRACompatibleConv((Tensor Weight, Tensor? Bias) p, long stride, long padding)
        : base(nameof(LoRACompatibleConv), p.Weight, p.Bias)
    {
        InChannels = Weight.shape[1];
        OutChannels = Weight.shape[0];
        KernelSize = Weight.shape[2];
        Stride = stride;
        Padding = padding;
    }

    /// <summary>Input channels.</summary>
    public long InChannels { get; }

    /// <summary>Output channels.</summary>
    public long OutChannels { get; }

    /// <summary>Square kernel size.</summary>
    public long KernelSize { get; }

    /// <summary>Stride (both dimensions).</summary>
    public long Stride { get; }

    /// <summary>Zero padding (both dimensions).</summary>
    public long Padding { get; }

    private bool IsPlain1x1 => KernelSize == 1 && Stride == 1 && Padding == 0;

    private bool IsPlain3x3 => KernelSize == 3 && Stride == 1 && Padding == 1;

    /// <inheritdoc/>
    protected override Tensor BaseForward(Tensor x, Tensor weight)
    {
        if (IsPlain1x1 && x.dim() == 4 && Layers.IsChannelsLast(x) && Layers.IsOneDnnDivideByZeroPair(InChannels, OutChannels))
            return Layers.PointwiseAddmm(weight, Bias, x);
        // wide 3×3 layers by Winograd's algorithm where it applies and pays (Runtime/WinogradConvolution)
        if (IsPlain3x3 && WinogradConvolution.TryRun(x, weight, Bias) is { } y) return y;
        // and 3×3 layers of few positions (SD's 8² layers, its last downsampler) as one matrix product (Runtime/Im2ColConvolution)
        if (KernelSize == 3 && Padding == 1 && Im2ColConvolution.TryRun(x, weight, Bias, Stride) is { } z) return z;
        return nn.functional.conv2d(x, weight, Bias, strides: [Stride, Stride], padding: [Padding, Padding]);
    }

    /// <summary>
    /// True when <see cref="ForwardUpsampled"/> runs this layer on x: a 3×3 convolution of stride 1 and padding 1 without
    /// LoRA adapters, where the Winograd path applies and pays at the upsampled size (Runtime/WinogradConvolution).
    /// </summary>
    public bool FusesUpsample(Tensor x) =>
        Adapters.Count == 0 && IsPlain3x3 && WinogradConvolution.PaysUpsampled(x, Weight, Bias);

    /// <summary>
    /// This layer applied to x upsampled ×2 by nearest neighbour (diffusers' <c>Upsample2D</c>: interpolate, then this
    /// convolution) in one pass, the upsampled tensor never made; only where <see cref="FusesUpsample"/> says yes.
    /// </summary>
    public Tensor ForwardUpsampled(Tensor x) => WinogradConvolution.RunUpsampled(x, Weight, Bias);

    /// <summary>
    /// True when <see cref="ForwardInto"/> runs this layer on x: a 3×3 convolution of stride 1 and padding 1 without LoRA
    /// adapters, where the Winograd path applies and pays (Runtime/WinogradConvolution).
    /// </summary>
    public bool RunsInto(Tensor x) => Adapters.Count == 0 && IsPlain3x3 && WinogradConvolution.Pays(x, Weight, Bias);

    /// <summary>
    /// This layer applied to x, written into <paramref name="output"/> (which may be x's own memory where
    /// <see cref="WinogradConvolution.OverwritesInput"/> says so); only where <see cref="RunsInto"/> says yes.
    /// </summary>
    public void ForwardInto(Tensor x, Tensor output) => WinogradConvolution.RunInto(x, Weight, Bias, output);

    /// <inheritdoc/>
    protected override long OutputPositions(Tensor x) =>
        x.dim() < 3 ? 1 : x.shape[0] * ((x.shape[^2] + 2 * Padding - KernelSize) / Stride + 1) * ((x.shape[^1] + 2 * Padding - KernelSize) / Stride + 1);

    /// <inheritdoc/>
    protected override Tensor LoraForward(LoraAdapter adapter, Tensor x)
    {
        using var d = IsPlain1x1
            ? ChannelProduct(x, adapter.Down)
            : nn.functional.conv2d(x, adapter.Down, null, strides: [Stride, Stride], padding: [Padding, Padding]);
        return ChannelProduct(d, adapter.Up);
    }

    /// <summary>A 1×1 convolution without bias as a product over channels: (B, C, H, W) · [O, C, 1, 1] → (B, O, H, W).</summary>
    private static Tensor ChannelProduct(Tensor x, Tensor weight)
    {
        using var w = weight.flatten(1);
        using var rows = x.permute(0, 2, 3, 1);
        using var y = rows.matmul(w.t());
        return y.permute(0, 3, 1, 2);
    }

    /// <inheritdoc/>
    public override string? CheckShapes(Tensor down, Tensor up)
    {
        if (down.dim() == 2 && up.dim() == 2 && KernelSize == 1)
            return null; // a linear LoRA on a 1×1 conv (reshaped by the loader)
        if (down.dim() != 4 || up.dim() != 4)
            return $"a convolution needs 4-D LoRA weights, got down {Layers.Shape(down)} and up {Layers.Shape(up)}";
        if (down.shape[1] != InChannels || down.shape[2] != KernelSize || down.shape[3] != KernelSize
            || up.shape[0] != OutChannels || up.shape[2] != 1 || up.shape[3] != 1)
            return $"down {Layers.Shape(down)} / up {Layers.Shape(up)} do not fit the layer's weight [{OutChannels}, {InChannels}, {KernelSize}, {KernelSize}]";
        if (up.shape[1] != down.shape[0])
            return $"rank mismatch: down {Layers.Shape(down)} has rank {down.shape[0]}, up {Layers.Shape(up)} has rank {up.shape[1]}";
        return null;
    }
}
