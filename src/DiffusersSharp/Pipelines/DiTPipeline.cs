using System.Globalization;
using System.Text.Json;
using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Schedulers;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// diffusers' <c>DiTPipeline</c> (pipelines/dit/pipeline_dit.py, v0.25.1): class-conditional image generation with a
/// patch-input transformer (<see cref="DiTTransformer2DModel"/>, e.g. <c>facebook/DiT-XL-2-256</c>) instead of a UNet.
/// Components <c>transformer</c>, <c>vae</c>, <c>scheduler</c>; model_index.json's <c>id2label</c> gives
/// <see cref="Labels"/> (ImageNet names → ids) for <see cref="GetLabelIds"/>.
/// <code>
/// using var pipe = DiTPipeline.FromPretrained("facebook/DiT-XL-2-256");
/// using var result = pipe.Generate(pipe.GetLabelIds(["white shark", "umbrella"]), numInferenceSteps: 25, seed: 33);
/// </code>
/// </summary>
public sealed class DiTPipeline : DiffusionPipeline
{
    /// <summary>diffusers' class name: the <c>_class_name</c> of its <c>model_index.json</c>.</summary>
    public const string Name = "DiTPipeline";

    /// <summary>The model_index.json key of the id → comma-separated label names table.</summary>
    public const string Id2LabelKey = "id2label";

    private IScheduler _scheduler;
    private AutoencoderKL _vae;

    /// <summary>
    /// A pipeline of the three components (owned by the pipeline from now on) and the <c>id2label</c> table (id → names
    /// separated by commas; null: no names).
    /// </summary>
    public DiTPipeline(DiTTransformer2DModel transformer, AutoencoderKL vae, IScheduler scheduler,
        IReadOnlyDictionary<int, string>? id2label = null)
    {
        ArgumentNullException.ThrowIfNull(transformer);
        ArgumentNullException.ThrowIfNull(vae);
        ArgumentNullException.ThrowIfNull(scheduler);
        Transformer = transformer;
        _vae = vae;
        _scheduler = scheduler;
        Transformer.eval();
        // diffusers: every comma-separated name of an id, stripped, maps to it (a later id wins), sorted by name
        var labels = new SortedDictionary<string, int>(StringComparer.Ordinal);
        foreach (var (id, names) in id2label ?? new Dictionary<int, string>())
            foreach (var label in names.Split(','))
                labels[label.Trim()] = id;
        Labels = labels;
    }

    /// <inheritdoc/>
    public override string ClassName => Name;

    /// <summary>The class-conditional transformer.</summary>
    public DiTTransformer2DModel Transformer { get; }

    /// <summary>The VAE that decodes the latents (assigning one leaves the replaced one to the caller).</summary>
    public AutoencoderKL Vae
    {
        get => _vae;
        set => _vae = value ?? throw new ArgumentNullException(nameof(value));
    }

    /// <summary>
    /// The scheduler; swap it like diffusers' <c>pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)</c>
    /// (the replaced one is left to the caller).
    /// </summary>
    public IScheduler Scheduler
    {
        get => _scheduler;
        set => _scheduler = value ?? throw new ArgumentNullException(nameof(value));
    }

    /// <summary>diffusers' <c>labels</c>: every label name → its class id, sorted by name (ordinal).</summary>
    public IReadOnlyDictionary<string, int> Labels { get; }

    /// <inheritdoc/>
    public override IReadOnlyDictionary<string, object> Components =>
        new Dictionary<string, object> { ["transformer"] = Transformer, ["vae"] = Vae, ["scheduler"] = Scheduler };

    /// <summary>For tests: called with (name, tensor) for the intermediates diffusers' golden runs record.</summary>
    internal Action<string, Tensor>? Trace { get; set; }

    /// <summary>
    /// diffusers' <c>get_label_ids</c>: the class id of each label name (as <see cref="Labels"/> has it); an unknown name is a
    /// <see cref="DiffusersException"/> naming it and listing the known ones, as diffusers' ValueError does.
    /// </summary>
    public IReadOnlyList<int> GetLabelIds(IEnumerable<string> labels)
    {
        ArgumentNullException.ThrowIfNull(labels);
        var ids = new List<int>();
        foreach (var label in labels)
        {
            if (label is null || !Labels.TryGetValue(label, out int id))
                throw new DiffusersException(
                    $"{label} does not exist. Please make sure to select one of the following labels: \n {{{string.Join(", ", Labels.Select(l => $"'{l.Key}': {l.Value}"))}}}.")
                { Key = "label" };
            ids.Add(id);
        }
        return ids;
    }

