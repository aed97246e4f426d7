using DiffusersSharp.Loading;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>UNet2DModel</c> (models/unet_2d.py, v0.25.1): a noisy sample and a timestep in, a sample-
/// shaped prediction out. Weight names are diffusers' (<c>conv_in</c>, <c>time_embedding.linear_1</c>,
/// <c>down_blocks.0.resnets.1.conv1</c>, <c>mid_block.attentions.0.to_q</c>, …), so checkpoints load as is.
/// Build with <see cref="FromConfig"/> (random weights) or <see cref="FromPretrained"/>.
/// </summary>
public sealed partial class UNet2DModel : nn.Module
{
    private readonly Conv2d conv_in;
    private readonly nn.Module<Tensor, Tensor> time_proj;
    private readonly TimestepEmbedding time_embedding;
    private readonly nn.Module<Tensor, Tensor>? class_embedding;
    private readonly ModuleList<UNetDownBlock> down_blocks;
    private readonly UNetMidBlock2D mid_block;
    private readonly ModuleList<UNetUpBlock> up_blocks;
    private readonly GroupNorm conv_norm_out;
    private readonly Conv2d conv_out;

    private readonly IUNetEmbedding _timeEmbedding;
    private readonly IUNetEmbedding? _classEmbedding;

    /// <summary>The config the model was built from.</summary>
    public UNet2DModelConfig Config { get; }

    /// <summary>
    /// How many ×2 upsamplers the up path has: a sample's height and width must be multiples of 2^this, since, as in
    /// diffusers' UNet2DModel, the up path does not resize to the skip connections (UNet2DConditionModel does).
    /// </summary>
    public int NumUpsamplers { get; }

    /// <summary>Test hook: called with (module path, output) after each top-level stage of a forward pass.</summary>
    internal Action<string, Tensor>? IntermediateHook { get; set; }

    /// <summary>Builds the model with random weights. Invalid configs throw <see cref="ConfigException"/>.</summary>
    public static UNet2DModel FromConfig(UNet2DModelConfig config, string? source = null) =>
        ModuleScope.Run(() => new UNet2DModel(config, source));

    private UNet2DModel(UNet2DModelConfig config, string? source) : base(nameof(UNet2DModel))
    {
        UNet2DModelConfigValidation.Validate(config, source ?? "UNet2DModel config");
        Config = config;
        var c = config;
        int[] boc = c.BlockOutChannels;
        int timeEmbedDim = boc[0] * 4;
        int groups = c.NormNumGroups!.Value;

        conv_in = Layers.Conv2d(c.InChannels, boc[0], kernel_size: 3, padding: 1);

        int timestepInputDim;
        switch (c.TimeEmbeddingType)
        {
            case "fourier":
                time_proj = new GaussianFourierProjection(embeddingSize: boc[0], scale: 16);
                timestepInputDim = 2 * boc[0];
                break;
            case "positional":
                time_proj = new Timesteps(boc[0], c.FlipSinToCos, c.FreqShift);
                timestepInputDim = boc[0];
                break;
            default: // "learned"
                time_proj = Layers.Embedding(c.NumTrainTimesteps!.Value, boc[0]);
                timestepInputDim = boc[0];
                break;
        }
        time_embedding = new TimestepEmbedding(timestepInputDim, timeEmbedDim);
        _timeEmbedding = new UNetTimeEmbedding(time_proj, time_embedding);

        class_embedding = c.ClassEmbedType switch
        {
            null => c.NumClassEmbeds is int n ? Layers.Embedding(n, timeEmbedDim) : null,
            "timestep" => new TimestepEmbedding(timestepInputDim, timeEmbedDim),
            "identity" => nn.Identity(),
            _ => null,
        };
        if (class_embedding is not null)
            _classEmbedding = new UNetClassEmbedding(class_embedding, c.ClassEmbedType == "timestep" ? time_proj : null,
                "class_labels should be provided when doing class conditioning");

        // what every block gets (diffusers' get_down_block / get_up_block arguments in unet_2d.py)
        var common = new UNetBlockArgs
        {
            NumLayers = c.LayersPerBlock, TembChannels = timeEmbedDim, ResnetEps = c.NormEps, ResnetActFn = c.ActFn,
            ResnetGroups = groups, DownsamplePadding = c.DownsamplePadding, ResnetTimeScaleShift = c.ResnetTimeScaleShift,
            DownsampleType = c.DownsampleType, UpsampleType = c.UpsampleType, Dropout = c.Dropout,
        };

        down_blocks = new ModuleList<UNetDownBlock>();
        int outputChannel = boc[0];
        for (int i = 0; i < c.DownBlockTypes.Length; i++)
        {
            int inputChannel = outputChannel;
            outputChannel = boc[i];
            down_blocks.Add(UNet2DBlocks.GetDownBlock(c.DownBlockTypes[i], common with
            {
                InChannels = inputChannel,
                OutChannels = outputChannel,
                AddDownsample = i < boc.Length - 1,
                AttentionHeadDim = c.AttentionHeadDim ?? outputChannel,
            }));
        }

        mid_block = new UNetMidBlock2D(boc[^1], timeEmbedDim, dropout: c.Dropout, resnetEps: c.NormEps,
            resnetActFn: c.ActFn, outputScaleFactor: c.MidBlockScaleFactor, resnetTimeScaleShift: c.ResnetTimeScaleShift,
            attentionHeadDim: c.AttentionHeadDim ?? boc[^1], resnetGroups: groups, attnGroups: c.AttnNormNumGroups,
            addAttention: c.AddAttention);

        up_blocks = new ModuleList<UNetUpBlock>();
        var reversed = boc.Reverse().ToArray();
        outputChannel = reversed[0];
        for (int i = 0; i < c.UpBlockTypes.Length; i++)
        {
            int prevOutputChannel = outputChannel;
            outputChannel = reversed[i];
            up_blocks.Add(UNet2DBlocks.GetUpBlock(c.UpBlockTypes[i], common with
            {
                NumLayers = c.LayersPerBlock + 1,
                InChannels = reversed[Math.Min(i + 1, boc.Length - 1)],
                OutChannels = outputChannel,
                PrevOutputChannel = prevOutputChannel,
                AddUpsample = i < boc.Length - 1,
                AttentionHeadDim = c.AttentionHeadDim ?? outputChannel,
            }));
            if (i < boc.Length - 1) NumUpsamplers++;
        }

        conv_norm_out = Layers.GroupNorm(groups, boc[0], c.NormEps);
        conv_out = Layers.Conv2d(boc[0], c.OutChannels, kernel_size: 3, padding: 1);
        RegisterComponents();
        _kernels = new ConvKernelLayout(this, () => conv_in.weight, ChannelsLast);
    }

