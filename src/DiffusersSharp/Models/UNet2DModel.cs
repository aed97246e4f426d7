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
    private readonly nn.Module time_proj;
    private readonly TimestepEmbedding time_embedding;
    private readonly nn.Module? class_embedding;
    private readonly ModuleList<nn.Module> down_blocks;
    private readonly UNetMidBlock2D mid_block;
    private readonly ModuleList<nn.Module> up_blocks;
    private readonly GroupNorm conv_norm_out;
    private readonly Conv2d conv_out;

    public UNet2DModelConfig Config { get; }

    /// <summary>Test hook: called with (module path, output) after each top-level stage of a forward pass.</summary>
    internal Action<string, Tensor>? IntermediateHook { get; set; }

    /// <summary>Builds the model with random weights. Invalid configs throw <see cref="ConfigException"/>.</summary>
    public static UNet2DModel FromConfig(UNet2DModelConfig config, string? source = null) => new(config, source);

    private UNet2DModel(UNet2DModelConfig config, string? source) : base(nameof(UNet2DModel))
    {
        UNet2DModelConfigValidation.Validate(config, source ?? "UNet2DModel config");
        Config = config;
        var c = config;
        int[] boc = c.BlockOutChannels;
        int timeEmbedDim = boc[0] * 4;
        int groups = c.NormNumGroups!.Value;

        conv_in = nn.Conv2d(c.InChannels, boc[0], kernel_size: 3, padding: 1);

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
                time_proj = nn.Embedding(c.NumTrainTimesteps!.Value, boc[0]);
                timestepInputDim = boc[0];
                break;
        }
        time_embedding = new TimestepEmbedding(timestepInputDim, timeEmbedDim);

        if (c.ClassEmbedType is null && c.NumClassEmbeds is int n)
            class_embedding = nn.Embedding(n, timeEmbedDim);
        else if (c.ClassEmbedType == "timestep")
            class_embedding = new TimestepEmbedding(timestepInputDim, timeEmbedDim);
        else if (c.ClassEmbedType == "identity")
            class_embedding = nn.Identity();

        down_blocks = new ModuleList<nn.Module>();
        int outputChannel = boc[0];
        for (int i = 0; i < c.DownBlockTypes.Length; i++)
        {
            int inputChannel = outputChannel;
            outputChannel = boc[i];
            bool isFinal = i == boc.Length - 1;
            down_blocks.Add(UNet2DBlocks.GetDownBlock(c.DownBlockTypes[i], c.LayersPerBlock, inputChannel, outputChannel,
                timeEmbedDim, addDownsample: !isFinal, resnetEps: c.NormEps, resnetActFn: c.ActFn, resnetGroups: groups,
                attentionHeadDim: c.AttentionHeadDim ?? outputChannel, downsamplePadding: c.DownsamplePadding,
                resnetTimeScaleShift: c.ResnetTimeScaleShift, downsampleType: c.DownsampleType, dropout: c.Dropout));
        }

        mid_block = new UNetMidBlock2D(boc[^1], timeEmbedDim, dropout: c.Dropout, resnetEps: c.NormEps,
            resnetActFn: c.ActFn, outputScaleFactor: c.MidBlockScaleFactor, resnetTimeScaleShift: c.ResnetTimeScaleShift,
            attentionHeadDim: c.AttentionHeadDim ?? boc[^1], resnetGroups: groups, attnGroups: c.AttnNormNumGroups,
            addAttention: c.AddAttention);

        up_blocks = new ModuleList<nn.Module>();
        var reversed = boc.Reverse().ToArray();
        outputChannel = reversed[0];
        for (int i = 0; i < c.UpBlockTypes.Length; i++)
        {
            int prevOutputChannel = outputChannel;
            outputChannel = reversed[i];
            int inputChannel = reversed[Math.Min(i + 1, boc.Length - 1)];
            bool isFinal = i == boc.Length - 1;
            up_blocks.Add(UNet2DBlocks.GetUpBlock(c.UpBlockTypes[i], c.LayersPerBlock + 1, inputChannel, outputChannel,
                prevOutputChannel, timeEmbedDim, addUpsample: !isFinal, resnetEps: c.NormEps, resnetActFn: c.ActFn,
                resnetGroups: groups, attentionHeadDim: c.AttentionHeadDim ?? outputChannel,
                resnetTimeScaleShift: c.ResnetTimeScaleShift, upsampleType: c.UpsampleType, dropout: c.Dropout));
        }

        conv_norm_out = Layers.GroupNorm(groups, boc[0], c.NormEps);
        conv_out = nn.Conv2d(boc[0], c.OutChannels, kernel_size: 3, padding: 1);
        RegisterComponents();
    }

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
        using var t = torch.tensor(new[] { timestep }, dtype: ScalarType.Int64, device: sample.device);
        return Forward(sample, t, classLabels);
    }

    /// <inheritdoc cref="Forward(Tensor, long, Tensor?)"/>
    public UNet2DOutput Forward(Tensor sample, double timestep, Tensor? classLabels = null) =>
        Forward(sample, (long)timestep, classLabels);

    /// <summary>
    /// One denoising prediction. <paramref name="timestep"/>: a scalar or a 1-D tensor of one value or one per
    /// batch item (int or float). <paramref name="classLabels"/>: required exactly when the model has a class
    /// embedding (integer labels for a table, timesteps for "timestep", embeddings for "identity").
    /// </summary>
    public UNet2DOutput Forward(Tensor sample, Tensor timestep, Tensor? classLabels = null)
    {
        if (sample.dim() != 4 || sample.shape[1] != Config.InChannels)
            throw new ArgumentException($"UNet2DModel expects a sample of shape (batch, {Config.InChannels}, height, width), got {Layers.Shape(sample)}");
        using var scope = torch.NewDisposeScope();
        var hook = IntermediateHook;

        // 0. center input if necessary
        if (Config.CenterInputSample)
            sample = 2 * sample - 1.0;

        // 1. time
        var timesteps = timestep.dim() == 0 ? timestep.unsqueeze(0) : timestep;
        timesteps = timesteps.to(sample.device);
        long batch = sample.shape[0];
        if (timesteps.dim() != 1 || (timesteps.shape[0] != 1 && timesteps.shape[0] != batch))
            throw new ArgumentException($"UNet2DModel: timestep must be a scalar or hold 1 or {batch} (batch size) values, got shape {Layers.Shape(timestep)}");
        // broadcast to the batch dimension as diffusers does
        timesteps = timesteps * torch.ones(batch, dtype: timesteps.dtype, device: timesteps.device);

        var tEmb = TimeProj(timesteps);
        hook?.Invoke("time_proj", tEmb);
        var dtype = DType;
        tEmb = tEmb.to_type(dtype);
        var emb = time_embedding.Forward(tEmb);
        hook?.Invoke("time_embedding", emb);

        if (class_embedding is not null)
        {
            if (classLabels is null)
                throw new ArgumentException("class_labels should be provided when doing class conditioning");
            var labels = classLabels.to(sample.device);
            if (Config.ClassEmbedType == "timestep")
                labels = TimeProj(labels).to_type(dtype);
            var classEmb = class_embedding switch
            {
                TimestepEmbedding te => te.Forward(labels),
                nn.Module<Tensor, Tensor> m => m.forward(labels),
                _ => throw new InvalidOperationException("unexpected class embedding module"),
            };
            emb = emb + classEmb.to_type(dtype);
        }
        else if (classLabels is not null)
            throw new ArgumentException("class_embedding needs to be initialized in order to use class conditioning");

        // 2. pre-process
        if (ChannelsLast)
            sample = Layers.ToChannelsLast(sample);
        sample = conv_in.forward(sample);
        hook?.Invoke("conv_in", sample);

        // 3. down
        var resSamples = new List<Tensor> { sample };
        for (int i = 0; i < down_blocks.Count; i++)
        {
            var (h, res) = ((IDownBlock2D)down_blocks[i]).Forward(sample, emb);
            sample = h;
            resSamples.AddRange(res);
            hook?.Invoke($"down_blocks.{i}", sample);
        }

        // 4. mid
        sample = mid_block.Forward(sample, emb);
        hook?.Invoke("mid_block", sample);

        // 5. up
        for (int i = 0; i < up_blocks.Count; i++)
        {
            var block = (IUpBlock2D)up_blocks[i];
            int n = block.NumResnets;
            var res = resSamples.GetRange(resSamples.Count - n, n);
            resSamples.RemoveRange(resSamples.Count - n, n);
            var previous = sample;
            sample = block.Forward(sample, res, emb);
            // Free what this block consumed as soon as it is done (PyTorch's refcounting does the same).
            foreach (var r in res) r.Dispose();
            previous.Dispose();
            hook?.Invoke($"up_blocks.{i}", sample);
        }

        // 6. post-process
        var lastUp = sample;
        sample = conv_norm_out.forward(sample);
        lastUp.Dispose();
        hook?.Invoke("conv_norm_out", sample);
        sample = Activations.SiluOwned(sample);
        sample = conv_out.forward(sample);
        hook?.Invoke("conv_out", sample);

        if (Config.TimeEmbeddingType == "fourier")
            sample = sample / timesteps.reshape(batch, 1, 1, 1);
        if (ChannelsLast)
            sample = sample.contiguous();

        return new UNet2DOutput(sample.MoveToOuterDisposeScope());
    }

    private Tensor TimeProj(Tensor timesteps) => time_proj switch
    {
        Timesteps ts => ts.Forward(timesteps),
        GaussianFourierProjection gf => gf.Forward(timesteps),
        Embedding e => e.forward(timesteps),
        _ => throw new InvalidOperationException("unexpected time projection module"),
    };

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
