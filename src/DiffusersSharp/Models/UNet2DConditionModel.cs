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
/// Not ported (refused by the config check): addition embeddings (SDXL, Kandinsky), image projections, dual
/// cross-attention, GLIGEN, the SimpleCrossAttn blocks; ControlNet/adapter residuals are not accepted.
/// </summary>
public sealed partial class UNet2DConditionModel : nn.Module
{
    private readonly Conv2d conv_in;
    private readonly nn.Module time_proj;
    private readonly TimestepEmbedding time_embedding;
    private readonly Linear? encoder_hid_proj;
    private readonly nn.Module? class_embedding;
    private readonly ModuleList<nn.Module> down_blocks;
    private readonly nn.Module? mid_block;
    private readonly ModuleList<nn.Module> up_blocks;
    private readonly GroupNorm? conv_norm_out;
    private readonly Conv2d conv_out;

    private readonly Func<Tensor, Tensor>? _timeEmbedAct;
    private readonly Func<Tensor, Tensor> _convAct;
    private Action<string, Tensor>? _hook;

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
                    t.DebugHook = value is null ? null : (_, x) => value(path, x);
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
        int groups = c.NormNumGroups!.Value;
        int[] heads = Expand(c.AttentionHeadDim, n);       // diffusers: num_attention_heads = attention_head_dim
        int[] headDims = Expand(c.AttentionHeadDim, n);    // used as a real head dim by AttnDown/UpBlock2D only
        int[] crossDims = Expand(c.CrossAttentionDim, n);
        int[] layersPerBlock = Expand(c.LayersPerBlock, n);
        int[] tlpb = Expand(c.TransformerLayersPerBlock, n);
        bool[] onlyCross = Expand(c.OnlyCrossAttention, n);

        conv_in = nn.Conv2d(c.InChannels, boc[0], kernel_size: c.ConvInKernel, padding: (c.ConvInKernel - 1) / 2);

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

        if (c.EncoderHidDim is int ehd)
            encoder_hid_proj = nn.Linear(ehd, crossDims[0]);

        if (c.ClassEmbedType is null && c.NumClassEmbeds is int nce)
            class_embedding = nn.Embedding(nce, timeEmbedDim);
        else if (c.ClassEmbedType == "timestep")
            class_embedding = new TimestepEmbedding(timestepInputDim, timeEmbedDim, actFn: c.ActFn);
        else if (c.ClassEmbedType == "identity")
            class_embedding = nn.Identity();
        else if (c.ClassEmbedType == "projection")
            class_embedding = new TimestepEmbedding(c.ProjectionClassEmbeddingsInputDim!.Value, timeEmbedDim);
        else if (c.ClassEmbedType == "simple_projection")
            class_embedding = nn.Linear(c.ProjectionClassEmbeddingsInputDim!.Value, timeEmbedDim);

        if (c.TimeEmbeddingActFn is not null)
            _timeEmbedAct = Activations.Get(c.TimeEmbeddingActFn);
        int blocksTimeEmbedDim = c.ClassEmbeddingsConcat ? timeEmbedDim * 2 : timeEmbedDim;

        down_blocks = new ModuleList<nn.Module>();
        int outputChannel = boc[0];
        for (int i = 0; i < n; i++)
        {
            int inputChannel = outputChannel;
            outputChannel = boc[i];
            bool isFinal = i == n - 1;
            string type = V.Strip(c.DownBlockTypes[i]);
            if (type == "CrossAttnDownBlock2D")
                down_blocks.Add(new CrossAttnDownBlock2D(inputChannel, outputChannel, blocksTimeEmbedDim, c.Dropout,
                    layersPerBlock[i], [tlpb[i]], c.NormEps, c.ResnetTimeScaleShift, c.ActFn, groups,
                    numAttentionHeads: heads[i], crossAttentionDim: crossDims[i], downsamplePadding: c.DownsamplePadding,
                    addDownsample: !isFinal, useLinearProjection: c.UseLinearProjection,
                    onlyCrossAttention: onlyCross[i], upcastAttention: c.UpcastAttention));
            else
                down_blocks.Add(UNet2DBlocks.GetDownBlock(type, layersPerBlock[i], inputChannel, outputChannel,
                    blocksTimeEmbedDim, addDownsample: !isFinal, resnetEps: c.NormEps, resnetActFn: c.ActFn,
                    resnetGroups: groups, downsamplePadding: c.DownsamplePadding,
                    resnetTimeScaleShift: c.ResnetTimeScaleShift, resnetSkipTimeAct: c.ResnetSkipTimeAct,
                    resnetOutScaleFactor: c.ResnetOutScaleFactor, attentionHeadDim: headDims[i], dropout: c.Dropout));
        }