    private readonly ConvKernelLayout _kernels;

    /// <summary>
    /// Run the pass in channels-last layout (NCHW shape, NHWC strides): oneDNN then takes its channels-last
    /// convolution kernels, which are faster on CPU. Numerically equivalent (float rounding aside); the
    /// output is returned in the standard contiguous layout either way. On by default: on CPU it was 4-5× faster
    /// in float32 and over 10× in bfloat16 (whose NCHW convolutions take a slow path); set false for NCHW.
    /// </summary>
    public bool ChannelsLast { get; set; } = true;

    /// <summary>The dtype of the model's parameters.</summary>
    public ScalarType DType => conv_in.weight.dtype;

    /// <summary>The device of the model's parameters.</summary>
    public Device Device => conv_in.weight.device;

    /// <summary>
    /// Like diffusers, a plain number is turned into an int64 timestep tensor (a fractional value is
    /// truncated: diffusers does <c>torch.tensor([t], dtype=torch.long)</c>); pass a float tensor for
    /// fractional timesteps.
    /// </summary>
    public UNet2DOutput Forward(Tensor sample, long timestep, Tensor? classLabels = null)
    {
        ArgumentNullException.ThrowIfNull(sample);
        using var scope = torch.NewDisposeScope();
        var t = torch.tensor(new[] { timestep }, dtype: ScalarType.Int64, device: sample.device);
        var output = Forward(sample, t, classLabels);
        output.Sample.MoveToOuterDisposeScope();
        return output;
    }

    /// <inheritdoc cref="Forward(Tensor, long, Tensor?)"/>
    /// <remarks>NaN, ±Inf and values beyond int64 are refused: diffusers' <c>torch.tensor([t], dtype=torch.long)</c>
    /// fails on them, where a C# cast would give an arbitrary timestep.</remarks>
    public UNet2DOutput Forward(Tensor sample, double timestep, Tensor? classLabels = null)
    {
        ModelInputs.Finite(timestep, "UNet2DModel", "timestep");
        if (Math.Abs(timestep) >= 9.2233720368547758E18)
            throw new ArgumentException($"UNet2DModel: timestep {timestep.ToString(System.Globalization.CultureInfo.InvariantCulture)} does not fit an int64", nameof(timestep));
        return Forward(sample, (long)timestep, classLabels);
    }

