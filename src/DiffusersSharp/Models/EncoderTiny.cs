using DiffusersSharp.Models.Lora;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>EncoderTiny</c> (models/autoencoders/vae.py, v0.25.1), TAESD's encoder: the image is mapped from
/// [-1, 1] to [0, 1], then <c>layers</c> runs: per stage a conv 3×3 (stage 0: in → c with bias; later stages: c → c,
/// stride 2, no bias) followed by its <see cref="AutoencoderTinyBlock"/>s, and a final conv 3×3 to the latent channels.
/// Weight names: <c>layers.&lt;i&gt;</c> in that order.
/// </summary>
public sealed class EncoderTiny : nn.Module<Tensor, Tensor>
{
    private readonly ModuleList<nn.Module<Tensor, Tensor>> layers = new();

    /// <summary>Test hook: (path under "encoder.", output) after each layer.</summary>
    internal Action<string, Tensor>? DebugHook { get; set; }

    /// <summary>
    /// Builds diffusers' <c>EncoderTiny</c> from its constructor arguments (same names, in .NET casing).
    /// </summary>
    public EncoderTiny(int inChannels, int outChannels, int[] numBlocks, int[] blockOutChannels, string actFn)
        : base(nameof(EncoderTiny))
    {
        for (int i = 0; i < numBlocks.Length; i++)
        {
            int channels = blockOutChannels[i];
            layers.Add(i == 0
                ? new LoRACompatibleConv(inChannels, channels, 3, padding: 1)
                : new LoRACompatibleConv(channels, channels, 3, stride: 2, padding: 1, bias: false));
            for (int b = 0; b < numBlocks[i]; b++)
                layers.Add(new AutoencoderTinyBlock(channels, channels, actFn));
        }
        layers.Add(new LoRACompatibleConv(blockOutChannels[^1], outChannels, 3, padding: 1));
        RegisterComponents();
    }

    /// <summary>Images in [-1, 1] (B, in_channels, H, W) → latents (B, latent_channels, H / 2^(stages-1), …).</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        // scale image from [-1, 1] to [0, 1] to match TAESD convention
        var h = x.add(1).div_(2);
        return TinyLayers.Run(layers, 0, layers.Count, h, DebugHook).MoveToOuterDisposeScope();
    }
}
