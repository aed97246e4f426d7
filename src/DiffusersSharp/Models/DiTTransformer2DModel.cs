using DiffusersSharp.Loading;
using TorchSharp.Modules;
using static DiffusersSharp.Models.ConfigRanges;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// The patch-input form of diffusers' top-level <c>Transformer2DModel</c> (models/transformer_2d.py, v0.25.1,
/// <c>is_input_patches</c> with <c>norm_type = "ada_norm_zero"</c>): the class-conditional DiT of
/// <c>facebook/DiT-XL-2-256</c>, whose <c>transformer/config.json</c> names <c>Transformer2DModel</c> (later diffusers calls
/// this form <c>DiTTransformer2DModel</c>). A latent (B, C, H, W) → <c>pos_embed</c> (<see cref="PatchEmbed"/>: p×p
/// patches plus the sin-cos table) → <c>num_layers</c> <see cref="AdaNormZeroTransformerBlock"/>s conditioned on the
/// timestep and class label → the output layer (layer norm modulated by <c>proj_out_1</c> of SiLU(block 0's
/// <c>norm1.emb</c>), <c>proj_out_2</c> to p·p·out_channels per token) → unpatchify to (B, out_channels, H, W). The
/// continuous form inside UNets is <see cref="Transformer2DModel"/>; the discrete (VQ) and PixArt (<c>ada_norm_single</c>)
/// forms are not ported and are refused.
/// </summary>
public sealed partial class DiTTransformer2DModel : nn.Module
{
    private readonly PatchEmbed pos_embed;
    private readonly ModuleList<AdaNormZeroTransformerBlock> transformer_blocks;
    private readonly Linear proj_out_1;
    private readonly Linear proj_out_2;

    /// <summary>The config the model was built from.</summary>
    public Transformer2DModelConfig Config { get; }
    /// <summary>heads × head dim: the token width.</summary>
    public int InnerDim { get; }
    /// <summary><c>in_channels</c>.</summary>
    public int InChannels { get; }
    /// <summary><c>out_channels</c> (in_channels when the config has none).</summary>
    public int OutChannels { get; }
    /// <summary><c>patch_size</c>.</summary>
    public int PatchSize { get; }
    /// <summary><c>sample_size</c>: the latent's height and width.</summary>
    public int SampleSize { get; }
    /// <summary><c>num_embeds_ada_norm</c>: the classes; the id after them is the null class of classifier-free guidance.</summary>
    public int NumClasses { get; }

    /// <summary>Weights' dtype.</summary>
    public ScalarType DType => proj_out_2.weight!.dtype;
    /// <summary>Weights' device.</summary>
    public Device Device => proj_out_2.weight!.device;

    /// <summary>Test hook: ("patch_embed" | "transformer_blocks.N" | "conditioning", output).</summary>
    internal Action<string, Tensor>? DebugHook { get; set; }

    /// <summary>Builds the model with random weights. Invalid configs throw <see cref="ConfigException"/>.</summary>
    public static DiTTransformer2DModel FromConfig(Transformer2DModelConfig config, string? source = null) =>
        ModuleScope.Run(() => new DiTTransformer2DModel(config, source));

    private DiTTransformer2DModel(Transformer2DModelConfig config, string? source) : base(nameof(DiTTransformer2DModel))
    {
        Validate(config, source ?? "Transformer2DModel config");
        Config = config;
        var c = config;
        InnerDim = c.NumAttentionHeads * c.AttentionHeadDim;
        InChannels = c.InChannels!.Value;
        OutChannels = c.OutChannels ?? InChannels;
        PatchSize = c.PatchSize!.Value;
        SampleSize = c.SampleSize!.Value;
        NumClasses = c.NumEmbedsAdaNorm!.Value;
        // diffusers: interpolation_scale = max(sample_size // 64, 1)
        pos_embed = new PatchEmbed(SampleSize, SampleSize, PatchSize, InChannels, InnerDim, Math.Max(SampleSize / 64, 1));
        transformer_blocks = new ModuleList<AdaNormZeroTransformerBlock>();
        for (int i = 0; i < c.NumLayers; i++)
            transformer_blocks.Add(new AdaNormZeroTransformerBlock(InnerDim, c.NumAttentionHeads, c.AttentionHeadDim, NumClasses,
                c.Dropout, c.ActivationFn, c.AttentionBias, c.UpcastAttention, c.NormElementwiseAffine, c.NormEps));
        proj_out_1 = Layers.Linear(InnerDim, 2 * InnerDim);
        proj_out_2 = Layers.Linear(InnerDim, PatchSize * PatchSize * OutChannels);
        RegisterComponents();
    }

