using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' VAE <c>Decoder</c> (models/autoencoders/vae.py, v0.25.1): conv_in → <see cref="UNetMidBlock2D"/>
/// (resnet, self-attention, resnet) → <see cref="UpDecoderBlock2D"/>s (<c>layers_per_block + 1</c> resnets each,
/// nearest ×2 + conv upsamplers) → GroupNorm (eps 1e-6) → SiLU → conv_out. Only the "group" norm type and
/// UpDecoderBlock2D up blocks are supported.
/// </summary>
public sealed class Decoder : nn.Module
{
    private readonly Conv2d conv_in;
    private readonly UNetMidBlock2D mid_block;
    private readonly ModuleList<UpDecoderBlock2D> up_blocks;
    private readonly GroupNorm conv_norm_out;
    private readonly Conv2d conv_out;

    /// <summary>Test hook: (path under "decoder.", output) after each stage.</summary>
    internal Action<string, Tensor>? DebugHook { get; set; }

    /// <summary>Run in channels-last layout (see <see cref="AutoencoderKL.ChannelsLast"/>); the output is contiguous NCHW.</summary>
    public bool ChannelsLast { get; set; } = true;

    /// <summary>
    /// Builds diffusers' VAE <c>Decoder</c> from its constructor arguments (same names and defaults, in .NET casing).
    /// </summary>
    public Decoder(int inChannels = 3, int outChannels = 3, string[]? upBlockTypes = null, int[]? blockOutChannels = null,
        int layersPerBlock = 2, int normNumGroups = 32, string actFn = "silu", string normType = "group",
        bool midBlockAddAttention = true)
        : base(nameof(Decoder))
    {
        if (normType != "group")
            throw new ArgumentException($"Decoder: norm_type '{normType}' is not supported by DiffusersSharp (supported: group)");
        upBlockTypes ??= ["UpDecoderBlock2D"];
        blockOutChannels ??= [64];
        conv_in = Layers.Conv2d(inChannels, blockOutChannels[^1], kernel_size: 3, stride: 1, padding: 1);
        mid_block = new UNetMidBlock2D(blockOutChannels[^1], tembChannels: null, resnetEps: 1e-6, resnetActFn: actFn,
            outputScaleFactor: 1, resnetTimeScaleShift: "default", attentionHeadDim: blockOutChannels[^1],
            resnetGroups: normNumGroups, addAttention: midBlockAddAttention);
        up_blocks = new ModuleList<UpDecoderBlock2D>();
        var reversed = blockOutChannels.Reverse().ToArray();
        int outputChannel = reversed[0];
        for (int i = 0; i < upBlockTypes.Length; i++)
        {
            if (upBlockTypes[i] != "UpDecoderBlock2D")
                throw new ArgumentException($"Decoder: up block type '{upBlockTypes[i]}' is not supported by DiffusersSharp (supported: UpDecoderBlock2D)");
            int prevOutputChannel = outputChannel;
            outputChannel = reversed[i];
            bool isFinal = i == blockOutChannels.Length - 1;
            // diffusers passes resnet_time_scale_shift = norm_type ("group"), which ResnetBlock2D treats as the default norm
            up_blocks.Add(new UpDecoderBlock2D(prevOutputChannel, outputChannel, resolutionIdx: null,
                numLayers: layersPerBlock + 1, resnetEps: 1e-6, resnetActFn: actFn, resnetGroups: normNumGroups,
                addUpsample: !isFinal, tembChannels: null));
        }
        conv_norm_out = Layers.GroupNorm(normNumGroups, blockOutChannels[0], 1e-6);
        conv_out = Layers.Conv2d(blockOutChannels[0], outChannels, kernel_size: 3, padding: 1);
        RegisterComponents();
        _kernels = new ConvKernelLayout(this, () => conv_in.weight, ChannelsLast);
    }

    private readonly ConvKernelLayout _kernels;

    /// <summary>The dtype the pass casts to after the mid block (diffusers' <c>upscale_dtype</c>: the up blocks').</summary>
    internal ScalarType UpscaleDType => Layers.ParamDType(up_blocks);

    /// <summary>
    /// <c>conv_in</c> and the mid block to <paramref name="dtype"/>, the rest as it is: the decoder's part of diffusers'
    /// <c>upcast_vae</c> (<see cref="AutoencoderKL.UpcastVae"/>).
    /// </summary>
    internal void InputStagesTo(ScalarType dtype)
    {
        conv_in.to(dtype);
        mid_block.to(dtype);
    }

    /// <summary>Decodes latents (after post_quant_conv) into images; the caller owns the result.</summary>
    public Tensor Forward(Tensor sample)
    {
        _kernels.Follow(ChannelsLast);
        var hook = DebugHook;
        var h = new Chain(sample);
        if (ChannelsLast)
            h.Then(Layers.ToChannelsLast);
        h.Then(conv_in.forward);
        hook?.Invoke("conv_in", h.Value);
        h.Then(x => mid_block.Forward(x, null));
        hook?.Invoke("mid_block", h.Value);
        // diffusers casts to the up blocks' parameter dtype here
        var upscaleDType = UpscaleDType;
        h.Then(x => x.to_type(upscaleDType));
        for (int i = 0; i < up_blocks.Count; i++)
        {
            // each up block gets its input handed over, to free it as soon as it is no longer needed
            var block = up_blocks[i];
            Runtime.NativeSetup.TrimBeforeLargeStage(h.Value.NumberOfElements * h.Value.ElementSize);
            h.ThenHandingOver((x, owned) => block.Forward(x, consumeInput: owned));
            hook?.Invoke($"up_blocks.{i}", h.Value);
        }
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
