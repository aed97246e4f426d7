using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Models.Lora;

/// <summary>
/// diffusers' <c>LoRACompatibleLinear</c>: <c>nn.Linear(in, out, bias)</c> (same parameter names, same initialisation)
/// plus LoRA adapters of shapes down [r, in], up [out, r] (see <see cref="LoRACompatibleLayer"/>).
/// </summary>
public sealed class LoRACompatibleLinear : LoRACompatibleLayer
{
    /// <summary>A linear layer of <paramref name="inFeatures"/> → <paramref name="outFeatures"/>, initialised as <c>nn.Linear</c>.</summary>
    public LoRACompatibleLinear(long inFeatures, long outFeatures, bool hasBias = true)
        : this(DefaultInit([outFeatures, inFeatures], hasBias)) { }

    private LoRACompatibleLinear((Tensor Weight, Tensor? Bias) p) : base(nameof(LoRACompatibleLinear), p.Weight, p.Bias)
    {
        InFeatures = Weight.shape[1];
        OutFeatures = Weight.shape[0];
    }

    /// <summary>Input width.</summary>
    public long InFeatures { get; }

    /// <summary>Output width.</summary>
    public long OutFeatures { get; }

    /// <inheritdoc/>
    protected override Tensor BaseForward(Tensor x, Tensor weight) => nn.functional.linear(x, weight, Bias);

    /// <inheritdoc/>
    protected override long OutputPositions(Tensor x) => x.numel() / InFeatures;

    /// <inheritdoc/>
    protected override Tensor LoraForward(LoraAdapter adapter, Tensor x)
    {
        using var d = nn.functional.linear(x, adapter.Down);
        return nn.functional.linear(d, adapter.Up);
    }

    /// <inheritdoc/>
    public override string? CheckShapes(Tensor down, Tensor up)
    {
        if (down.dim() != 2 || up.dim() != 2)
            return $"a linear layer needs 2-D LoRA matrices, got down {Layers.Shape(down)} and up {Layers.Shape(up)}";
        if (down.shape[1] != InFeatures || up.shape[0] != OutFeatures)
            return $"down {Layers.Shape(down)} / up {Layers.Shape(up)} do not fit the layer's weight [{OutFeatures}, {InFeatures}]";
        if (up.shape[1] != down.shape[0])
            return $"rank mismatch: down {Layers.Shape(down)} has rank {down.shape[0]}, up {Layers.Shape(up)} has rank {up.shape[1]}";
        return null;
    }
}
