using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>get_activation</c> (models/activations.py): "swish"/"silu", "mish", "gelu", "relu", by
/// name (case-insensitive).
/// </summary>
public static class Activations
{
    /// <summary>
    /// The activation for <paramref name="name"/>; an unknown name is an <see cref="ArgumentException"/>.
    /// With <paramref name="mayOverwriteInput"/> the function overwrites its argument when autograd is off
    /// (pass only tensors nobody else uses, e.g. a fresh norm output); with autograd on it never does.
    /// </summary>
    public static Func<Tensor, Tensor> Get(string name, bool mayOverwriteInput = false)
    {
        bool ip = mayOverwriteInput;
        return name.ToLowerInvariant() switch
        {
            "swish" or "silu" => x => nn.functional.silu(x, inplace: ip && InPlaceOk),
            "mish" => x => nn.functional.mish(x, inplace: ip && InPlaceOk),
            "gelu" => x => nn.functional.gelu(x),
            "relu" => x => ip && InPlaceOk ? x.relu_() : nn.functional.relu(x),
            _ => throw new ArgumentException($"Unsupported activation function: '{name}' (expected one of swish, silu, mish, gelu, relu)"),
        };
    }

    /// <summary>
    /// The activation for <paramref name="name"/> as a parameterless module (diffusers' <c>get_activation</c> returns
    /// <c>nn.SiLU()</c>, <c>nn.Mish()</c>, <c>nn.GELU()</c> or <c>nn.ReLU()</c>), for blocks that list it among their
    /// layers; an unknown name is an <see cref="ArgumentException"/>.
    /// </summary>
    public static nn.Module<Tensor, Tensor> Module(string name) => name.ToLowerInvariant() switch
    {
        "swish" or "silu" => nn.SiLU(),
        "mish" => nn.Mish(),
        "gelu" => nn.GELU(),
        "relu" => nn.ReLU(),
        _ => throw new ArgumentException($"Unsupported activation function: '{name}' (expected one of swish, silu, mish, gelu, relu)"),
    };

    /// <summary>SiLU that overwrites <paramref name="x"/> when autograd is off (x must be a tensor the caller owns).</summary>
    public static Tensor SiluOwned(Tensor x) => nn.functional.silu(x, inplace: InPlaceOk);

    /// <summary>In-place ops are used only with autograd off (no_grad / inference), where they cannot break a graph.</summary>
    internal static bool InPlaceOk => !torch.is_grad_enabled();
}
