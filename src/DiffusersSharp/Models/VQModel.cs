using DiffusersSharp.Loading;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static DiffusersSharp.Models.ConfigRanges;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>VQModel</c> (models/vq_model.py, v0.25.1): the VQ-VAE of latent diffusion (<c>CompVis/ldm-celebahq-256</c>,
/// <c>CompVis/ldm-super-resolution-4x-openimages</c>). <see cref="Encode"/> maps images in [-1, 1] to latents
/// (<c>encoder</c> without <c>double_z</c> → <c>quant_conv</c>, not quantized); <see cref="Decode"/> quantizes them to the
/// nearest codebook vectors first (<c>quantize</c>, unless <c>forceNotQuantize</c>), then <c>post_quant_conv</c> →
/// <c>decoder</c>. The encoder and decoder are AutoencoderKL's. Only <c>norm_type</c> "group" is ported.
/// </summary>
public sealed partial class VQModel : nn.Module
{
    private readonly Encoder encoder;
    private readonly Conv2d quant_conv;
    private readonly VectorQuantizer quantize;
    private readonly Conv2d post_quant_conv;
    private readonly Decoder decoder;

    /// <summary>The config the model was built from.</summary>
    public VQModelConfig Config { get; }

    /// <summary>The codebook quantizer (diffusers' <c>vq.quantize</c>).</summary>
    public VectorQuantizer Quantize => quantize;

    /// <summary><c>scaling_factor</c> of the config (LDMPipeline divides the latents by it before decoding).</summary>
    public double ScalingFactor => Config.ScalingFactor;

    /// <summary>Image pixels per latent cell: <c>2^(len(block_out_channels) - 1)</c>.</summary>
    public int ScaleFactor => 1 << (Config.BlockOutChannels.Length - 1);

    /// <summary>
    /// Run the encoder and decoder in channels-last layout (faster oneDNN convolutions on CPU; the same numbers up to float
    /// rounding), as <see cref="AutoencoderKL.ChannelsLast"/>; on by default.
    /// </summary>
    public bool ChannelsLast
    {
        get => decoder.ChannelsLast;
        set { decoder.ChannelsLast = value; encoder.ChannelsLast = value; }
    }

    /// <summary>The dtype of the model's parameters.</summary>
    public ScalarType DType => quant_conv.weight!.dtype;

    /// <summary>The device of the model's parameters.</summary>
    public Device Device => quant_conv.weight!.device;

    /// <summary>Builds the model with random weights. Invalid or unsupported configs throw <see cref="ConfigException"/>.</summary>
    public static VQModel FromConfig(VQModelConfig config, string? source = null) =>
        ModuleScope.Run(() => new VQModel(config, source));

    private VQModel(VQModelConfig config, string? source) : base(nameof(VQModel))
    {
        Validate(config, source ?? "VQModel config");
        Config = config;
        var c = config;
        int embedDim = c.EffectiveVqEmbedDim;
        encoder = new Encoder(c.InChannels, c.LatentChannels, c.DownBlockTypes, c.BlockOutChannels, c.LayersPerBlock,
            c.NormNumGroups, c.ActFn, doubleZ: false, midBlockAddAttention: c.MidBlockAddAttention);
        quant_conv = Layers.Conv2d(c.LatentChannels, embedDim, 1);
        quantize = new VectorQuantizer(c.NumVqEmbeddings, embedDim, beta: 0.25);
        post_quant_conv = Layers.Conv2d(embedDim, c.LatentChannels, 1);
        decoder = new Decoder(c.LatentChannels, c.OutChannels, c.UpBlockTypes, c.BlockOutChannels, c.LayersPerBlock,
            c.NormNumGroups, c.ActFn, c.NormType, c.MidBlockAddAttention);
        RegisterComponents();
    }

    private static void Validate(VQModelConfig c, string source)
    {
        List(source, "block_out_channels", c.BlockOutChannels);
        List(source, "down_block_types", c.DownBlockTypes);
        List(source, "up_block_types", c.UpBlockTypes);
        AllFinite(c, source);
        if (c.DownBlockTypes.Length != c.BlockOutChannels.Length)
            Fail(source, "down_block_types", $"needs one down block type per block_out_channels entry ({c.BlockOutChannels.Length}), got {c.DownBlockTypes.Length}");
        if (c.UpBlockTypes.Length != c.BlockOutChannels.Length)
            Fail(source, "up_block_types", $"needs one up block type per block_out_channels entry ({c.BlockOutChannels.Length}), got {c.UpBlockTypes.Length}");
        foreach (var t in c.DownBlockTypes)
            if (t != "DownEncoderBlock2D")
                Fail(source, "down_block_types", $"down block type '{t}' is not supported by DiffusersSharp (supported: DownEncoderBlock2D)");
        foreach (var t in c.UpBlockTypes)
            if (t != "UpDecoderBlock2D")
                Fail(source, "up_block_types", $"up block type '{t}' is not supported by DiffusersSharp (supported: UpDecoderBlock2D)");
        if (c.NormType != "group")
            Fail(source, "norm_type", c.NormType == "spatial"
                ? "norm_type 'spatial' (the SpatialNorm decoder of Kandinsky's MoVQ) is not supported by DiffusersSharp (supported: group)"
                : $"unknown norm_type '{c.NormType}' (diffusers' VQModel takes group or spatial)");
        Int(source, "in_channels", c.InChannels, 1, MaxChannels);
        Int(source, "out_channels", c.OutChannels, 1, MaxChannels);
        Int(source, "latent_channels", c.LatentChannels, 1, MaxChannels);
        Int(source, "num_vq_embeddings", c.NumVqEmbeddings, 1, int.MaxValue / 2);
        if (c.VqEmbedDim is int dim) Int(source, "vq_embed_dim", dim, 1, MaxChannels);
        Ints(source, "block_out_channels", c.BlockOutChannels, 1, MaxChannels);
        Int(source, "layers_per_block", c.LayersPerBlock, 1, MaxLayersPerBlock);
        Int(source, "norm_num_groups", c.NormNumGroups, 1, MaxChannels);
        foreach (var ch in c.BlockOutChannels)
            if (ch % c.NormNumGroups != 0)
                Fail(source, "block_out_channels", $"block_out_channels value {ch} is not divisible by norm_num_groups {c.NormNumGroups}");
        if (c.ActFn is null || c.ActFn.ToLowerInvariant() is not ("swish" or "silu" or "mish" or "gelu" or "relu"))
            Fail(source, "act_fn", $"Unsupported activation function: {c.ActFn}");
        if (!(c.ScalingFactor > 0))
            Fail(source, "scaling_factor", $"scaling_factor must be a positive number, got {Fmt(c.ScalingFactor)}");
        ModelSize.Check(source, "VQModel", ModelSize.VQModel(c));
    }

    /// <summary>
    /// diffusers' <c>encode</c>: images (B, in_channels, H, W) in [-1, 1] to latents (B, vq_embed_dim, H/s, W/s), before
    /// quantization. The caller owns the result.
    /// </summary>
    public VQEncoderOutput Encode(Tensor x)
    {
        CheckInput(x, Config.InChannels, "Encode", "images");
        long min = 1L << (Config.BlockOutChannels.Length - 1);
        if (x.shape[2] < min || x.shape[3] < min)
            throw new ArgumentException(
                $"VQModel.Encode: the images are {x.shape[3]}x{x.shape[2]}, but the encoder's {Config.BlockOutChannels.Length - 1} downsamplers (stride 2, 3×3) need at least {min}x{min}",
                "images");
        using var scope = torch.NewDisposeScope();
        var h = quant_conv.forward(encoder.Forward(x));
        return new VQEncoderOutput(h.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// diffusers' <c>decode</c>: latents (B, vq_embed_dim, h, w) to images (B, out_channels, h·s, w·s). Without
    /// <paramref name="forceNotQuantize"/> the latents are quantized first (every position replaced by its nearest codebook
    /// vector), as LDMPipeline and LDMSuperResolutionPipeline decode; with it they go to <c>post_quant_conv</c> as they are,
    /// or, when the config has <c>lookup_from_codebook</c>, <paramref name="h"/> holds codebook indices (int64) and
    /// <paramref name="shape"/> (batch, height, width, vq_embed_dim) says how to lay out their vectors. The latents are not
    /// rescaled. The caller owns the result.
    /// </summary>
    public DecoderOutput Decode(Tensor h, bool forceNotQuantize = false, long[]? shape = null)
    {
        bool lookup = forceNotQuantize && Config.LookupFromCodebook;
        if (lookup)
        {
            ModelInputs.NotEmpty(h, "VQModel.Decode", "indices");
            if (shape is null)
                throw new ArgumentException("VQModel.Decode: the config has lookup_from_codebook, so with forceNotQuantize the input is codebook indices and shape (batch, height, width, channel) must be given", nameof(shape));
        }
        else
            CheckInput(h, Config.EffectiveVqEmbedDim, "Decode", "latents");
        using var scope = torch.NewDisposeScope();
        Tensor quant = !forceNotQuantize ? quantize.Forward(h).Quantized
            : lookup ? quantize.GetCodebookEntry(h, shape!)
            : h;
        var quant2 = post_quant_conv.forward(quant);
        return new DecoderOutput(decoder.Forward(quant2).MoveToOuterDisposeScope());
    }

    /// <summary>diffusers' <c>forward</c>: <see cref="Encode"/> then <see cref="Decode"/> (quantized). The caller owns the result.</summary>
    public DecoderOutput Forward(Tensor sample)
    {
        using var scope = torch.NewDisposeScope();
        var latents = Encode(sample).Latents;
        return new DecoderOutput(Decode(latents).Sample.MoveToOuterDisposeScope());
    }

    private void CheckInput(Tensor x, int channels, string op, string what)
    {
        ModelInputs.NotEmpty(x, $"VQModel.{op}", what);
        if (x.dim() != 4 || x.shape[1] != channels)
            throw new ArgumentException($"VQModel.{op} expects {what} of shape (batch, {channels}, height, width), got {Layers.Shape(x)}", what);
        ModelInputs.SameDType(x, DType, $"VQModel.{op}", what);
    }
}
