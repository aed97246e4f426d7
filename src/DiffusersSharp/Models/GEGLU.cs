using DiffusersSharp.Models.Lora;
using DiffusersSharp.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>GEGLU</c> (models/activations.py, v0.25.1): <c>proj</c> to twice the output width, split in
/// two halves (h, gate) on the last dimension, <c>h * gelu(gate)</c> (exact erf GELU). Weight name: <c>proj</c>.
/// </summary>
public sealed class GEGLU : nn.Module
{
    private readonly LoRACompatibleLinear proj;

    /// <summary>
    /// A linear layer to 2 × <paramref name="dimOut"/> channels whose second half gates the first through GELU.
    /// </summary>
    public GEGLU(int dimIn, int dimOut, bool bias = true) : base(nameof(GEGLU))
    {
        proj = new LoRACompatibleLinear(dimIn, dimOut * 2, hasBias: bias);
        RegisterComponents();
    }

    /// <summary><c>a · gelu(b)</c> with (a, b) the two halves of the projection; the caller owns the result.</summary>
    public Tensor Forward(Tensor hiddenStates)
    {
        using var projected = proj.forward(hiddenStates);
        // one pass where the kernel applies (Runtime/FusedGeglu), else libtorch's gelu and mul
        if (FusedGeglu.TryRun(projected) is { } fused) return fused;
        var halves = projected.chunk(2, dim: -1);
        using var h = halves[0];
        using var gate = halves[1];
        var g = nn.functional.gelu(gate);
        // h * gelu(gate): the product is commutative, so multiplying into the fresh gelu output is exact.
        return Activations.InPlaceOk ? g.mul_(h) : h * g;
    }
}
