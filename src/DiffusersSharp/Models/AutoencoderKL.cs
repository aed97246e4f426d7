using DiffusersSharp.Loading;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static DiffusersSharp.Models.ConfigRanges;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>AutoencoderKL</c> (models/autoencoders/autoencoder_kl.py, v0.25.1): the Stable Diffusion VAE.
/// <see cref="Encode"/> maps images in [-1, 1] to a <see cref="DiagonalGaussianDistribution"/> over latents
/// (<c>encoder</c> → <c>quant_conv</c>); <see cref="Decode"/> maps latents back (<c>post_quant_conv</c> →
/// <c>decoder</c>). <see cref="ScalingFactor"/> is applied by the pipelines, not here. With
/// <see cref="EnableTiling"/>, inputs larger than a tile are processed in overlapping tiles whose seams are
/// blended as diffusers does; with <see cref="EnableSlicing"/>, a batch is processed item by item.
/// </summary>
public sealed partial class AutoencoderKL : nn.Module
{
    private readonly Encoder encoder;
    private readonly Decoder decoder;
    private readonly Conv2d quant_conv;
    private readonly Conv2d post_quant_conv;

    /// <summary>The config the model was built from.</summary>
    public AutoencoderKLConfig Config { get; }

    /// <summary>Tiled encode/decode is used for inputs larger than a tile (diffusers' <c>use_tiling</c>).</summary>
    public bool UseTiling { get; private set; }

    /// <summary>Batches are encoded/decoded one item at a time (diffusers' <c>use_slicing</c>).</summary>
    public bool UseSlicing { get; private set; }

    /// <summary>
    /// Run the encoder and decoder in channels-last layout (NCHW shape, NHWC strides): oneDNN then takes its
    /// channels-last convolution kernels, which are faster on CPU. Numerically equivalent (float rounding
    /// aside); outputs come back contiguous NCHW. On by default (faster on CPU, and bfloat16 NCHW convolutions
    /// take a slow path); set false for NCHW.
    /// </summary>
    public bool ChannelsLast
    {
        get => decoder.ChannelsLast;
        set { decoder.ChannelsLast = value; encoder.ChannelsLast = value; }
    }

    /// <summary>Tile size in image pixels (default: <c>sample_size</c>).</summary>
    public int TileSampleMinSize { get; set; }

    /// <summary>Tile size in latent cells (default: <c>sample_size / 2^(len(block_out_channels) - 1)</c>).</summary>
    public int TileLatentMinSize { get; set; }

    /// <summary>Fraction of a tile that overlaps its neighbour (0.25).</summary>
    public double TileOverlapFactor { get; set; } = 0.25;

    /// <inheritdoc/>
    public double ScalingFactor => Config.ScalingFactor;
    /// <summary>
    /// diffusers' <c>force_upcast</c>: the VAE should run in float32 even when the pipeline runs in float16.
    /// </summary>
    public bool ForceUpcast => Config.ForceUpcast;

    /// <summary>Image pixels per latent cell: <c>2^(len(block_out_channels) - 1)</c> (the pipelines' <c>vae_scale_factor</c>).</summary>
    public int ScaleFactor => 1 << (Config.BlockOutChannels.Length - 1);

    /// <summary>Test hook: (module path, output) for encoder.*, quant_conv, post_quant_conv, decoder.*.</summary>
    internal Action<string, Tensor>? IntermediateHook
    {
        get => _hook;
        set
        {
            _hook = value;
            encoder.DebugHook = value is null ? null : (n, t) => value("encoder." + n, t);
            decoder.DebugHook = value is null ? null : (n, t) => value("decoder." + n, t);
        }
    }

    private Action<string, Tensor>? _hook;

    /// <summary>Builds the model with random weights. Invalid or unsupported configs throw <see cref="ConfigException"/>.</summary>
    public static AutoencoderKL FromConfig(AutoencoderKLConfig config, string? source = null) =>
        ModuleScope.Run(() => new AutoencoderKL(config, source));

    private AutoencoderKL(AutoencoderKLConfig config, string? source) : base(nameof(AutoencoderKL))
    {
        Validate(config, source ?? "AutoencoderKL config");
        Config = config;
        var c = config;
        encoder = new Encoder(c.InChannels, c.LatentChannels, c.DownBlockTypes, c.BlockOutChannels, c.LayersPerBlock,
            c.NormNumGroups, c.ActFn, doubleZ: true);
        decoder = new Decoder(c.LatentChannels, c.OutChannels, c.UpBlockTypes, c.BlockOutChannels, c.LayersPerBlock,
            c.NormNumGroups, c.ActFn);
        quant_conv = Layers.Conv2d(2 * c.LatentChannels, 2 * c.LatentChannels, 1);
        post_quant_conv = Layers.Conv2d(c.LatentChannels, c.LatentChannels, 1);
        int sampleSize = c.SampleSize is { Length: > 0 } s ? s[0] : 32;
        TileSampleMinSize = sampleSize;
        TileLatentMinSize = (int)(sampleSize / Math.Pow(2, c.BlockOutChannels.Length - 1));
        RegisterComponents();
    }

