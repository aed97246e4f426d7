using DiffusersSharp.Loading;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using V = DiffusersSharp.Models.ControlNetModelConfigValidation;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>ControlNetModel</c> (models/controlnet.py, v0.25.1): a copy of a UNet's encoder half (conv_in, the time
/// and added embeddings, the down blocks and the mid block) that also sees a control image through
/// <see cref="ControlNetConditioningEmbedding"/> (added to conv_in's output), and hands the UNet one residual per skip
/// state and one for the mid block, each through a 1×1 "zero convolution" (<c>controlnet_down_blocks.{j}</c>,
/// <c>controlnet_mid_block</c>) and scaled by <c>conditioning_scale</c>. Blocks come from the <see cref="UNet2DBlocks"/>
/// registry, embeddings through <see cref="IUNetEmbedding"/>. Build with <see cref="FromConfig"/>, <see cref="FromUnet"/>
/// or <see cref="FromPretrained"/>; run with <see cref="Forward"/>.
/// </summary>
public sealed partial class ControlNetModel : nn.Module
{
    private readonly Conv2d conv_in;
    private readonly Timesteps time_proj;
    private readonly TimestepEmbedding time_embedding;
    private readonly Linear? encoder_hid_proj;
    private readonly nn.Module<Tensor, Tensor>? class_embedding;
    private readonly Timesteps? add_time_proj;
    private readonly TimestepEmbedding? add_embedding;
    private readonly ControlNetConditioningEmbedding controlnet_cond_embedding;
    private readonly ModuleList<UNetDownBlock> down_blocks = new();
    private readonly ModuleList<Conv2d> controlnet_down_blocks = new();
    private readonly Conv2d controlnet_mid_block;
    private readonly UNetMidBlock mid_block;

    private readonly IUNetEmbedding _timeEmbedding;
    private readonly IUNetEmbedding? _classEmbedding;
    private readonly IUNetEmbedding? _addedEmbedding;

    /// <summary>The model's config.</summary>
    public ControlNetModelConfig Config { get; }

    /// <summary>Builds the model with random weights (zero convolutions zero). Invalid configs throw <see cref="ConfigException"/>.</summary>
    public static ControlNetModel FromConfig(ControlNetModelConfig config, string? source = null) =>
        ModuleScope.Run(() => new ControlNetModel(config, source));

