using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' VAE <c>Encoder</c> (models/autoencoders/vae.py, v0.25.1): conv_in → <see cref="DownEncoderBlock2D"/>s
/// (stride-2 downsamplers with the asymmetric padding 0) → <see cref="UNetMidBlock2D"/> (resnet, self-attention,
/// resnet) → GroupNorm (eps 1e-6) → SiLU → conv_out to <c>2 · out_channels</c> (mean and log-variance) with
/// <c>double_z</c>. Only DownEncoderBlock2D down blocks are supported.
/// </summary>
public sealed class Encoder : nn.Module
{
    private readonly Conv2d conv_in;
    private readonly ModuleList<DownEncoderBlock2D> down_blocks;
    private readonly UNetMidBlock2D mid_block;
    private readonly GroupNorm conv_norm_out;
    private readonly Conv2d conv_out;

    /// <summary>Test hook: (path under "encoder.", output) after each stage.</summary>
    internal Action<string, Tensor>? DebugHook { get; set; }

    /// <summary>The dtype of <c>conv_in</c>, which the images meet first.</summary>
    internal ScalarType InputDType => conv_in.weight.dtype;

    /// <summary>
    /// The smallest height and width the encoder takes: each downsampler pads one pixel on the right and bottom and runs a
    /// 3×3 convolution of stride 2, which needs at least 2 pixels, so n of them need 2^n.
    /// </summary>
    internal long MinInputSize => 1L << (down_blocks.Count - 1);

    /// <summary>Run in channels-last layout (see <see cref="AutoencoderKL.ChannelsLast"/>); the output is contiguous NCHW.</summary>
    public bool ChannelsLast { get; set; } = true;

    /// <summary>
    /// Builds diffusers' VAE <c>Encoder</c> from its constructor arguments (same names and defaults, in .NET casing).
    /// </summary>
    public Encoder(int inChannels = 3, int outChannels = 3, string[]? downBlockTypes = null, int[]? blockOutChannels = null,
        int layersPerBlock = 2, int normNumGroups = 32, string actFn = "silu", bool doubleZ = true,
        bool midBlockAddAttention = true)
        : base(nameof(Encoder))
    {
        downBlockTypes ??= ["DownEncoderBlock2D"];
        blockOutChannels ??= [64];
        conv_in = Layers.Conv2d(inChannels, blockOutChannels[0], kernel_size: 3, stride: 1, padding: 1);
        down_blocks = new ModuleList<DownEncoderBlock2D>();
        int outputChannel = blockOutChannels[0];
        for (int i = 0; i < downBlockTypes.Length; i++)
        {
            if (downBlockTypes[i] != "DownEncoderBlock2D")
                throw new ArgumentException($"Encoder: down block type '{downBlockTypes[i]}' is not supported by DiffusersSharp (supported: DownEncoderBlock2D)");
            int inputChannel = outputChannel;
            outputChannel = blockOutChannels[i];
            bool isFinal = i == blockOutChannels.Length - 1;
            down_blocks.Add(new DownEncoderBlock2D(inputChannel, outputChannel, numLayers: layersPerBlock,
                resnetEps: 1e-6, resnetActFn: actFn, resnetGroups: normNumGroups, addDownsample: !isFinal,
                downsamplePadding: 0));
        }
        mid_block = new UNetMidBlock2D(blockOutChannels[^1], tembChannels: null, resnetEps: 1e-6, resnetActFn: actFn,
            outputScaleFactor: 1, resnetTimeScaleShift: "default", attentionHeadDim: blockOutChannels[^1],
            resnetGroups: normNumGroups, addAttention: midBlockAddAttention);
        conv_norm_out = Layers.GroupNorm(normNumGroups, blockOutChannels[^1], 1e-6);
        conv_out = Layers.Conv2d(blockOutChannels[^1], doubleZ ? 2 * outChannels : outChannels, kernel_size: 3, padding: 1);
        RegisterComponents();
        _kernels = new ConvKernelLayout(this, () => conv_in.weight, ChannelsLast);
    }

    private readonly ConvKernelLayout _kernels;

    /// <summary>
    /// Encodes images into the moments of the latent distribution (before quant_conv); the caller owns the result.
    /// </summary>
    public Tensor Forward(Tensor sample)
    {
        _kernels.Follow(ChannelsLast);
        var hook = DebugHook;
        var h = new Chain(sample);
        if (ChannelsLast)
            h.Then(Layers.ToChannelsLast);
        h.Then(conv_in.forward);
        hook?.Invoke("conv_in", h.Value);
        for (int i = 0; i < down_blocks.Count; i++)
        {
            var block = down_blocks[i];
            h.Then(block.Forward);
            hook?.Invoke($"down_blocks.{i}", h.Value);
        }
        h.Then(x => mid_block.Forward(x, null));
        hook?.Invoke("mid_block", h.Value);
        h.Then(conv_norm_out.forward);
        hook?.Invoke("conv_norm_out", h.Value);
        h.Then(Activations.SiluOwned);
        h.Then(conv_out.forward);
        hook?.Invoke("conv_out", h.Value);
        if (ChannelsLast)
            h.Then(x => x.contiguous());
        return h.Value;
    }
}