    private static void Validate(AutoencoderKLConfig c, string source)
    {
        ModelConfigRanges.RequiredAutoencoderKL(c, source);
        if (c.BlockOutChannels is null || c.BlockOutChannels.Length == 0)
            Fail(source, "block_out_channels", "block_out_channels must be a non-empty list");
        if (c.DownBlockTypes is null || c.DownBlockTypes.Length != c.BlockOutChannels!.Length)
            Fail(source, "down_block_types", $"needs one down block type per block_out_channels entry ({c.BlockOutChannels!.Length}), got {c.DownBlockTypes?.Length.ToString() ?? "null"}");
        if (c.UpBlockTypes is null || c.UpBlockTypes.Length != c.BlockOutChannels.Length)
            Fail(source, "up_block_types", $"needs one up block type per block_out_channels entry ({c.BlockOutChannels.Length}), got {c.UpBlockTypes?.Length.ToString() ?? "null"}");
        foreach (var t in c.DownBlockTypes!)
            if (t != "DownEncoderBlock2D")
                Fail(source, "down_block_types", $"down block type '{t}' is not supported by DiffusersSharp (supported: DownEncoderBlock2D)");
        foreach (var t in c.UpBlockTypes!)
            if (t != "UpDecoderBlock2D")
                Fail(source, "up_block_types", $"up block type '{t}' is not supported by DiffusersSharp (supported: UpDecoderBlock2D)");
        if (c.NormNumGroups <= 0)
            Fail(source, "norm_num_groups", $"norm_num_groups must be positive, got {c.NormNumGroups}");
        foreach (var ch in c.BlockOutChannels)
            if (ch <= 0 || ch % c.NormNumGroups != 0)
                Fail(source, "block_out_channels", $"block_out_channels value {ch} is not divisible by norm_num_groups {c.NormNumGroups}");
        if (c.LayersPerBlock <= 0)
            Fail(source, "layers_per_block", $"layers_per_block must be positive, got {c.LayersPerBlock}");
        if (c.InChannels <= 0 || c.OutChannels <= 0 || c.LatentChannels <= 0)
            Fail(source, "latent_channels", $"channel counts must be positive, got in_channels {c.InChannels}, out_channels {c.OutChannels}, latent_channels {c.LatentChannels}");
        if (c.ActFn is null || c.ActFn.ToLowerInvariant() is not ("swish" or "silu" or "mish" or "gelu" or "relu"))
            Fail(source, "act_fn", $"Unsupported activation function: {c.ActFn}");
        if (c.SampleSize is { } s && (s.Length == 0 || s[0] <= 0))
            Fail(source, "sample_size", $"sample_size must be a positive integer, got [{string.Join(", ", s)}]");
        if (!(c.ScalingFactor > 0) || double.IsInfinity(c.ScalingFactor))
            Fail(source, "scaling_factor", $"scaling_factor must be a positive number, got {c.ScalingFactor}");
        ModelConfigRanges.AutoencoderKL(c, source);
    }

    /// <summary>diffusers' <c>enable_tiling</c>.</summary>
    public void EnableTiling(bool useTiling = true) => UseTiling = useTiling;

    /// <summary>diffusers' <c>disable_tiling</c>: decode and encode in one piece again.</summary>
    public void DisableTiling() => UseTiling = false;

    /// <summary>diffusers' <c>enable_slicing</c>.</summary>
    public void EnableSlicing() => UseSlicing = true;

    /// <summary>diffusers' <c>disable_slicing</c>: decode a batch in one call again.</summary>
    public void DisableSlicing() => UseSlicing = false;

    /// <summary>The dtype of the model's parameters.</summary>
    public ScalarType DType => quant_conv.weight.dtype;

    /// <summary>The device of the model's parameters.</summary>
    public Device Device => quant_conv.weight.device;

    /// <summary>
    /// diffusers' <c>StableDiffusionXLPipeline.upcast_vae</c> as it runs under torch 2 (its attention processor is
    /// <c>AttnProcessor2_0</c>, so "the attention block does not need to be in float32"): the model to float32, then
    /// <c>post_quant_conv</c>, <c>decoder.conv_in</c> and <c>decoder.mid_block</c> back to the dtype it had. A decode then
    /// runs those in that dtype (its input in <see cref="PostQuantConvDType"/>) and the up blocks in float32 (the decoder
    /// casts after the mid block). Put the model back with <c>to(dtype)</c>.
    /// </summary>
    internal void UpcastVae()
    {
        var dtype = DType;
        this.to(ScalarType.Float32);
        post_quant_conv.to(dtype);
        decoder.InputStagesTo(dtype);
    }

