using DiffusersSharp.Loading;
using DiffusersSharp.Loading.SingleFile;
using DiffusersSharp.Models;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines.SingleFile;

/// <summary>
/// The diffusers components of a single file, built from its <see cref="SingleFileLayout"/> through the models' own
/// construction and the strict weight check: one component at a time, its tensors read, renamed, loaded and freed
/// before the next. Hand the models and the scheduler to a pipeline (which then owns them) or dispose this.
/// </summary>
public sealed class SingleFileComponents : IDisposable
{
    private SingleFileComponents(SingleFileLayout layout, string path) { Layout = layout; Path = path; }

    /// <summary>The configs and key maps the file was read with.</summary>
    public SingleFileLayout Layout { get; }

    /// <summary>The checkpoint file.</summary>
    public string Path { get; }

    /// <summary>The UNet, loaded from the file.</summary>
    public UNet2DConditionModel Unet { get; private set; } = null!;
    /// <summary>The VAE, loaded from the file.</summary>
    public AutoencoderKL Vae { get; private set; } = null!;

    /// <summary>The text encoders in <see cref="SingleFileLayout.TextEncoders"/>' order (<see cref="CLIPTextModel"/> or <see cref="CLIPTextModelWithProjection"/>).</summary>
    public IReadOnlyList<nn.Module> TextEncoders { get; private set; } = [];

    /// <summary>One tokenizer per text encoder.</summary>
    public IReadOnlyList<CLIPTokenizer> Tokenizers { get; private set; } = [];

    /// <summary>The scheduler the layout chose (diffusers' <c>scheduler_type</c>).</summary>
    public IScheduler Scheduler => Layout.Scheduler;

    /// <summary>
    /// Reads <paramref name="path"/>: family and configs (<see cref="SingleFileLayout.Resolve"/>), then the UNet, the VAE and the
    /// text encoders. Errors name the file and the original key (unknown or missing keys, shapes the architecture does not
    /// have). Tokenizers: <see cref="SingleFileOptions.Tokenizer"/>, else the config folder's, else the shipped CLIP vocabulary.
    /// </summary>
    public static SingleFileComponents Load(string path, SingleFileOptions? options = null) => Load(path, options, null);

    /// <summary>As <see cref="Load(string, SingleFileOptions?)"/>, for the Stable Diffusion pipeline <paramref name="pipeline"/>:
    /// an SDXL file or (except for inpainting) a 9-channel inpainting file is refused before anything is loaded.</summary>
    internal static SingleFileComponents Load(string path, SingleFileOptions? options, string? pipeline)
    {
        var o = options ?? SingleFileOptions.Default;
        var log = o.Log ?? StableDiffusionPipelineBase.DefaultLog;
        // every tensor is made in this scope; the models' weights leave it (ModuleScope.Detach) when they are returned
        using var scope = torch.NewDisposeScope();
        using var ckpt = OriginalCheckpoint.Open(path);
        if (pipeline is not null) CheckFor(pipeline, ckpt);
        var layout = SingleFileLayout.Resolve(ckpt, o);
        var c = new SingleFileComponents(layout, path);
        try
        {
            var assigned = layout.Assign(ckpt);
            int ema = ckpt.Shapes.Keys.Count(k => k.StartsWith("model_ema.", StringComparison.Ordinal));
            Func<string, Tensor> unetSource = ckpt.Load;
            if (o.ExtractEma && ema > 100) unetSource = k => ckpt.Load(EmaKey(k));
            else if (o.ExtractEma) log($"{path}: ExtractEma asked for, but the file has no EMA weights (model_ema.*); the UNet's own weights are used");
            else if (ema > 100) log($"{path}: the file has EMA weights too (model_ema.*); only the non-EMA weights are used (set ExtractEma for the EMA ones)");

            c.Unet = Build(() => UNet2DConditionModel.FromConfig(layout.Unet, path), o.Dtype);
            LoadComponent(c.Unet, layout.UnetKeys, assigned[layout.UnetKeys], unetSource, ckpt);
            c.Vae = Build(() => AutoencoderKL.FromConfig(layout.Vae), o.Dtype);
            LoadComponent(c.Vae, layout.VaeKeys, assigned[layout.VaeKeys], ckpt.Load, ckpt);

            var texts = new List<nn.Module>();
            c.TextEncoders = texts;
            for (int i = 0; i < layout.TextEncoders.Count; i++)
            {
                var t = layout.TextEncoders[i];
                var given = i == 0 ? o.TextEncoder : null;
                var textDtype = StableDiffusionPipelineBase.TextEncoderDtype(o.Dtype);
                nn.Module model = given ?? Build<nn.Module>(() => t.WithProjection ? new CLIPTextModelWithProjection(t.Config) : new CLIPTextModel(t.Config), textDtype);
                texts.Add(model);
                if (given is not null && textDtype is { } dt) given.to(dt);
                var keys = assigned[t.Keys];
                if (keys.Count > 0 || given is null) LoadComponent(model, t.Keys, keys, ckpt.Load, ckpt);
                model.eval();
            }
            c.Tokenizers = layout.TextEncoders.Select((t, i) =>
                i == 0 && o.Tokenizer is not null ? o.Tokenizer
                : layout.ConfigFolder is { } folder ? CLIPTokenizer.FromPretrained(folder, t.TokenizerName)
                : ClipVocabulary.Tokenizer(t.PadToken)).ToList();
            foreach (var model in new nn.Module[] { c.Unet, c.Vae }.Concat(texts)) ModuleScope.Detach(model);
            return c;
        }
        catch
        {
            if (o.TextEncoder is { } given) ModuleScope.Detach(given);
            c.DisposeModels(keep: o.TextEncoder);
            throw;
        }
    }

