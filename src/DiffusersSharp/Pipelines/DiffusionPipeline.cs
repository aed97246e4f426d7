using DiffusersSharp.Loading;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// Base of every pipeline, and diffusers' <c>DiffusionPipeline.from_pretrained</c>: reads
/// <c>model_index.json</c> and builds the class its <c>_class_name</c> names.
/// </summary>
public abstract class DiffusionPipeline : IDisposable
{
    // One line per pipeline class: diffusers' class name → its FromPretrained, which gets the resolved folder and the caller's options.
    private static readonly ClassRegistry<Func<string, LoadOptions, DiffusionPipeline>> Registry = new()
    {
        [DDPMPipeline.Name] = DDPMPipeline.FromPretrained,
        [ConsistencyModelPipeline.Name] = ConsistencyModelPipeline.FromPretrained,
        [DDIMPipeline.Name] = DDIMPipeline.FromPretrained,
        [LDMPipeline.Name] = LDMPipeline.FromPretrained,
        [LDMSuperResolutionPipeline.Name] = LDMSuperResolutionPipeline.FromPretrained,
        [StableDiffusionPipeline.Name] = StableDiffusionPipeline.FromPretrained,
        [LatentConsistencyModelPipeline.Name] = LatentConsistencyModelPipeline.FromPretrained,
        [LatentConsistencyModelImg2ImgPipeline.Name] = LatentConsistencyModelImg2ImgPipeline.FromPretrained,
        [StableDiffusionImg2ImgPipeline.Name] = StableDiffusionImg2ImgPipeline.FromPretrained,
        [StableDiffusionInpaintPipeline.Name] = StableDiffusionInpaintPipeline.FromPretrained,
        [StableDiffusionUpscalePipeline.Name] = StableDiffusionUpscalePipeline.FromPretrained,
        [StableDiffusionLatentUpscalePipeline.Name] = StableDiffusionLatentUpscalePipeline.FromPretrained,
        [StableDiffusionInstructPix2PixPipeline.Name] = StableDiffusionInstructPix2PixPipeline.FromPretrained,
        [StableDiffusionPanoramaPipeline.Name] = StableDiffusionPanoramaPipeline.FromPretrained,
        [StableDiffusionXLPipeline.Name] = StableDiffusionXLPipeline.FromPretrained,
        [StableDiffusionXLImg2ImgPipeline.Name] = StableDiffusionXLImg2ImgPipeline.FromPretrained,
        [StableDiffusionXLInpaintPipeline.Name] = StableDiffusionXLInpaintPipeline.FromPretrained,
        [StableDiffusionXLInstructPix2PixPipeline.Name] = StableDiffusionXLInstructPix2PixPipeline.FromPretrained,
        [StableDiffusionControlNetPipeline.Name] = StableDiffusionControlNetPipeline.FromPretrained,
        [StableDiffusionControlNetImg2ImgPipeline.Name] = StableDiffusionControlNetImg2ImgPipeline.FromPretrained,
        [StableDiffusionControlNetInpaintPipeline.Name] = StableDiffusionControlNetInpaintPipeline.FromPretrained,
        [StableDiffusionXLControlNetPipeline.Name] = StableDiffusionXLControlNetPipeline.FromPretrained,
        [StableDiffusionXLControlNetImg2ImgPipeline.Name] = StableDiffusionXLControlNetImg2ImgPipeline.FromPretrained,
        [StableDiffusionXLControlNetInpaintPipeline.Name] = StableDiffusionXLControlNetInpaintPipeline.FromPretrained,
        [StableDiffusionAdapterPipeline.Name] = StableDiffusionAdapterPipeline.FromPretrained,
        [StableDiffusionXLAdapterPipeline.Name] = StableDiffusionXLAdapterPipeline.FromPretrained,
        [DiTPipeline.Name] = DiTPipeline.FromPretrained,
    };

    // The components the pipeline being built on this thread borrows (AutoPipeline FromPipe's sharing), null when none.
    [ThreadStatic] private static HashSet<object>? t_lent;
    private readonly HashSet<object>? _borrowed;

    /// <summary>
    /// A pipeline that owns its components, unless it is being built inside <see cref="BuildBorrowing"/> (AutoPipeline's
    /// <c>FromPipe</c>): then it borrows the components lent there and never disposes them.
    /// </summary>
    protected DiffusionPipeline() => _borrowed = t_lent;

    /// <summary>
    /// Builds a pipeline with <paramref name="build"/> that borrows <paramref name="lent"/> (compared by reference): the new
    /// pipeline's <see cref="Dispose"/> leaves them to their owner, and a Stable Diffusion constructor that corrects a lent
    /// scheduler's config keeps the lent one alive (the corrected copy is the new pipeline's own).
    /// </summary>
    internal static T BuildBorrowing<T>(IEnumerable<object> lent, Func<T> build)
    {
        var previous = t_lent;
        t_lent = new HashSet<object>(lent, ReferenceEqualityComparer.Instance);
        try
        {
            return build();
        }
        finally
        {
            t_lent = previous;
        }
    }

    /// <summary>Whether <paramref name="component"/> is borrowed from another pipeline (AutoPipeline's <c>FromPipe</c>), so not disposed with this one.</summary>
    public bool Borrows(object component) => _borrowed?.Contains(component) == true;

    /// <summary>diffusers' class name of this pipeline (e.g. <c>DDPMPipeline</c>).</summary>
    public abstract string ClassName { get; }

    /// <summary>The components by model_index.json name (<c>unet</c>, <c>scheduler</c>, …).</summary>
    public abstract IReadOnlyDictionary<string, object> Components { get; }