    /// <summary>
    /// One denoising prediction. <paramref name="timestep"/>: a scalar or a 1-D tensor of one value or one per
    /// batch item (int or float). <paramref name="classLabels"/>: required exactly when the model has a class
    /// embedding (integer labels for a table, timesteps for "timestep", embeddings for "identity").
    /// </summary>
    public UNet2DOutput Forward(Tensor sample, Tensor timestep, Tensor? classLabels = null)
    {
        ModelInputs.NotEmpty(sample, "UNet2DModel", "sample");
        ArgumentNullException.ThrowIfNull(timestep);
        if (sample.dim() != 4 || sample.shape[1] != Config.InChannels)
            throw new ArgumentException($"UNet2DModel expects a sample of shape (batch, {Config.InChannels}, height, width), got {Layers.Shape(sample)}");
        ModelInputs.SameDType(sample, DType, "UNet2DModel", "sample");
        if (classLabels is not null && _classEmbedding is null)
            throw new ArgumentException("class_embedding needs to be initialized in order to use class conditioning");
        long factor = 1L << NumUpsamplers;
        if (sample.shape[2] % factor != 0 || sample.shape[3] % factor != 0)
            throw new ArgumentException(
                $"UNet2DModel: the sample is {sample.shape[2]}×{sample.shape[3]}, but its height and width must be multiples of {factor} (2^{NumUpsamplers}, for {NumUpsamplers} upsampler{(NumUpsamplers == 1 ? "" : "s")}): like diffusers' UNet2DModel, its up path does not resize to the skip connections",
                nameof(sample));
        _kernels.Follow(ChannelsLast);
        using var scope = torch.NewDisposeScope();
        var hook = IntermediateHook;

        // 0. center input if necessary
        var h = new Chain(sample);
        if (Config.CenterInputSample)
            h.Then(x => 2 * x - 1.0);

        // 1. time
        var timesteps = timestep.dim() == 0 ? timestep.unsqueeze(0) : timestep;
        timesteps = timesteps.to(sample.device);
        long batch = sample.shape[0];
        if (timesteps.dim() != 1 || (timesteps.shape[0] != 1 && timesteps.shape[0] != batch))
            throw new ArgumentException($"UNet2DModel: timestep must be a scalar or hold 1 or {batch} (batch size) values, got shape {Layers.Shape(timestep)}");
        // broadcast to the batch dimension as diffusers does
        timesteps = timesteps * torch.ones(batch, dtype: timesteps.dtype, device: timesteps.device);

        var inputs = new UNetEmbeddingInputs(timesteps, DType) { ClassLabels = classLabels, Hook = hook };
        var emb = _timeEmbedding.Forward(inputs);
        if (_classEmbedding is not null)
            emb = emb + _classEmbedding.Forward(inputs);

        // 2. pre-process
        if (ChannelsLast)
            h.Then(Layers.ToChannelsLast);
        h.Then(conv_in.forward);
        hook?.Invoke("conv_in", h.Value);

        // 3. down
        var skips = new List<Tensor> { h.Keep() };   // diffusers' down_block_res_samples
        var down = h.Value;
        for (int i = 0; i < down_blocks.Count; i++)
        {
            (down, var outputStates) = down_blocks[i].Forward(down, emb);
            skips.AddRange(outputStates);
            hook?.Invoke($"down_blocks.{i}", down);
        }

        // 4. mid
        h = new Chain(down);
        h.Then(x => mid_block.Forward(x, emb));
        hook?.Invoke("mid_block", h.Value);

        // 5. up
        for (int i = 0; i < up_blocks.Count; i++)
        {
            var block = up_blocks[i];
            var resSamples = skips.GetRange(skips.Count - block.NumResnets, block.NumResnets);
            skips.RemoveRange(skips.Count - block.NumResnets, block.NumResnets);
            h.Then(x => block.Forward(x, resSamples, emb));
            hook?.Invoke($"up_blocks.{i}", h.Value);
            foreach (var r in resSamples) r.Dispose(); // the caller frees what it no longer needs, here at once
        }

        // 6. post-process
        h.Then(conv_norm_out.forward);
        hook?.Invoke("conv_norm_out", h.Value);
        h.Then(Activations.SiluOwned);
        h.Then(conv_out.forward);
        hook?.Invoke("conv_out", h.Value);

        if (Config.TimeEmbeddingType == "fourier")
            h.Then(x => x / timesteps.reshape(batch, 1, 1, 1));
        if (ChannelsLast)
            h.Then(x => x.contiguous());

        return new UNet2DOutput(scope.MoveToOuter(h.Value));
    }

    /// <summary>Number of parameters (each registered parameter counted once, as <c>model.num_parameters()</c>).</summary>
    public long NumParameters() => Layers.NumParameters(this);
}
