using DiffusersSharp.Loading;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using V = DiffusersSharp.Models.UNet2DConditionModelConfigValidation;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>UNet2DConditionModel</c> (models/unet_2d_condition.py, v0.25.1): the Stable Diffusion UNet. A
/// noisy latent, a timestep and text-encoder states (cross-attention context) in, a latent-shaped prediction out.
/// Weight names are diffusers' (<c>down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight</c>, …).
/// Build with <see cref="FromConfig"/> (random weights) or <see cref="FromPretrained"/>.
/// Blocks come from the <see cref="UNet2DBlocks"/> registry and are called through one contract each
/// (<see cref="UNetDownBlock"/>, <see cref="UNetMidBlock"/>, <see cref="UNetUpBlock"/>); the time and class embeddings
/// through <see cref="IUNetEmbedding"/>, SDXL's added "text_time" embedding included. Not ported (refused by the
/// config check): Kandinsky's addition embeddings, image projections, dual cross-attention, GLIGEN, the SimpleCrossAttn
/// blocks.
/// </summary>
public sealed partial class UNet2DConditionModel : nn.Module
{
    private readonly Conv2d conv_in;
    private readonly nn.Module<Tensor, Tensor> time_proj;
    private readonly TimestepEmbedding time_embedding;
    private readonly Linear? encoder_hid_proj;
    private readonly nn.Module<Tensor, Tensor>? class_embedding;
    private readonly Timesteps? add_time_proj;
    private readonly TimestepEmbedding? add_embedding;
    private readonly ModuleList<UNetDownBlock> down_blocks;
    private readonly UNetMidBlock? mid_block;
    private readonly ModuleList<UNetUpBlock> up_blocks;
    private readonly GroupNorm? conv_norm_out;
    private readonly Conv2d conv_out;

    private readonly IUNetEmbedding _timeEmbedding;
    private readonly IUNetEmbedding? _classEmbedding;
    private readonly IUNetEmbedding? _addedEmbedding;
    private readonly Func<Tensor, Tensor>? _timeEmbedAct;
    private readonly Func<Tensor, Tensor> _convAct;
    private Action<string, Tensor>? _hook;

    /// <summary>The config the model was built from.</summary>
    public UNet2DConditionModelConfig Config { get; }

    /// <summary>How many ×2 upsamplers the up path has (diffusers' <c>num_upsamplers</c>).</summary>
    public int NumUpsamplers { get; }

    /// <summary>
    /// Test hook: called with (module path, output) after each top-level stage of a forward pass and after each
    /// Transformer2DModel and its blocks' attn1 / attn2 / ff (paths as diffusers names the modules).
    /// </summary>
    internal Action<string, Tensor>? IntermediateHook
    {
        get => _hook;
        set
        {
            _hook = value;
            foreach (var (name, module) in named_modules())
            {
                string path = name;
                if (module is Transformer2DModel t)
                    t.DebugHook = value is null ? null : (sub, x) => value(sub.Length == 0 ? path : path + "." + sub, x);
                else if (module is BasicTransformerBlock b)
                    b.DebugHook = value is null ? null : (sub, x) => value(path + "." + sub, x);
            }
        }
    }

    /// <summary>Builds the model with random weights. Invalid or unsupported configs throw <see cref="ConfigException"/>.</summary>
    public static UNet2DConditionModel FromConfig(UNet2DConditionModelConfig config, string? source = null) =>
        ModuleScope.Run(() => new UNet2DConditionModel(config, source));