    /// <summary>The pipeline classes <see cref="FromPretrained"/> can build, sorted.</summary>
    public static IReadOnlyList<string> KnownClasses => Registry.KnownClasses;

    /// <summary>
    /// Makes <paramref name="className"/> loadable by <see cref="FromPretrained"/> (pipelines of later layers):
    /// <paramref name="fromPretrained"/> gets the local pipeline folder and the caller's options, and must load every
    /// component with them.
    /// </summary>
    public static void Register(string className, Func<string, LoadOptions, DiffusionPipeline> fromPretrained) =>
        Registry.Register(className, fromPretrained);

    /// <summary>
    /// Loads the pipeline in a folder or Hub id (the Hugging Face cache, downloading when allowed) by its
    /// model_index.json's <c>_class_name</c>; the class's own <c>FromPretrained</c> loads every component with
    /// <paramref name="options"/> (variant, dtype, device, log, revision, cache and Hub settings). An unknown class is a
    /// <see cref="ConfigException"/> naming the file and listing the known classes.
    /// </summary>
    public static DiffusionPipeline FromPretrained(string idOrPath, LoadOptions? options = null)
    {
        options ??= LoadOptions.Default;
        string folder = PipelinePaths.Resolve(idOrPath, options);
        string index = PipelinePaths.ModelIndex(folder);
        string className = ReadClassName(index);
        var factory = Registry.Find(className);
        if (factory is null)
            throw new ConfigException(
                $"{index}: unknown pipeline class \"{className}\" (_class_name); known pipeline classes: {string.Join(", ", KnownClasses)}")
            { FilePath = index, Key = "_class_name" };
        return factory(folder, options);
    }

    /// <summary>model_index.json's <c>_class_name</c>, with errors naming the file.</summary>
    public static string ReadClassName(string modelIndexPath) => PipelineIndex.Read(modelIndexPath).ClassName;

    /// <summary>Checks model_index.json names <paramref name="expected"/> (diffusers accepts a few compatible classes; we require the class itself or a registered alias).</summary>
    protected static void CheckClass(string folder, string expected, params string[] alsoAccepted)
    {
        string index = PipelinePaths.ModelIndex(folder);
        string actual = ReadClassName(index);
        if (actual != expected && !alsoAccepted.Contains(actual))
            throw new ConfigException(
                $"{index}: _class_name is \"{actual}\", but {expected}.FromPretrained needs a {string.Join(" or ", new[] { expected }.Concat(alsoAccepted))} folder; " +
                $"use DiffusionPipeline.FromPretrained to load the class the folder names")
            { FilePath = index, Key = "_class_name" };
    }

    /// <summary>
    /// Disposes every component the pipeline holds (models, VAE, scheduler): the one place a pipeline's ownership is
    /// applied. A pipeline owns what it was built with or loaded and what is assigned to it; a component that an
    /// assignment replaced is no longer held, so it is left to the caller; a component borrowed from another pipeline
    /// (<see cref="Borrows"/>: AutoPipeline's <c>FromPipe</c>) is left to that pipeline.
    /// </summary>
    public virtual void Dispose()
    {
        foreach (var c in Components.Values)
            if (c is IDisposable d && !Borrows(c)) d.Dispose();
        GC.SuppressFinalize(this);
    }

    /// <summary>The generators of a call: a seed (its own generator), one generator, a list, or none (torch's global one).</summary>
    protected IReadOnlyList<Generator>? Generators(long? seed, Generator? generator, IReadOnlyList<Generator>? generators, out Generator? owned)
    {
        owned = null;
        int given = (seed is null ? 0 : 1) + (generator is null ? 0 : 1) + (generators is null ? 0 : 1);
        if (given > 1)
            throw new DiffusersException($"{ClassName}: pass one of seed, generator or generators, not several");
        if (seed is long s) return [owned = new Generator((ulong)s)];
        if (generator is not null) return [generator];
        if (generators is not null && generators.Count == 0)
            throw new DiffusersException($"{ClassName}: the list of generators is empty");
        return generators;
    }

    /// <summary>Checks a list of generators against the effective batch size, as diffusers' prepare_latents does.</summary>
    protected void CheckGeneratorCount(IReadOnlyList<Generator>? generators, int batchSize)
    {
        if (generators is { Count: > 1 } && generators.Count != batchSize)
            throw new DiffusersException(
                $"{ClassName}: you have passed a list of generators of length {generators.Count}, but requested an effective batch size of {batchSize}. " +
                "Make sure the batch size matches the length of the generators.");
    }

    /// <summary>
    /// Starts a Stable Diffusion / SDXL / ControlNet call: the effective batch (the prompts, or the rows of
    /// <paramref name="promptEmbeds"/>, × <paramref name="numImagesPerPrompt"/>), the <see cref="Generators"/>, checked
    /// against that batch unless <paramref name="checkGeneratorCount"/> is false (img2img checks them later, as diffusers),
    /// then no-grad mode and the call's dispose scope.
    /// </summary>
    private protected PipelineCall BeginCall(PromptInput prompt, Tensor? promptEmbeds, int numImagesPerPrompt, long? seed,
        Generator? generator, IReadOnlyList<Generator>? generators, bool checkGeneratorCount = true)
    {
        int total = PipelineSteps.BatchSize(prompt, promptEmbeds) * numImagesPerPrompt;
        var gens = Generators(seed, generator, generators, out var owned);
        if (checkGeneratorCount)
        {
            try
            {
                CheckGeneratorCount(gens, total);
            }
            catch
            {
                owned?.Dispose();
                throw;
            }
        }
        return new PipelineCall(total, gens, owned);
    }
}