        if (c.MidBlockType == "UNetMidBlock2DCrossAttn")
            mid_block = new UNetMidBlock2DCrossAttn(boc[^1], blocksTimeEmbedDim, c.Dropout,
                transformerLayersPerBlock: [tlpb[^1]], resnetEps: c.NormEps, resnetTimeScaleShift: c.ResnetTimeScaleShift,
                resnetActFn: c.ActFn, resnetGroups: groups, numAttentionHeads: heads[^1],
                outputScaleFactor: c.MidBlockScaleFactor, crossAttentionDim: crossDims[^1],
                useLinearProjection: c.UseLinearProjection, upcastAttention: c.UpcastAttention);
        else if (c.MidBlockType == "UNetMidBlock2D")
            mid_block = new UNetMidBlock2D(boc[^1], blocksTimeEmbedDim, c.Dropout, numLayers: 0, resnetEps: c.NormEps,
                resnetActFn: c.ActFn, outputScaleFactor: c.MidBlockScaleFactor, resnetGroups: groups,
                resnetTimeScaleShift: c.ResnetTimeScaleShift, addAttention: false);

        up_blocks = new ModuleList<nn.Module>();
        var rBoc = boc.Reverse().ToArray();
        var rHeads = heads.Reverse().ToArray();
        var rLayers = layersPerBlock.Reverse().ToArray();
        var rCross = crossDims.Reverse().ToArray();
        var rTlpb = c.ReverseTransformerLayersPerBlock ?? tlpb.Reverse().Select(x => new[] { x }).ToArray();
        var rOnlyCross = onlyCross.Reverse().ToArray();
        outputChannel = rBoc[0];
        for (int i = 0; i < n; i++)
        {
            bool isFinal = i == n - 1;
            int prevOutputChannel = outputChannel;
            outputChannel = rBoc[i];
            int inputChannel = rBoc[Math.Min(i + 1, n - 1)];
            if (!isFinal) NumUpsamplers++;
            string type = V.Strip(c.UpBlockTypes[i]);
            if (type == "CrossAttnUpBlock2D")
                up_blocks.Add(new CrossAttnUpBlock2D(inputChannel, outputChannel, prevOutputChannel, blocksTimeEmbedDim,
                    resolutionIdx: i, dropout: c.Dropout, numLayers: rLayers[i] + 1, transformerLayersPerBlock: rTlpb[i],
                    resnetEps: c.NormEps, resnetTimeScaleShift: c.ResnetTimeScaleShift, resnetActFn: c.ActFn,
                    resnetGroups: groups, numAttentionHeads: rHeads[i], crossAttentionDim: rCross[i],
                    addUpsample: !isFinal, useLinearProjection: c.UseLinearProjection, onlyCrossAttention: rOnlyCross[i],
                    upcastAttention: c.UpcastAttention));
            else
                up_blocks.Add(UNet2DBlocks.GetUpBlock(type, rLayers[i] + 1, inputChannel, outputChannel, prevOutputChannel,
                    blocksTimeEmbedDim, addUpsample: !isFinal, resnetEps: c.NormEps, resnetActFn: c.ActFn,
                    resolutionIdx: i, resnetGroups: groups, resnetTimeScaleShift: c.ResnetTimeScaleShift,
                    resnetSkipTimeAct: c.ResnetSkipTimeAct, resnetOutScaleFactor: c.ResnetOutScaleFactor,
                    // diffusers passes attention_head_dim[i] un-reversed here (a quirk kept for weight-shape parity)
                    attentionHeadDim: headDims[i], dropout: c.Dropout));
        }

        conv_norm_out = Layers.GroupNorm(groups, boc[0], c.NormEps);
        _convAct = Activations.Get(c.ActFn, mayOverwriteInput: true);
        conv_out = nn.Conv2d(boc[0], c.OutChannels, kernel_size: c.ConvOutKernel, padding: (c.ConvOutKernel - 1) / 2);
        RegisterComponents();
    }

    private static T[] Expand<T>(T[] values, int n) => values.Length == n ? values : Enumerable.Repeat(values[0], n).ToArray();

    /// <summary>
    /// Run the pass in channels-last layout (NCHW shape, NHWC strides): oneDNN then takes its channels-last
    /// convolution kernels. Numerically equivalent (float rounding aside); the output is returned in the
    /// standard contiguous layout either way. Unless set, it follows the parameters' dtype: on for bf16/fp16
    /// (their NCHW convolutions are slower), off for fp32, where the SD 1.5 UNet step (batch 2, 64² latents,
    /// 2 threads, AVX-512) is as fast in NCHW (4.25 s vs 4.25-4.46 s) and its peak RSS 0.6 GB lower (4.20 vs
    /// 4.80 GB): channels-last convolutions reorder their weights on every call into transient buffers as large
    /// as the weight (up to 118 MB), which fragment the native heap.
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
    public long NumParameters()
    {
        var seen = new HashSet<IntPtr>();
        long total = 0;
        foreach (var (_, p) in named_parameters())
            if (seen.Add(p.Handle)) total += p.numel();
        return total;
    }
}