    private static void Validate(Transformer2DModelConfig c, string source)
    {
        if (c.NumVectorEmbeds is not null)
            Fail(source, "num_vector_embeds", $"discrete (vector-embedding) input is not supported by DiffusersSharp, got num_vector_embeds {c.NumVectorEmbeds}");
        if (c.InChannels is not int ic)
            Fail(source, "in_channels", "the patch-input Transformer2DModel needs in_channels, got null");
        else Int(source, "in_channels", ic, 1, MaxChannels);
        if (c.PatchSize is not int p)
            Fail(source, "patch_size", "a top-level Transformer2DModel is built by DiffusersSharp for patch input (DiT) only, which needs patch_size; got null (continuous input is the Transformer2DModel inside UNets)");
        else Int(source, "patch_size", p, 1, MaxKernel);
        if (c.SampleSize is not int size)
            Fail(source, "sample_size", "Transformer2DModel over patched input must provide sample_size, got null");
        else Int(source, "sample_size", size, 1, MaxSampleSize);
        if (c.SampleSize!.Value % c.PatchSize!.Value != 0)
            Fail(source, "patch_size", $"patch_size {c.PatchSize} does not divide sample_size {c.SampleSize}: the latent would not split into whole patches");
        if (c.NormType != "ada_norm_zero")
            Fail(source, "norm_type", c.NormType == "ada_norm_single"
                ? "norm_type 'ada_norm_single' (PixArt) is not supported by DiffusersSharp (supported for patch input: ada_norm_zero)"
                : $"unknown norm_type '{c.NormType}' for patch input (supported: ada_norm_zero; diffusers also has ada_norm_single, not ported)");
        if (c.NumEmbedsAdaNorm is not int classes)
            Fail(source, "num_embeds_ada_norm", "`norm_type` is set to ada_norm_zero, but `num_embeds_ada_norm` is not defined");
        else Int(source, "num_embeds_ada_norm", classes, 1, MaxClassEmbeds);
        Int(source, "num_attention_heads", c.NumAttentionHeads, 1, MaxChannels);
        Int(source, "attention_head_dim", c.AttentionHeadDim, 1, MaxChannels);
        long inner = (long)c.NumAttentionHeads * c.AttentionHeadDim;
        if (inner > MaxChannels || inner % 4 != 0)
            Fail(source, "attention_head_dim", $"num_attention_heads × attention_head_dim = {inner} must be a multiple of 4 (the 2-D sin-cos table) and at most {MaxChannels}");
        Int(source, "num_layers", c.NumLayers, 1, 1000);
        if (c.OutChannels is int oc) Int(source, "out_channels", oc, 1, MaxChannels);
        if (c.CrossAttentionDim is not null || c.OnlyCrossAttention || c.DoubleSelfAttention)
            Fail(source, c.CrossAttentionDim is not null ? "cross_attention_dim" : c.OnlyCrossAttention ? "only_cross_attention" : "double_self_attention",
                "a patch-input Transformer2DModel with cross-attention is not supported by DiffusersSharp (DiT has none)");
        if (c.CaptionChannels is not null)
            Fail(source, "caption_channels", "PixArt's caption projection is not supported by DiffusersSharp");
        if (c.AttentionType != "default")
            Fail(source, "attention_type", $"attention_type '{c.AttentionType}' is not supported by DiffusersSharp (supported: default)");
        if (c.ActivationFn is not ("geglu" or "gelu" or "gelu-approximate" or "geglu-approximate"))
            Fail(source, "activation_fn", $"unsupported activation_fn '{c.ActivationFn}' (expected geglu, gelu, gelu-approximate or geglu-approximate)");
        if (!double.IsFinite(c.NormEps) || c.NormEps <= 0)
            Fail(source, "norm_eps", $"norm_eps must be a positive number, got {c.NormEps}");
        if (!double.IsFinite(c.Dropout) || c.Dropout < 0 || c.Dropout > 1)
            Fail(source, "dropout", $"dropout must be between 0 and 1, got {c.Dropout}");
    }

