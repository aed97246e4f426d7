using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>DecoderTiny</c> (models/autoencoders/vae.py, v0.25.1), TAESD's decoder: the latents are soft-clamped
/// (<c>tanh(x / 3) · 3</c>), then <c>layers</c> runs: conv 3×3 (latents → c₀, bias), act, and per stage its
/// <see cref="AutoencoderTinyBlock"/>s, a nearest ×<c>upsampling_scaling_factor</c> upsample (not after the last stage)
/// and a conv 3×3 (c → c without bias; the last stage's c → out_channels with bias); the output is mapped from
/// [0, 1] to [-1, 1]. Weight names: <c>layers.&lt;i&gt;</c> in that order.
/// </summary>
public sealed class DecoderTiny : nn.Module<Tensor, Tensor>
{
    private readonly ModuleList<nn.Module<Tensor, Tensor>> layers = new();

    /// <summary>Test hook: (path under "decoder.", output) after each layer.</summary>
    internal Action<string, Tensor>? DebugHook { get; set; }

    /// <summary>
    /// Builds diffusers' <c>DecoderTiny</c> from its constructor arguments (same names, in .NET casing).
    /// </summary>
    public DecoderTiny(int inChannels, int outChannels, int[] numBlocks, int[] blockOutChannels, int upsamplingScalingFactor,
        string actFn)
        : base(nameof(DecoderTiny))
    {
        layers.Add(Layers.Conv2d(inChannels, blockOutChannels[0], kernel_size: 3, padding: 1));
        layers.Add(Activations.Module(actFn));
        for (int i = 0; i < numBlocks.Length; i++)
        {
            bool isFinalBlock = i == numBlocks.Length - 1;
            int channels = blockOutChannels[i];
            for (int b = 0; b < numBlocks[i]; b++)
                layers.Add(new AutoencoderTinyBlock(channels, channels, actFn));
            if (!isFinalBlock)
            {
                double f = upsamplingScalingFactor;
                layers.Add(nn.Upsample(scale_factor: [f, f], mode: UpsampleMode.Nearest));
            }
            int convOut = isFinalBlock ? outChannels : channels;
            layers.Add(Layers.Conv2d(channels, convOut, kernel_size: 3, padding: 1, bias: isFinalBlock));
        }
        RegisterComponents();
    }

    /// <summary>The first convolution's kernel (<see cref="ConvKernelLayout"/>'s probe).</summary>
    internal Tensor FirstKernel => ((Conv2d)layers[0]).weight;

    /// <summary>Latents (B, latent_channels, h, w) → images in [-1, 1] (B, out_channels, h · f^(stages-1), …).</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        // Clamp.
        var h = torch.tanh(x / 3) * 3;
        var y = TinyLayers.Run(layers, h, DebugHook);
        // scale image from [0, 1] to [-1, 1] to match diffusers convention
        return y.mul(2).sub_(1).MoveToOuterDisposeScope();
    }
}