    private UNet2DConditionModel(UNet2DConditionModelConfig config, string? source) : base(nameof(UNet2DConditionModel))
    {
        V.Validate(config, source ?? "UNet2DConditionModel config");
        Config = config;
        var c = config;
        int[] boc = c.BlockOutChannels;
        int n = boc.Length;
        int? groups = c.NormNumGroups;    // null: no conv_norm_out (a UNet of K blocks, which build their own norms)
        int[] heads = Expand(c.AttentionHeadDim, n);       // diffusers: num_attention_heads = attention_head_dim
        int[] headDims = Expand(c.AttentionHeadDim, n);    // used as a real head dim by AttnDown/UpBlock2D only
        int[] crossDims = Expand(c.CrossAttentionDim, n);
        int[] layersPerBlock = Expand(c.LayersPerBlock, n);
        bool[] onlyCross = Expand(c.OnlyCrossAttention, n);

        conv_in = Layers.Conv2d(c.InChannels, boc[0], kernel_size: c.ConvInKernel, padding: (c.ConvInKernel - 1) / 2);

        int timeEmbedDim, timestepInputDim;
        if (c.TimeEmbeddingType == "fourier")
        {
            timeEmbedDim = c.TimeEmbeddingDim ?? boc[0] * 2;
            time_proj = new GaussianFourierProjection(timeEmbedDim / 2, setWToWeight: false, log: false, flipSinToCos: c.FlipSinToCos);
            timestepInputDim = timeEmbedDim;
        }
        else
        {
            timeEmbedDim = c.TimeEmbeddingDim ?? boc[0] * 4;
            time_proj = new Timesteps(boc[0], c.FlipSinToCos, c.FreqShift);
            timestepInputDim = boc[0];
        }
        time_embedding = new TimestepEmbedding(timestepInputDim, timeEmbedDim, actFn: c.ActFn,
            postActFn: c.TimestepPostAct, condProjDim: c.TimeCondProjDim);
        _timeEmbedding = new UNetTimeEmbedding(time_proj, time_embedding);

        if (c.EncoderHidDim is int ehd)
            encoder_hid_proj = Layers.Linear(ehd, crossDims[0]);

        class_embedding = c.ClassEmbedType switch
        {
            null => c.NumClassEmbeds is int nce ? Layers.Embedding(nce, timeEmbedDim) : null,
            "timestep" => new TimestepEmbedding(timestepInputDim, timeEmbedDim, actFn: c.ActFn),
            "identity" => nn.Identity(),
            "projection" => new TimestepEmbedding(c.ProjectionClassEmbeddingsInputDim!.Value, timeEmbedDim),
            "simple_projection" => Layers.Linear(c.ProjectionClassEmbeddingsInputDim!.Value, timeEmbedDim),
            _ => null,
        };
        if (class_embedding is not null)
            _classEmbedding = new UNetClassEmbedding(class_embedding, c.ClassEmbedType == "timestep" ? time_proj : null,
                "class_labels should be provided when num_class_embeds > 0");

        if (c.AdditionEmbedType == "text_time")
        {
            add_time_proj = new Timesteps(c.AdditionTimeEmbedDim!.Value, c.FlipSinToCos, c.FreqShift);
            add_embedding = new TimestepEmbedding(c.ProjectionClassEmbeddingsInputDim!.Value, timeEmbedDim);
            _addedEmbedding = new UNetTextTimeEmbedding(add_time_proj, add_embedding, c.ProjectionClassEmbeddingsInputDim.Value);
        }

        if (c.TimeEmbeddingActFn is not null)
            _timeEmbedAct = Activations.Get(c.TimeEmbeddingActFn);

        // what every block gets (diffusers passes the same arguments to get_down_block / get_up_block)
        var common = new UNetBlockArgs
        {
            TembChannels = c.ClassEmbeddingsConcat ? timeEmbedDim * 2 : timeEmbedDim,
            ResnetEps = c.NormEps, ResnetActFn = c.ActFn, ResnetGroups = groups, DownsamplePadding = c.DownsamplePadding,
            DualCrossAttention = c.DualCrossAttention, UseLinearProjection = c.UseLinearProjection,
            UpcastAttention = c.UpcastAttention == true, ResnetTimeScaleShift = c.ResnetTimeScaleShift,
            AttentionType = c.AttentionType, ResnetSkipTimeAct = c.ResnetSkipTimeAct,
            ResnetOutScaleFactor = c.ResnetOutScaleFactor, Dropout = c.Dropout,
        };

        down_blocks = new ModuleList<UNetDownBlock>();
        int outputChannel = boc[0];
        for (int i = 0; i < n; i++)
        {
            int inputChannel = outputChannel;
            outputChannel = boc[i];
            down_blocks.Add(UNet2DBlocks.GetDownBlock(c.DownBlockTypes[i], common with
            {
                NumLayers = layersPerBlock[i],
                TransformerLayersPerBlock = PerBlockDepths.Down(c.TransformerLayersPerBlock, i).Depths,
                InChannels = inputChannel,
                OutChannels = outputChannel,
                AddDownsample = i < n - 1,
                CrossAttentionDim = crossDims[i],
                NumAttentionHeads = heads[i],
                OnlyCrossAttention = onlyCross[i],
                AttentionHeadDim = headDims[i],
            }));
        }

        if (c.MidBlockType is not null)
            mid_block = UNet2DBlocks.GetMidBlock(c.MidBlockType, common with
            {
                TransformerLayersPerBlock = PerBlockDepths.Mid(c.TransformerLayersPerBlock).Depths, // its one layer takes the first of a list entry
                InChannels = boc[^1],
                OutputScaleFactor = c.MidBlockScaleFactor,
                CrossAttentionDim = crossDims[^1],
                NumAttentionHeads = heads[^1],
            });

        up_blocks = new ModuleList<UNetUpBlock>();
        var rBoc = boc.Reverse().ToArray();
        var rHeads = heads.Reverse().ToArray();
        var rLayers = layersPerBlock.Reverse().ToArray();
        var rCross = crossDims.Reverse().ToArray();
        var rOnlyCross = onlyCross.Reverse().ToArray();
        outputChannel = rBoc[0];
        for (int i = 0; i < n; i++)
        {
            bool isFinal = i == n - 1;
            int prevOutputChannel = outputChannel;
            outputChannel = rBoc[i];
            if (!isFinal) NumUpsamplers++;
            up_blocks.Add(UNet2DBlocks.GetUpBlock(c.UpBlockTypes[i], common with
            {
                NumLayers = rLayers[i] + 1,
                TransformerLayersPerBlock = PerBlockDepths.Up(c.TransformerLayersPerBlock, c.ReverseTransformerLayersPerBlock, i).Depths,
                InChannels = rBoc[Math.Min(i + 1, n - 1)],
                OutChannels = outputChannel,
                PrevOutputChannel = prevOutputChannel,
                AddUpsample = !isFinal,
                ResolutionIdx = i,
                CrossAttentionDim = rCross[i],
                NumAttentionHeads = rHeads[i],
                OnlyCrossAttention = rOnlyCross[i],
                // diffusers passes attention_head_dim[i] un-reversed here (a quirk kept for weight-shape parity)
                AttentionHeadDim = headDims[i],
            }));
        }

        if (groups is int g)
            conv_norm_out = Layers.GroupNorm(g, boc[0], c.NormEps);
        _convAct = Activations.Get(c.ActFn, mayOverwriteInput: true);
        conv_out = Layers.Conv2d(boc[0], c.OutChannels, kernel_size: c.ConvOutKernel, padding: (c.ConvOutKernel - 1) / 2);
        RegisterComponents();
        _kernels = new ConvKernelLayout(this, () => conv_in.weight, ChannelsLast);
    }