    /// <summary>
    /// Loads a DiTPipeline folder or Hub id: <c>transformer</c> (a patch-input Transformer2DModel), <c>vae</c>
    /// (AutoencoderKL) and <c>scheduler</c>, each with <paramref name="options"/>, and <c>id2label</c> from model_index.json.
    /// </summary>
    public static new DiTPipeline FromPretrained(string idOrPath, LoadOptions? options = null)
    {
        string folder = PipelinePaths.Resolve(idOrPath, options);
        CheckClass(folder, Name);
        var index = PipelineIndex.Read(PipelinePaths.ModelIndex(folder));
        foreach (var name in new[] { "transformer", "vae", "scheduler" }) index.Require(name);
        var id2label = ReadId2Label(index);
        return PipelineSteps.DisposeOnFailure(loaded =>
        {
            var transformer = loaded.Kept(DiTTransformer2DModel.FromPretrained(PipelinePaths.Component(folder, "transformer"), null, options));
            var vae = loaded.Kept(AutoencoderKL.FromPretrained(PipelinePaths.Component(folder, "vae"), null, options));
            var scheduler = loaded.Kept(SchedulerFactory.FromPretrained(PipelinePaths.Component(folder, "scheduler"), null, options));
            return new DiTPipeline(transformer, vae, scheduler, id2label);
        });
    }

    private static Dictionary<int, string>? ReadId2Label(PipelineIndex index)
    {
        if (!index.Options.TryGetValue(Id2LabelKey, out var table) || table.ValueKind == JsonValueKind.Null) return null;
        ConfigException Bad(string what) => new($"{index.Path}: config key '{Id2LabelKey}': {what}") { FilePath = index.Path, Key = Id2LabelKey };
        if (table.ValueKind != JsonValueKind.Object) throw Bad($"must be an object of class id → label names, got {table.ValueKind}");
        var result = new Dictionary<int, string>();
        foreach (var entry in table.EnumerateObject())
        {
            if (!int.TryParse(entry.Name, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int id))
                throw Bad($"key \"{entry.Name}\" is not an integer class id");
            if (entry.Value.ValueKind != JsonValueKind.String)
                throw Bad($"the names of class {entry.Name} must be a string, got {entry.Value.ValueKind}");
            result[id] = entry.Value.GetString()!;
        }
        return result;
    }

