using DiffusersSharp.Loading;
using TorchSharp;
using static TorchSharp.torch;
using static DiffusersSharp.Models.ConfigRanges;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>AutoencoderTiny</c> (models/autoencoders/autoencoder_tiny.py, v0.25.1): TAESD, the tiny distilled
/// VAE of Ollin Boer Bohan (<c>madebyollin/taesd</c> for SD 1.x/2.x, <c>madebyollin/taesdxl</c> for SDXL).
/// <see cref="Encode"/> maps images in [-1, 1] straight to latents (no distribution: nothing is drawn);
/// <see cref="Decode"/> maps latents back. It reads and writes the latents of the VAE it was distilled from, already
/// scaled (its <c>scaling_factor</c> is 1.0), so it can stand in for a pipeline's <see cref="AutoencoderKL"/>
/// (<see cref="IVae"/>) or preview a run's latents cheaply. <see cref="ScaleLatents"/> / <see cref="UnscaleLatents"/>
/// and <see cref="QuantizeLatents"/> store latents as 8-bit images, as <see cref="Forward"/> does. With
/// <see cref="EnableTiling"/>, encode and decode run in overlapping tiles as diffusers 0.25.1's do
/// (<see cref="TiledEncode"/>, <see cref="TiledDecode"/>); with <see cref="EnableSlicing"/>, a batch item by item.
/// </summary>
public sealed partial class AutoencoderTiny : nn.Module, IVae
{
    private readonly EncoderTiny encoder;
    private readonly DecoderTiny decoder;
    private readonly ConvKernelLayout _kernels;

    /// <summary>The config the model was built from.</summary>
    public AutoencoderTinyConfig Config { get; }

    /// <summary>Batches are encoded/decoded one item at a time (diffusers' <c>use_slicing</c>).</summary>
    public bool UseSlicing { get; private set; }

    /// <inheritdoc/>
    public double ScalingFactor => Config.ScalingFactor;
    /// <summary>
    /// The config's <c>latent_magnitude</c> (see <see cref="AutoencoderTinyConfig.LatentMagnitude"/>).
    /// </summary>
    public double LatentMagnitude => Config.LatentMagnitude;
    /// <summary>The config's <c>latent_shift</c> (see <see cref="AutoencoderTinyConfig.LatentShift"/>).</summary>
    public double LatentShift => Config.LatentShift;
    /// <summary>Always false: diffusers registers <c>force_upcast = False</c> for TAESD.</summary>
    public bool ForceUpcast => false;

    /// <summary>Image pixels per latent cell: <c>2^(len(block_out_channels) - 1)</c> (the pipelines' <c>vae_scale_factor</c>).</summary>
    public int ScaleFactor => 1 << (BlockOutChannels.Count - 1);

    /// <summary>What diffusers registers as <c>block_out_channels</c>: <c>decoder_block_out_channels</c>.</summary>
    public IReadOnlyList<int> BlockOutChannels => Config.DecoderBlockOutChannels;

    /// <summary>
    /// Run the encoder and decoder in channels-last layout (NHWC strides; the outputs are contiguous NCHW either way), as
    /// <see cref="AutoencoderKL.ChannelsLast"/>; on by default. In NCHW, oneDNN reorders every activation into a blocked
    /// layout and back around each convolution: <c>bench -- tiny-vae</c> (64² → 512², 2 threads) measured channels-last
    /// 26% faster in bf16 and 10% in fp32, equal up to float rounding (summation order).
    /// </summary>
    public bool ChannelsLast { get; set; } = true;

    /// <summary>The decoder, for tests of its bands of rows (<see cref="DecoderTiny.BandBytes"/>).</summary>
    internal DecoderTiny DecoderForTests => decoder;

    /// <summary>Test hook: (module path, output) for <c>encoder.layers.i</c> and <c>decoder.layers.i</c>.</summary>
    internal Action<string, Tensor>? IntermediateHook
    {
        set
        {
            encoder.DebugHook = value is null ? null : (n, t) => value("encoder." + n, t);
            decoder.DebugHook = value is null ? null : (n, t) => value("decoder." + n, t);
        }
    }

    /// <summary>Builds the model with random weights. Invalid configs throw <see cref="ConfigException"/>.</summary>
    public static AutoencoderTiny FromConfig(AutoencoderTinyConfig config, string? source = null) =>
        ModuleScope.Run(() => new AutoencoderTiny(config, source));

    private AutoencoderTiny(AutoencoderTinyConfig config, string? source) : base(nameof(AutoencoderTiny))
    {
        Validate(config, source ?? "AutoencoderTiny config");
        // diffusers registers block_out_channels = decoder_block_out_channels and force_upcast = False
        Config = config with { BlockOutChannels = config.DecoderBlockOutChannels, ForceUpcast = false };
        var c = config;
        encoder = new EncoderTiny(c.InChannels, c.LatentChannels, c.NumEncoderBlocks, c.EncoderBlockOutChannels, c.ActFn);
        decoder = new DecoderTiny(c.LatentChannels, c.OutChannels, c.NumDecoderBlocks, c.DecoderBlockOutChannels,
            c.UpsamplingScalingFactor, c.ActFn);
        RegisterComponents();
        _kernels = new ConvKernelLayout(this, () => decoder.FirstKernel, ChannelsLast);
        InitTiling();
    }