    /// <summary>
    /// One prediction: <paramref name="sample"/> (B, in_channels, H, W), <paramref name="timestep"/> (1-D: one value or one
    /// per batch item, int or float) and <paramref name="classLabels"/> (int64 [B]; the null class is
    /// <see cref="NumClasses"/>) → (B, out_channels, H, W). H and W: equal multiples of patch_size (diffusers
    /// unpatchifies a square grid). The caller owns the output.
    /// </summary>
    public Transformer2DModelOutput Forward(Tensor sample, Tensor timestep, Tensor classLabels)
    {
        ModelInputs.NotEmpty(sample, "Transformer2DModel", "sample");
        ArgumentNullException.ThrowIfNull(timestep);
        ArgumentNullException.ThrowIfNull(classLabels);
        if (sample.dim() != 4 || sample.shape[1] != InChannels)
            throw new ArgumentException($"Transformer2DModel expects a sample of shape (batch, {InChannels}, height, width), got {Layers.Shape(sample)}", nameof(sample));
        ModelInputs.SameDType(sample, DType, "Transformer2DModel", "sample");
        long height = sample.shape[2], width = sample.shape[3];
        if (height % PatchSize != 0 || width % PatchSize != 0 || height != width)
            throw new ArgumentException(
                $"Transformer2DModel: the sample is {height}×{width}, but patch input needs a square latent whose side is a multiple of patch_size {PatchSize} (diffusers unpatchifies a square grid of whole patches)",
                nameof(sample));
        if (timestep.dim() != 1)
            throw new ArgumentException($"Transformer2DModel: timestep must be 1-D (one value, or one per batch item), got shape {Layers.Shape(timestep)}", nameof(timestep));
        if (classLabels.dim() != 1 || classLabels.shape[0] != sample.shape[0])
            throw new ArgumentException($"Transformer2DModel: class_labels must be 1-D with one label per batch item ({sample.shape[0]}), got shape {Layers.Shape(classLabels)}", nameof(classLabels));
        Runtime.OneDnnConvolutions.BeforePass(Runtime.OneDnnConvolutions.AtRisk([pos_embed.Kernel.shape], DType == ScalarType.BFloat16));

        using var scope = NewDisposeScope();
        var hook = DebugHook;
        long h = height / PatchSize, w = width / PatchSize;
        var x = pos_embed.Forward(sample);
        hook?.Invoke("patch_embed", x);
        for (int i = 0; i < transformer_blocks.Count; i++)
        {
            x = transformer_blocks[i].Forward(x, timestep, classLabels);
            hook?.Invoke($"transformer_blocks.{i}", x);
        }

        var conditioning = transformer_blocks[0].Norm1.Emb.Forward(timestep, classLabels, x.dtype);
        hook?.Invoke("conditioning", conditioning);
        var shiftScale = proj_out_1.forward(nn.functional.silu(conditioning)).chunk(2, dim: 1);
        x = nn.functional.layer_norm(x, [InnerDim], eps: 1e-6) * (1 + shiftScale[1].unsqueeze(1)) + shiftScale[0].unsqueeze(1);
        x = proj_out_2.forward(x);

        // unpatchify: (B, h·w, p·p·c) → (B, h, w, p, p, c) → einsum nhwpqc->nchpwq → (B, c, h·p, w·p)
        var output = x.reshape(-1, h, w, PatchSize, PatchSize, OutChannels)
            .permute(0, 5, 1, 3, 2, 4)
            .reshape(-1, OutChannels, h * PatchSize, w * PatchSize);
        return new Transformer2DModelOutput(output.MoveToOuterDisposeScope());
    }
}