    /// <summary>
    /// Generates one image per class id of <paramref name="classLabels"/> (diffusers' <c>__call__</c>, default 50 steps,
    /// guidance 4.0). The initial latents, [labels, in_channels, sample_size, sample_size], are drawn from the generator
    /// (<c>torch.manual_seed(seed)</c> with a seed); with <paramref name="guidanceScale"/> &gt; 1 the transformer sees them
    /// twice, with the labels and with the null class (<see cref="DiTTransformer2DModel.NumClasses"/>), guidance is applied
    /// to the first in_channels output channels (eps) and the rest (a learned sigma) passed through; a model of
    /// 2·in_channels outputs gives the scheduler its first in_channels. The scheduler steps the whole batch, without
    /// generator or eta, as diffusers does. <paramref name="callbackOnStepEnd"/> sees the model batch as <c>latents</c>.
    /// </summary>
    public ImagePipelineOutput Generate(IReadOnlyList<int> classLabels, double guidanceScale = 4.0, int numInferenceSteps = 50,
        long? seed = null, Generator? generator = null, IReadOnlyList<Generator>? generators = null,
        OutputType outputType = OutputType.Pil, IProgress<PipelineProgress>? progress = null,
        CancellationToken cancellationToken = default, StepEndCallback? callbackOnStepEnd = null)
    {
        ArgumentNullException.ThrowIfNull(classLabels);
        if (classLabels.Count == 0)
            throw new DiffusersException($"{Name}: class_labels is empty; give at least one class id");
        for (int i = 0; i < classLabels.Count; i++)
            if (classLabels[i] < 0 || classLabels[i] > Transformer.NumClasses)
                throw new DiffusersException(
                    $"{Name}: class_labels[{i}] is {classLabels[i]}, outside the transformer's classes 0 to {Transformer.NumClasses - 1} ({Transformer.NumClasses}: the null class)")
                { Key = "class_labels" };
        if (!double.IsFinite(guidanceScale))
            throw new DiffusersException($"{Name}: guidance_scale must be a finite number, got {guidanceScale}") { Key = "guidance_scale" };
        int max = Scheduler.NumTrainTimesteps;
        if (numInferenceSteps <= 0 || numInferenceSteps > max)
            throw new DiffusersException(
                $"{Name}: num_inference_steps must be between 1 and num_train_timesteps = {max} of the {Scheduler.ClassName}, got {numInferenceSteps}")
            { Key = "num_inference_steps" };
        int batch = classLabels.Count;
        var gens = Generators(seed, generator, generators, out var owned);
        using var ownedGenerator = owned;
        CheckGeneratorCount(gens, batch);

        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var device = Transformer.Device;
        int channels = Transformer.InChannels;
        bool cfg = guidanceScale > 1;
        var latents = Runtime.TorchUtils.RandnTensor([batch, channels, Transformer.SampleSize, Transformer.SampleSize], gens, Transformer.DType, device);
        var modelInput = cfg ? torch.cat(new[] { latents, latents }) : latents;
        var labels = torch.tensor(classLabels.Select(l => (long)l).ToArray(), ScalarType.Int64, device);
        if (cfg) labels = torch.cat(new[] { labels, torch.full(batch, (long)Transformer.NumClasses, ScalarType.Int64, device: device) });

        Scheduler.SetTimesteps(numInferenceSteps, device);
        var ctx = new DenoisingContext(Name, Scheduler, Scheduler.Timesteps, modelInput)
        {
            CallbackOnStepEnd = callbackOnStepEnd,
            Progress = progress,
            CancellationToken = cancellationToken,
            Trace = Trace is { } trace ? (name, step, t) => { if (step == 0) trace(name == "latents_after_step" ? "step1" : name, t); } : null,
        };
        ctx.Tensors[ClassLabelsKey] = labels;
        var final = new DiTDenoisingLoop(Transformer, cfg, guidanceScale, batch).Run(ctx);
        var result = cfg ? final[..batch] : final;
        Trace?.Invoke("latents", result);

        double inverse = 1 / Vae.ScalingFactor;
        return PipelineSteps.Finish(result, outputType, l =>
        {
            var z = (inverse * l).to(Vae.DType);
            Trace?.Invoke("decode_input", z);
            return Vae.Decode(z).Sample;
        }, (_, _) => { });
    }

    /// <summary>The named tensor the loop keeps the (guidance-doubled) class labels under.</summary>
    public const string ClassLabelsKey = "class_labels";

    /// <summary>
    /// DiT's loop: the transformer on the scaled model batch with the timestep expanded to it, guidance on the eps channels,
    /// the learned sigma dropped for the scheduler, which steps from the scaled sample as diffusers' does; after each step the batch is made of its first half twice, as diffusers
    /// does at the start of the next one.
    /// </summary>
    private sealed class DiTDenoisingLoop(DiTTransformer2DModel transformer, bool cfg, double guidanceScale, int batch) : DenoisingLoop
    {
        protected override Tensor PredictNoise(DenoisingContext ctx, int step, Tensor timestep, Tensor latents)
        {
            int channels = transformer.InChannels;
            var input = ctx.Scheduler.ScaleModelInput(latents, ctx.TimestepValues[step]);
            var timesteps = timestep.reshape(1).expand(input.shape[0]);
            var noisePred = transformer.Forward(input, timesteps, ctx.Get(ClassLabelsKey)).Sample;
            if (cfg)
            {
                var eps = noisePred[.., ..channels];
                var rest = noisePred[.., channels..];
                var halves = eps.chunk(2);
                var half = halves[1] + guidanceScale * (halves[0] - halves[1]);
                noisePred = torch.cat(new[] { torch.cat(new[] { half, half }), rest }, 1);
            }
            return transformer.OutChannels / 2 == channels ? noisePred[.., ..channels] : noisePred;
        }

        // diffusers steps from the scale_model_input sample (a no-op for DDIM and DPM-Solver; not for sigma schedulers such as Euler)
        protected override Tensor StepSample(DenoisingContext ctx, int step, Tensor latents) =>
            ctx.Scheduler.ScaleModelInput(latents, ctx.TimestepValues[step]);

        protected override Tensor AfterStep(DenoisingContext ctx, int step, Tensor latents)
        {
            if (!cfg) return latents;
            var half = latents[..batch];
            return torch.cat(new[] { half, half });
        }
    }
}