    private ControlNetModel(ControlNetModelConfig config, string? source) : base(nameof(ControlNetModel))
    {
        V.Validate(config, source ?? "ControlNetModel config");
        Config = config;
        var c = config;
        int[] boc = c.BlockOutChannels;
        int n = boc.Length;
        int[] heads = Expand(c.NumAttentionHeads ?? c.AttentionHeadDim, n);
        int[] headDims = Expand(c.AttentionHeadDim, n);
        bool[] onlyCross = Expand(c.OnlyCrossAttention, n);

        // input
        conv_in = Layers.Conv2d(c.InChannels, boc[0], kernel_size: 3, padding: 1);

        // time
        int timeEmbedDim = boc[0] * 4;
        time_proj = new Timesteps(boc[0], c.FlipSinToCos, c.FreqShift);
        time_embedding = new TimestepEmbedding(boc[0], timeEmbedDim, actFn: c.ActFn);
        _timeEmbedding = new UNetTimeEmbedding(time_proj, time_embedding);

        // diffusers sets encoder_hid_dim_type to "text_proj" when only encoder_hid_dim is given (forward never applies it)
        if (c.EncoderHidDim is int ehd)
            encoder_hid_proj = Layers.Linear(ehd, c.CrossAttentionDim);

        // class embedding
        class_embedding = c.ClassEmbedType switch
        {
            null => c.NumClassEmbeds is int nce ? Layers.Embedding(nce, timeEmbedDim) : null,
            "timestep" => new TimestepEmbedding(boc[0], timeEmbedDim),
            "identity" => nn.Identity(),
            _ => new TimestepEmbedding(c.ProjectionClassEmbeddingsInputDim!.Value, timeEmbedDim),   // "projection"
        };
        if (class_embedding is not null)
            _classEmbedding = new UNetClassEmbedding(class_embedding, c.ClassEmbedType == "timestep" ? time_proj : null,
                "class_labels should be provided when num_class_embeds > 0");

        // added embedding (SDXL ControlNets)
        if (c.AdditionEmbedType == "text_time")
        {
            add_time_proj = new Timesteps(c.AdditionTimeEmbedDim!.Value, c.FlipSinToCos, c.FreqShift);
            add_embedding = new TimestepEmbedding(c.ProjectionClassEmbeddingsInputDim!.Value, timeEmbedDim);
            _addedEmbedding = new UNetTextTimeEmbedding(add_time_proj, add_embedding, c.ProjectionClassEmbeddingsInputDim.Value);
        }

        // control net conditioning embedding
        controlnet_cond_embedding = new ControlNetConditioningEmbedding(boc[0], c.ConditioningChannels, c.ConditioningEmbeddingOutChannels);

        // down: every skip state gets a zero convolution
        var common = new UNetBlockArgs
        {
            TembChannels = timeEmbedDim, ResnetEps = c.NormEps, ResnetActFn = c.ActFn, ResnetGroups = c.NormNumGroups,
            CrossAttentionDim = c.CrossAttentionDim, DownsamplePadding = c.DownsamplePadding,
            UseLinearProjection = c.UseLinearProjection, UpcastAttention = c.UpcastAttention == true,
            ResnetTimeScaleShift = c.ResnetTimeScaleShift,
        };
        int outputChannel = boc[0];
        controlnet_down_blocks.Add(ZeroConv(outputChannel));
        for (int i = 0; i < n; i++)
        {
            int inputChannel = outputChannel;
            outputChannel = boc[i];
            bool isFinal = i == n - 1;
            down_blocks.Add(UNet2DBlocks.GetDownBlock(c.DownBlockTypes[i], common with
            {
                NumLayers = c.LayersPerBlock,
                TransformerLayersPerBlock = PerBlockDepths.Down(c.TransformerLayersPerBlock, i).Depths,
                InChannels = inputChannel,
                OutChannels = outputChannel,
                AddDownsample = !isFinal,
                NumAttentionHeads = heads[i],
                AttentionHeadDim = headDims[i],
                OnlyCrossAttention = onlyCross[i],
            }));
            for (int l = 0; l < c.LayersPerBlock; l++) controlnet_down_blocks.Add(ZeroConv(outputChannel));
            if (!isFinal) controlnet_down_blocks.Add(ZeroConv(outputChannel));
        }

        // mid
        controlnet_mid_block = ZeroConv(boc[^1]);
        mid_block = UNet2DBlocks.GetMidBlock(c.MidBlockType!, common with
        {
            TransformerLayersPerBlock = PerBlockDepths.Mid(c.TransformerLayersPerBlock).Depths, // its one layer takes the first of a list entry
            InChannels = boc[^1],
            OutputScaleFactor = c.MidBlockScaleFactor,
            NumAttentionHeads = heads[^1],
        });
        RegisterComponents();
        _kernels = new ConvKernelLayout(this, () => conv_in.weight, ChannelsLast);
    }

    private readonly ConvKernelLayout _kernels;

    /// <summary>
    /// Run the pass in channels-last layout (NCHW shape, NHWC strides), as <see cref="UNet2DConditionModel.ChannelsLast"/>:
    /// unless set, on for bf16/fp16 (whose NCHW convolutions are slower) and off for fp32. The residuals are returned in
    /// the layout of the pass (the UNet adds them to its skip states, which are in the same layout by the same rule).
    /// </summary>
    public bool ChannelsLast
    {
        get => _channelsLast ?? DType != ScalarType.Float32;
        set => _channelsLast = value;
    }

    private bool? _channelsLast;

    private static T[] Expand<T>(T[] values, int n) => values.Length == n ? values : Enumerable.Repeat(values[0], n).ToArray();

    private static Conv2d ZeroConv(int channels) => ZeroModule(Layers.Conv2d(channels, channels, kernel_size: 1));

    /// <summary>diffusers' <c>zero_module</c>: every parameter of <paramref name="module"/> set to zero.</summary>
    internal static T ZeroModule<T>(T module) where T : nn.Module
    {
        using var noGrad = torch.no_grad();
        using var zero = 0.0.ToScalar();
        // fill_ returns the tensor itself; TorchSharp 0.107's zero_() returns a new one, which was left to the finalizer
        foreach (var (_, p) in module.named_parameters()) p.fill_(zero);
        return module;
    }

    /// <summary>The number of residuals <see cref="Forward"/> returns for the down path (the UNet's skip states).</summary>
    public int NumDownResiduals => controlnet_down_blocks.Count;

    /// <summary>How many times the conditioning embedding halves the control image (2^n = image size / latent size).</summary>
    public int ConditioningDownsamplings => controlnet_cond_embedding.Downsamplings;

    /// <summary>The dtype of the model's parameters.</summary>
    public ScalarType DType => conv_in.weight.dtype;

    /// <summary>The device of the model's parameters.</summary>
    public Device Device => conv_in.weight.device;

    /// <summary>Number of parameters (each registered parameter counted once, as <c>model.num_parameters()</c>).</summary>
    public long NumParameters() => Layers.NumParameters(this);
}