    private static void Validate(AutoencoderTinyConfig c, string source)
    {
        CheckList(source, "encoder_block_out_channels", c.EncoderBlockOutChannels, positive: true);
        CheckList(source, "decoder_block_out_channels", c.DecoderBlockOutChannels, positive: true);
        CheckList(source, "num_encoder_blocks", c.NumEncoderBlocks, positive: false);
        CheckList(source, "num_decoder_blocks", c.NumDecoderBlocks, positive: false);
        if (c.EncoderBlockOutChannels.Length != c.NumEncoderBlocks.Length)
            Fail(source, "num_encoder_blocks", "`encoder_block_out_channels` should have the same length as `num_encoder_blocks`." +
                $" (got {c.EncoderBlockOutChannels.Length} and {c.NumEncoderBlocks.Length})");
        if (c.DecoderBlockOutChannels.Length != c.NumDecoderBlocks.Length)
            Fail(source, "num_decoder_blocks", "`decoder_block_out_channels` should have the same length as `num_decoder_blocks`." +
                $" (got {c.DecoderBlockOutChannels.Length} and {c.NumDecoderBlocks.Length})");
        for (int i = 1; i < c.EncoderBlockOutChannels.Length; i++)
            if (c.EncoderBlockOutChannels[i] != c.EncoderBlockOutChannels[i - 1])
                Fail(source, "encoder_block_out_channels",
                    $"every stage must keep the previous stage's channel count (its stride-2 conv maps c → c), got [{string.Join(", ", c.EncoderBlockOutChannels)}]");
        for (int i = 1; i < c.DecoderBlockOutChannels.Length; i++)
            if (c.DecoderBlockOutChannels[i] != c.DecoderBlockOutChannels[i - 1])
                Fail(source, "decoder_block_out_channels",
                    $"every stage must keep the previous stage's channel count (its last conv maps c → c), got [{string.Join(", ", c.DecoderBlockOutChannels)}]");
        if (c.InChannels <= 0 || c.OutChannels <= 0 || c.LatentChannels <= 0)
            Fail(source, "latent_channels", $"channel counts must be positive, got in_channels {c.InChannels}, out_channels {c.OutChannels}, latent_channels {c.LatentChannels}");
        if (c.UpsamplingScalingFactor <= 0)
            Fail(source, "upsampling_scaling_factor", $"upsampling_scaling_factor must be positive, got {c.UpsamplingScalingFactor}");
        if (c.ActFn is null || c.ActFn.ToLowerInvariant() is not ("swish" or "silu" or "mish" or "gelu" or "relu"))
            Fail(source, "act_fn", $"Unsupported activation function: {c.ActFn}");
        if (!(c.LatentMagnitude > 0) || double.IsInfinity(c.LatentMagnitude))
            Fail(source, "latent_magnitude", $"latent_magnitude must be a positive number, got {c.LatentMagnitude}");
        if (!double.IsFinite(c.LatentShift))
            Fail(source, "latent_shift", $"latent_shift must be a finite number, got {c.LatentShift}");
        if (!(c.ScalingFactor > 0) || double.IsInfinity(c.ScalingFactor))
            Fail(source, "scaling_factor", $"scaling_factor must be a positive number, got {c.ScalingFactor}");
    }

    private static void CheckList(string source, string key, int[]? values, bool positive)
    {
        if (values is null || values.Length == 0)
            Fail(source, key, $"{key} must be a non-empty list");
        foreach (var v in values!)
            if (positive ? v <= 0 : v < 0)
                Fail(source, key, $"{key} values must be {(positive ? "positive" : "≥ 0")}, got [{string.Join(", ", values)}]");
    }

    /// <inheritdoc/>
    public string ClassName => nameof(AutoencoderTiny);
    /// <inheritdoc/>
    public int InChannels => Config.InChannels;
    /// <inheritdoc/>
    public int LatentChannels => Config.LatentChannels;

    /// <summary>The dtype of the model's parameters.</summary>
    public ScalarType DType => Layers.ParamDType(this);

    /// <summary>The device of the model's parameters.</summary>
    public Device Device => parameters().First().device;

    /// <summary>diffusers' <c>enable_slicing</c>.</summary>
    public void EnableSlicing() => UseSlicing = true;

    /// <summary>diffusers' <c>disable_slicing</c>: encode and decode a batch in one call again.</summary>
    public void DisableSlicing() => UseSlicing = false;

    /// <summary>diffusers' <c>scale_latents</c>: raw latents → [0, 1], <c>(x / (2 · latent_magnitude) + latent_shift).clamp(0, 1)</c>.</summary>
    public Tensor ScaleLatents(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        return x.div(2 * LatentMagnitude).add_(LatentShift).clamp_(0, 1).MoveToOuterDisposeScope();
    }

