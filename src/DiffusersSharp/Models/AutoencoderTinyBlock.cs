using DiffusersSharp.Models.Lora;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>AutoencoderTinyBlock</c> (models/unet_2d_blocks.py, v0.25.1), the residual unit of TAESD:
/// <c>relu(conv(x) + skip(x))</c>, where <c>conv</c> is conv 3×3 → act → conv 3×3 → act → conv 3×3 (weights
/// <c>conv.0</c>, <c>conv.2</c>, <c>conv.4</c>) and <c>skip</c> is a bias-free 1×1 conv when the channel count
/// changes, else the identity. The final activation is always ReLU, whatever <c>act_fn</c> is.
/// </summary>
public sealed class AutoencoderTinyBlock : nn.Module<Tensor, Tensor>
{
    private readonly Sequential conv;
    private readonly Conv2d? skip;

    /// <summary>
    /// Builds the block from diffusers' constructor arguments (same names and defaults, in .NET casing).
    /// </summary>
    public AutoencoderTinyBlock(int inChannels, int outChannels, string actFn) : base(nameof(AutoencoderTinyBlock))
    {
        conv = nn.Sequential(
            new LoRACompatibleConv(inChannels, outChannels, 3, padding: 1),
            Activations.Module(actFn),
            new LoRACompatibleConv(outChannels, outChannels, 3, padding: 1),
            Activations.Module(actFn),
            new LoRACompatibleConv(outChannels, outChannels, 3, padding: 1));
        if (inChannels != outChannels)
            skip = Layers.Conv2d(inChannels, outChannels, kernel_size: 1, bias: false);
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        var h = conv.forward(x);
        h = skip is null ? h.add_(x) : h.add_(skip.forward(x));
        return h.relu_().MoveToOuterDisposeScope();
    }
}