    /// <summary>The dtype of <c>post_quant_conv</c>, the decode's first layer (diffusers casts the latents to it after <c>upcast_vae</c>).</summary>
    internal ScalarType PostQuantConvDType => post_quant_conv.weight.dtype;

    /// <summary>Encodes images (B, in_channels, H, W) into the latent posterior (dispose it when done).</summary>
    public AutoencoderKLOutput Encode(Tensor x)
    {
        CheckInput(x, Config.InChannels, "Encode", "images", encoder.InputDType);
        long min = encoder.MinInputSize;
        if (x.shape[2] < min || x.shape[3] < min)
            throw new ArgumentException(
                $"AutoencoderKL.Encode: the images are {x.shape[3]}x{x.shape[2]}, but the encoder's {BlockOutChannels.Count - 1} downsamplers (stride 2, 3×3) need at least {min}x{min}",
                "images");
        if (UseTiling && (x.shape[^1] > TileSampleMinSize || x.shape[^2] > TileSampleMinSize))
            return TiledEncode(x);
        using var scope = torch.NewDisposeScope();
        Tensor h;
        if (UseSlicing && x.shape[0] > 1)
        {
            var slices = x.split(1);
            var encoded = slices.Select(s => encoder.Forward(s)).ToArray();
            h = torch.cat(encoded, dim: 0);
            foreach (var e in encoded) e.Dispose();
        }
        else
            h = encoder.Forward(x);
        var moments = quant_conv.forward(h);
        _hook?.Invoke("quant_conv", moments);
        return new AutoencoderKLOutput(new DiagonalGaussianDistribution(moments.MoveToOuterDisposeScope()));
    }

    /// <summary>Decodes latents (B, latent_channels, h, w) into images (B, out_channels, h·s, w·s). The latents are not rescaled.</summary>
    public DecoderOutput Decode(Tensor z)
    {
        CheckInput(z, Config.LatentChannels, "Decode", "latents", PostQuantConvDType);
        // What the caller freed before (a pipeline's UNet activations) goes back to the OS first, and the decoder's
        // few very large activations (134-268 MB at 512²) are mapped one by one rather than carved from the heap,
        // which they fragment (peak memory; see NativeSetup.TrimNativeHeap and MapLargeBlocks). A small decoder
        // (TAESD) does neither: it fits in the freed heap, and re-faulting trimmed pages would cost it 0.2 s.
        Runtime.NativeSetup.TrimNativeHeap();
        using var largeBlocks = Runtime.NativeSetup.MapLargeBlocks(decoder.UpscaleDType.ElementSize());
        if (UseSlicing && z.shape[0] > 1)
        {
            using var scope = torch.NewDisposeScope();
            var decoded = z.split(1).Select(DecodeOne).ToArray();
            var sample = torch.cat(decoded, dim: 0);
            foreach (var d in decoded) d.Dispose();
            return new DecoderOutput(sample.MoveToOuterDisposeScope());
        }
        return new DecoderOutput(DecodeOne(z));
    }

    private Tensor DecodeOne(Tensor z)
    {
        if (UseTiling && (z.shape[^1] > TileLatentMinSize || z.shape[^2] > TileLatentMinSize))
            return TiledDecode(z);
        using var scope = torch.NewDisposeScope();
        var h = post_quant_conv.forward(z);
        _hook?.Invoke("post_quant_conv", h);
        return decoder.Forward(h).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// diffusers' <c>AutoencoderKL.forward</c>: encode, take the posterior's mode (or a sample drawn with
    /// <paramref name="generator"/> when <paramref name="samplePosterior"/>), decode.
    /// </summary>
    public DecoderOutput Forward(Tensor sample, bool samplePosterior = false, Generator? generator = null)
    {
        using var posterior = Encode(sample).LatentDist;
        using var z = samplePosterior ? posterior.Sample(generator) : posterior.Mode();
        return Decode(z);
    }

    private static void CheckInput(Tensor x, int channels, string op, string what, ScalarType dtype)
    {
        ModelInputs.NotEmpty(x, $"AutoencoderKL.{op}", what);
        if (x.dim() != 4 || x.shape[1] != channels)
            throw new ArgumentException($"AutoencoderKL.{op} expects {what} of shape (batch, {channels}, height, width), got {Layers.Shape(x)}");
        ModelInputs.SameDType(x, dtype, $"AutoencoderKL.{op}", what);
    }
}