    private static void CheckFor(string pipeline, OriginalCheckpoint ckpt)
    {
        var family = CheckpointInspection.DetectFamily(ckpt);
        string convIn = UNetKeyRules.Prefix + "input_blocks.0.0.weight";
        long inChannels = ckpt.Shape(convIn) is { Length: 4 } s ? s[1] : 4;
        if (CheckpointInspection.IsXl(family))
            throw new ConfigException(
                $"{ckpt.Path} is a {family} checkpoint (for {SingleFileLayout.PipelineClass(family, inChannels)}); {pipeline}.FromSingleFile loads Stable Diffusion 1.x and 2.x files")
            { FilePath = ckpt.Path };
        if (inChannels == 9 && pipeline != StableDiffusionInpaintPipeline.Name)
            throw new ConfigException(
                $"{ckpt.Path} is an inpainting checkpoint (9 UNet input channels, '{convIn}'); load it with {StableDiffusionInpaintPipeline.Name}.FromSingleFile")
            { FilePath = ckpt.Path, Key = convIn };
    }

    /// <summary>
    /// Hands the components of a Stable Diffusion 1.x/2.x file to <paramref name="create"/> (a pipeline constructor), which
    /// then owns them; if it throws, they are freed (a text encoder the caller passed in is left to the caller).
    /// </summary>
    internal T Into<T>(Func<AutoencoderKL, CLIPTextModel, CLIPTokenizer, UNet2DConditionModel, IScheduler, T> create, CLIPTextModel? given) =>
        IntoPipeline(c => create(c.Vae, (CLIPTextModel)c.TextEncoders[0], c.Tokenizers[0], c.Unet, c.Scheduler), given);

    /// <summary>
    /// Hands every component to <paramref name="create"/> (a pipeline constructor, e.g. an SDXL one with two text
    /// encoders), which then owns them; if it throws, they are freed (a text encoder the caller passed in is left to the caller).
    /// </summary>
    internal T IntoPipeline<T>(Func<SingleFileComponents, T> create, nn.Module? given)
    {
        try
        {
            var pipe = create(this);
            _released = true;
            return pipe;
        }
        catch
        {
            DisposeModels(keep: given);
            _released = true;
            throw;
        }
    }

    /// <summary>diffusers' flat EMA key: <c>model.diffusion_model.input_blocks.0.0.weight</c> → <c>model_ema.diffusion_modelinput_blocks00weight</c>.</summary>
    public static string EmaKey(string key) => "model_ema." + string.Concat(key.Split('.').Skip(1));

    /// <summary>
    /// Builds a component in <paramref name="dtype"/>, its weights uninitialised (<see cref="ModelBuild"/>: never a float32
    /// copy first; <see cref="LoadComponent"/> overwrites every parameter strictly).
    /// </summary>
    private static T Build<T>(Func<T> create, ScalarType? dtype) where T : nn.Module => ModuleScope.Run(() =>
    {
        var m = ModelBuild.Run(dtype, forCheckpoint: true, create);
        if (dtype is { } dt) m.to(dt); // a no-op for what the build already made in dt
        return m;
    });

    /// <summary>
    /// Converts the component's keys and copies them into <paramref name="module"/> strictly. Before anything is copied,
    /// missing and unexpected weights and wrong shapes are reported with the original key names.
    /// </summary>
    private static void LoadComponent(nn.Module module, KeyMap map, IReadOnlyList<string> keys, Func<string, Tensor> load, OriginalCheckpoint ckpt)
    {
        var weights = map.ToDiffusers(keys, load, ckpt.Path);
        try
        {
            var targets = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            foreach (var (name, p) in module.named_parameters()) targets[name] = p;
            foreach (var (name, b) in module.named_buffers()) targets.TryAdd(name, b);
            string Original(string d) => map.FromDiffusers(d)?.Original ?? d;
            var missing = targets.Keys.Where(k => !weights.ContainsKey(k)).Select(Original).Distinct().Order(StringComparer.Ordinal).ToList();
            if (missing.Count > 0)
                throw new WeightsException($"{ckpt.Path}: missing {map.Component} key(s) for this architecture: {KeyMap.Summarize(missing)}")
                { FilePath = ckpt.Path, Key = missing[0] };
            var unexpected = weights.Keys.Where(k => !targets.ContainsKey(k)).Select(Original).Distinct().Order(StringComparer.Ordinal).ToList();
            if (unexpected.Count > 0)
                throw new WeightsException($"{ckpt.Path}: {map.Component} key(s) this architecture does not have: {KeyMap.Summarize(unexpected)}")
                { FilePath = ckpt.Path, Key = unexpected[0] };
            foreach (var (name, w) in weights)
                if (!w.shape.SequenceEqual(targets[name].shape))
                {
                    string original = Original(name);
                    throw new WeightsException(
                        $"{ckpt.Path}: '{original}' has shape [{string.Join(", ", ckpt.Shape(original) ?? w.shape)}], but the {map.Component} of this " +
                        $"architecture expects [{string.Join(", ", targets[name].shape)}] for it (diffusers '{name}'); the config does not describe this file")
                    { FilePath = ckpt.Path, Key = original };
                }
            WeightLoader.LoadInto(module, weights, ckpt.Path);
        }
        finally
        {
            foreach (var t in weights.Values) t.Dispose();
        }
    }

    private bool _released;

    private void DisposeModels(nn.Module? keep)
    {
        Layout.Scheduler.Dispose();
        Unet?.Dispose();
        Vae?.Dispose();
        foreach (var t in TextEncoders)
            if (!ReferenceEquals(t, keep)) t.Dispose();
    }

    /// <summary>Disposes the models and the scheduler not yet handed to a pipeline.</summary>
    public void Dispose()
    {
        if (!_released) DisposeModels(keep: null);
        _released = true;
    }
}