    private readonly ConvKernelLayout _kernels;

    private static T[] Expand<T>(T[] values, int n) => values.Length == n ? values : Enumerable.Repeat(values[0], n).ToArray();

    /// <summary>
    /// Run the pass in channels-last layout (NCHW shape, NHWC strides): oneDNN then takes its channels-last
    /// convolution kernels. Numerically equivalent (float rounding aside); the output is returned in the
    /// standard contiguous layout either way. Unless set, it follows the parameters' dtype: on for bf16/fp16
    /// (their NCHW convolutions are slower), off for fp32, where the SD 1.5 UNet step (batch 2, 64² latents,
    /// 2 threads, AVX-512) is as fast in NCHW (4.25 s vs 4.25-4.46 s) and its peak RSS 0.6 GB lower (4.20 vs
    /// 4.80 GB): channels-last convolutions reorder their weights on every call into transient buffers as large
    /// as the weight (up to 118 MB), which fragment the native heap. The kernels are kept in the layout of the pass
    /// (<see cref="ConvKernelLayout"/>), laid out again at the next call after a switch.
    /// </summary>
    public bool ChannelsLast
    {
        get => _channelsLast ?? DType != ScalarType.Float32;
        set => _channelsLast = value;
    }

    private bool? _channelsLast;

    /// <summary>The dtype of the model's parameters.</summary>
    public ScalarType DType => conv_in.weight.dtype;

    /// <summary>The device of the model's parameters.</summary>
    public Device Device => conv_in.weight.device;

    /// <summary>Number of parameters (each registered parameter counted once, as <c>model.num_parameters()</c>).</summary>
    public long NumParameters() => Layers.NumParameters(this);
}