    /// <summary>diffusers' <c>unscale_latents</c>: [0, 1] → raw latents, <c>(x − latent_shift) · 2 · latent_magnitude</c>.</summary>
    public Tensor UnscaleLatents(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        return x.sub(LatentShift).mul_(2 * LatentMagnitude).MoveToOuterDisposeScope();
    }

    /// <summary>Latents as an 8-bit image would store them: <c>scale_latents(x).mul(255).round().byte()</c> (uint8).</summary>
    public Tensor QuantizeLatents(Tensor latents)
    {
        using var scope = torch.NewDisposeScope();
        return ScaleLatents(latents).mul_(255).round_().to(ScalarType.Byte).MoveToOuterDisposeScope();
    }

    /// <summary>The latents back from <see cref="QuantizeLatents"/>: <c>unscale_latents(q / 255.0)</c> (float32, as torch's default dtype).</summary>
    public Tensor DequantizeLatents(Tensor quantized)
    {
        using var scope = torch.NewDisposeScope();
        return UnscaleLatents(quantized / 255.0).MoveToOuterDisposeScope();
    }

    /// <summary>Encodes images in [-1, 1] (B, in_channels, H, W) into latents (dispose the output).</summary>
    public AutoencoderTinyOutput Encode(Tensor x)
    {
        CheckInput(x, Config.InChannels, "Encode", "images", latents: false);
        return new AutoencoderTinyOutput(Sliced(x, item => UseTiling ? Tiled(item, encode: true) : InLayout(item, encoder)));
    }

    /// <summary>
    /// Decodes latents (B, latent_channels, h, w) into images in [-1, 1]. The latents are not rescaled. They are in the
    /// model's dtype or, for a float32 model, integers, which diffusers' decoder turns into float32.
    /// </summary>
    public DecoderOutput Decode(Tensor z)
    {
        CheckInput(z, Config.LatentChannels, "Decode", "latents", latents: true);
        return new DecoderOutput(Sliced(z, item => UseTiling ? Tiled(item, encode: false) : InLayout(item, decoder)));
    }

    // diffusers 0.25.1's sliced encode runs the encoder on the whole batch once per slice (a batch of n gives n²
    // items); here each slice is encoded once, as the option means (and as diffusers does with tiling on).
    private Tensor Sliced(Tensor x, Func<Tensor, Tensor> run)
    {
        if (!UseSlicing || x.shape[0] <= 1) return run(x);
        using var scope = torch.NewDisposeScope();
        var outputs = x.split(1).Select(run).ToArray();
        return torch.cat(outputs, 0).MoveToOuterDisposeScope();
    }

    private Tensor InLayout(Tensor x, nn.Module<Tensor, Tensor> part)
    {
        _kernels.Follow(ChannelsLast);
        if (!ChannelsLast || x.dim() != 4) return part.forward(x);
        using var scope = torch.NewDisposeScope();
        var output = part.forward(Layers.ToChannelsLast(x));
        return output.contiguous().MoveToOuterDisposeScope();
    }

    /// <summary>
    /// diffusers' <c>AutoencoderTiny.forward</c>: encode, quantise the latents to 8 bits as if stored in an RGBA image
    /// (<see cref="QuantizeLatents"/>), read them back (<see cref="DequantizeLatents"/>), decode. The latents read back are
    /// decoded in the model's dtype: with tiling on, the encode gives float32 whatever the model's dtype (as diffusers
    /// 0.25.1's <c>_tiled_encode</c> does, after which its half-precision decode fails on the dtype mismatch).
    /// </summary>
    public DecoderOutput Forward(Tensor sample)
    {
        using var scope = torch.NewDisposeScope();
        using var enc = Encode(sample);
        var quantized = QuantizeLatents(enc.Latents);
        var unscaled = DequantizeLatents(quantized).to(DType);
        var dec = Decode(unscaled).Sample;
        return new DecoderOutput(dec.MoveToOuterDisposeScope());
    }

    IVaeEncoding IVae.Encode(Tensor images) => Encode(images);

    void IVae.SetEvalMode() => eval();

    /// <summary>
    /// The input must hold values of the model's shape and dtype. Integer (or bool) latents are decoded where the model
    /// runs in float32: diffusers' decoder starts with <c>tanh(x / 3) * 3</c>, whose true division turns them into
    /// float32 (torch's default dtype) values, the same as those latents given in float32. Integer images stay refused:
    /// the encoder's <c>x.add(1).div(2)</c> reads a uint8 image of [0, 255] as far outside [-1, 1] (and wraps 255 to 0).
    /// </summary>
    private void CheckInput(Tensor x, int channels, string op, string what, bool latents)
    {
        ModelInputs.NotEmpty(x, $"AutoencoderTiny.{op}", what);
        if (x.dim() != 4 || x.shape[1] != channels)
            throw new ArgumentException($"AutoencoderTiny.{op} expects {what} of shape (batch, {channels}, height, width), got {Layers.Shape(x)}");
        if (latents && x.is_integral() && DType == ScalarType.Float32)
            return;
        ModelInputs.SameDType(x, DType, $"AutoencoderTiny.{op}", what);
    }
}
