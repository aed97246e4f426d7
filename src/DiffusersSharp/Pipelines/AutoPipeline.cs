using DiffusersSharp.Loading;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// What diffusers' <c>from_pipe(pipeline, **kwargs)</c> takes besides the pipeline: the <c>controlnet</c> switch, components
/// that replace the pipeline's, and model_index.json options that replace its config's.
/// </summary>
public sealed record FromPipeOptions
{
    /// <summary>
    /// diffusers' <c>controlnet=net</c>: a <see cref="Models.ControlNetModel"/> or <see cref="Models.MultiControlNetModel"/>;
    /// the task's ControlNet pipeline is built, with this net. The new pipeline owns it (disposes it).
    /// </summary>
    public nn.Module? Controlnet { get; init; }

    /// <summary>diffusers' <c>controlnet=None</c>: the task's pipeline without ControlNet (from a ControlNet pipeline).</summary>
    public bool WithoutControlnet { get; init; }

    /// <summary>
    /// Components by model_index.json name (<c>vae</c>, <c>scheduler</c>, <c>unet</c>, …) that replace the pipeline's, as
    /// diffusers' component keyword arguments. The new pipeline owns (disposes) what is given here.
    /// </summary>
    public IReadOnlyDictionary<string, object>? Components { get; init; }

    /// <summary>SDXL's <c>force_zeros_for_empty_prompt</c>; null: the pipeline's own, else the class's default (true).</summary>
    public bool? ForceZerosForEmptyPrompt { get; init; }

    /// <summary>SDXL img2img / inpaint's <c>requires_aesthetics_score</c>; null: the pipeline's own, else the class's default (false).</summary>
    public bool? RequiresAestheticsScore { get; init; }
}

/// <summary>
/// The logic the three AutoPipeline classes share (diffusers 0.25.1's <c>_get_task_class</c>, <c>from_pretrained</c> and
/// <c>from_pipe</c>), over <see cref="AutoPipelineTable"/>.
/// </summary>
internal static class AutoPipeline
{
    private static string Who(AutoPipelineTask task) => task switch
    {
        AutoPipelineTask.Text2Image => nameof(AutoPipelineForText2Image),
        AutoPipelineTask.Image2Image => nameof(AutoPipelineForImage2Image),
        _ => nameof(AutoPipelineForInpainting),
    };

    private static string TaskWords(AutoPipelineTask task) => task switch
    {
        AutoPipelineTask.Text2Image => "text-to-image",
        AutoPipelineTask.Image2Image => "image-to-image",
        _ => "inpainting",
    };

    /// <summary>
    /// diffusers' <c>_get_task_class(mapping, className)</c>: the family of <paramref name="className"/> in any table, then
    /// the task's class of that family. A class no table names, a family without the task, and a family whose task class
    /// DiffusersSharp does not have are refused (<paramref name="why"/> says how the class name was derived).
    /// </summary>
    internal static string TaskClass(AutoPipelineTask task, string className, string? why, Func<string, DiffusersException> error)
    {
        string task_ = TaskWords(task);
        string of = why is null ? className : $"{className} ({why})";
        string family = AutoPipelineTable.FamilyOf(className)
            ?? throw error($"no {task_} pipeline is linked to {of}: diffusers 0.25.1's AutoPipeline tables do not name that class");
        string target = AutoPipelineTable.RowOf(family).For(task)
            ?? throw error($"the {family} family of {of} has no {task_} pipeline in diffusers 0.25.1's AutoPipeline tables");
        if (!AutoPipelineTable.Builders.ContainsKey(target))
            throw error($"the {task_} pipeline of the {family} family of {of} is {target}, which DiffusersSharp does not have");
        return target;
    }

    /// <summary>diffusers' <c>from_pretrained</c>; see <see cref="AutoPipelineForText2Image.FromPretrained(string, LoadOptions?)"/>.</summary>
    internal static DiffusionPipeline FromPretrained(AutoPipelineTask task, string idOrPath, nn.Module? controlnet, LoadOptions? options)
    {
        options ??= LoadOptions.Default;
        string folder = PipelinePaths.Resolve(idOrPath, options);
        string index = PipelinePaths.ModelIndex(folder);
        string folderClass = DiffusionPipeline.ReadClassName(index);
        string asked = controlnet is null ? folderClass : folderClass.Replace("Pipeline", "ControlNetPipeline", StringComparison.Ordinal);
        string target = TaskClass(task, asked, controlnet is null ? null : $"{folderClass} with a controlnet",
            m => new ConfigException($"{index}: {Who(task)}: {m}") { FilePath = index, Key = "_class_name" });
        // Load the folder's own class (every component with the options), then build the task's class from its components,
        // which it then owns; what it does not take is disposed.
        var loaded = DiffusionPipeline.FromPretrained(folder, options);
        if (target == folderClass && controlnet is null) return loaded;
        DiffusionPipeline built;
        try
        {
            built = Build(task, target, loaded, new FromPipeOptions { Controlnet = controlnet }, options.Log, borrow: false);
        }
        catch
        {
            loaded.Dispose();
            throw;
        }
        foreach (var c in loaded.Components.Values)
            if (c is IDisposable d && !built.Components.Values.Contains(c, ReferenceEqualityComparer.Instance)) d.Dispose();
        return built;
    }

    /// <summary>diffusers' <c>from_pipe</c>; see <see cref="AutoPipelineForText2Image.FromPipe"/>.</summary>
    internal static DiffusionPipeline FromPipe(AutoPipelineTask task, DiffusionPipeline pipeline, FromPipeOptions? options)
    {
        ArgumentNullException.ThrowIfNull(pipeline);
        options ??= new FromPipeOptions();
        string who = $"{Who(task)}.FromPipe";
        if (options.Controlnet is not null && options.WithoutControlnet)
            throw new DiffusersException($"{who}: pass either FromPipeOptions.Controlnet or WithoutControlnet, not both");
        DiffusersException Error(string m) => new($"{who}: {m}");
        string target = TaskClass(task, pipeline.ClassName, null, Error);
        if (options.Controlnet is not null || options.WithoutControlnet)
        {
            string renamed = (task, options.Controlnet is not null) switch
            {
                (AutoPipelineTask.Text2Image, true) => target.Replace("ControlNet", "").Replace("Pipeline", "ControlNetPipeline"),
                (AutoPipelineTask.Text2Image, false) => target.Replace("ControlNetPipeline", "Pipeline"),
                (AutoPipelineTask.Image2Image, true) => target.Replace("ControlNet", "").Replace("Img2ImgPipeline", "ControlNetImg2ImgPipeline"),
                (AutoPipelineTask.Image2Image, false) => target.Replace("ControlNetImg2ImgPipeline", "Img2ImgPipeline"),
                (_, true) => target.Replace("ControlNet", "").Replace("InpaintPipeline", "ControlNetInpaintPipeline"),
                (_, false) => target.Replace("ControlNetInpaintPipeline", "InpaintPipeline"),
            };
            target = TaskClass(task, renamed, options.Controlnet is not null ? $"the ControlNet variant of {target}" : $"{target} without ControlNet", Error);
        }
        return Build(task, target, pipeline, options, pipeline switch
        {
            StableDiffusionPipelineBase sd => sd.Log,
            StableDiffusionXLPipelineBase xl => xl.Log,
            _ => null,
        }, borrow: true);
    }

    /// <summary>
    /// Builds <paramref name="target"/> from <paramref name="source"/>'s components and the options' replacements; with
    /// <paramref name="borrow"/> the source's components are borrowed (the source keeps owning them), else taken over.
    /// </summary>
    private static DiffusionPipeline Build(AutoPipelineTask task, string target, DiffusionPipeline source, FromPipeOptions options,
        Action<string>? log, bool borrow)
    {
        string who = borrow ? $"{Who(task)}.FromPipe" : $"{Who(task)}.FromPretrained";
        var builder = AutoPipelineTable.Builders[target];
        var components = new Dictionary<string, object>(StringComparer.Ordinal);
        var lent = new List<object>();
        foreach (var (name, c) in source.Components)
            if (builder.Takes.Contains(name))
            {
                components[name] = c;
                lent.Add(c);
            }
        if (source is IIPAdapterPipeline { FeatureExtractor: { } fe }) components["feature_extractor"] = fe;
        foreach (var (name, c) in options.Components ?? new Dictionary<string, object>())
        {
            if (!builder.Takes.Contains(name))
                throw new DiffusersException(
                    $"{who}: FromPipeOptions.Components names '{name}', which {target} does not take (it takes {string.Join(", ", builder.Takes)})");
            components[name] = c ?? throw new DiffusersException($"{who}: FromPipeOptions.Components['{name}'] is null");
        }
        if (options.Controlnet is not null) components["controlnet"] = options.Controlnet;

        var configured = new Dictionary<string, bool>(AutoPipelineTable.OptionsOf(source));
        if (options.ForceZerosForEmptyPrompt is bool fz) configured["force_zeros_for_empty_prompt"] = fz;
        if (options.RequiresAestheticsScore is bool ra) configured["requires_aesthetics_score"] = ra;
        foreach (var name in configured.Keys.Where(k => !builder.Options.Contains(k)).ToList())
        {
            bool given = (name == "force_zeros_for_empty_prompt" && options.ForceZerosForEmptyPrompt is not null)
                || (name == "requires_aesthetics_score" && options.RequiresAestheticsScore is not null);
            if (given) throw new DiffusersException($"{who}: {target} has no '{name}' option");
            configured.Remove(name);
        }

        var parts = new AutoPipelineParts(who, target, source.ClassName, components, configured, log);
        DiffusionPipeline Make()
        {
            var pipe = builder.Build(parts);
            if (pipe is IIPAdapterPipeline ip)
                IPAdapterComponents.Attach(ip, parts.ImageEncoder, parts.FeatureExtractor);
            return pipe;
        }
        return borrow ? DiffusionPipeline.BuildBorrowing(lent, Make) : Make();
    }
}

/// <summary>
/// diffusers' <c>AutoPipelineForText2Image</c> (0.25.1): the text-to-image pipeline of a folder's model family, from
/// model_index.json's <c>_class_name</c> (a StableDiffusionInpaintPipeline folder gives a <see cref="StableDiffusionPipeline"/>,
/// an SDXL folder a <see cref="StableDiffusionXLPipeline"/>, a controlnet a ControlNet pipeline), or from a loaded pipeline
/// without loading again (<see cref="FromPipe"/>).
/// <code>
/// using var pipe = AutoPipelineForText2Image.FromPretrained("runwayml/stable-diffusion-v1-5");
/// using var img2img = AutoPipelineForImage2Image.FromPipe(pipe);   // the same models, shared
/// </code>
/// </summary>
public static class AutoPipelineForText2Image
{
    /// <summary>
    /// diffusers' <c>from_pretrained</c>: reads model_index.json's <c>_class_name</c>, finds its family in diffusers' tables
    /// (given a controlnet, the class's ControlNet name, as diffusers' <c>replace("Pipeline", "ControlNetPipeline")</c>) and
    /// loads that family's text-to-image pipeline, every component with <paramref name="options"/>; the pipeline owns the
    /// controlnet it is given (on failure it stays the caller's). The folder's own class is loaded
    /// (<see cref="DiffusionPipeline.FromPretrained"/>) and the task's class built from its components. A class of no table, a family without
    /// the task and a family DiffusersSharp does not have (Kandinsky, IF, Würstchen, PixArt, …) are a
    /// <see cref="ConfigException"/> naming the file, the class and the task.
    /// </summary>
    public static DiffusionPipeline FromPretrained(string idOrPath, LoadOptions? options = null) =>
        AutoPipeline.FromPretrained(AutoPipelineTask.Text2Image, idOrPath, null, options);

    /// <inheritdoc cref="FromPretrained(string, LoadOptions?)"/>
    public static DiffusionPipeline FromPretrained(string idOrPath, nn.Module controlnet, LoadOptions? options = null) =>
        AutoPipeline.FromPretrained(AutoPipelineTask.Text2Image, idOrPath, controlnet ?? throw new ArgumentNullException(nameof(controlnet)), options);

    /// <summary>
    /// diffusers' <c>from_pipe</c>: the text-to-image pipeline of <paramref name="pipeline"/>'s family, built from the same
    /// component objects (no reload, no copy; an SD ControlNet pipeline's controlnet is left out when the task's class
    /// takes none). The new pipeline borrows them: disposing it disposes only what it owns (components given in
    /// <paramref name="options"/>, a scheduler its constructor corrected), and <paramref name="pipeline"/> must outlive it
    /// and is disposed by its owner as before. Options: <see cref="FromPipeOptions"/>.
    /// </summary>
    public static DiffusionPipeline FromPipe(DiffusionPipeline pipeline, FromPipeOptions? options = null) =>
        AutoPipeline.FromPipe(AutoPipelineTask.Text2Image, pipeline, options);
}

/// <summary>
/// diffusers' <c>AutoPipelineForImage2Image</c> (0.25.1): the image-to-image pipeline of a folder's or a pipeline's family
/// (see <see cref="AutoPipelineForText2Image"/>).
/// </summary>
public static class AutoPipelineForImage2Image
{
    /// <inheritdoc cref="AutoPipelineForText2Image.FromPretrained(string, LoadOptions?)"/>
    public static DiffusionPipeline FromPretrained(string idOrPath, LoadOptions? options = null) =>
        AutoPipeline.FromPretrained(AutoPipelineTask.Image2Image, idOrPath, null, options);

    /// <inheritdoc cref="AutoPipelineForText2Image.FromPretrained(string, LoadOptions?)"/>
    public static DiffusionPipeline FromPretrained(string idOrPath, nn.Module controlnet, LoadOptions? options = null) =>
        AutoPipeline.FromPretrained(AutoPipelineTask.Image2Image, idOrPath, controlnet ?? throw new ArgumentNullException(nameof(controlnet)), options);

    /// <inheritdoc cref="AutoPipelineForText2Image.FromPipe"/>
    public static DiffusionPipeline FromPipe(DiffusionPipeline pipeline, FromPipeOptions? options = null) =>
        AutoPipeline.FromPipe(AutoPipelineTask.Image2Image, pipeline, options);
}

/// <summary>
/// diffusers' <c>AutoPipelineForInpainting</c> (0.25.1): the inpainting pipeline of a folder's or a pipeline's family
/// (see <see cref="AutoPipelineForText2Image"/>).
/// </summary>
public static class AutoPipelineForInpainting
{
    /// <inheritdoc cref="AutoPipelineForText2Image.FromPretrained(string, LoadOptions?)"/>
    public static DiffusionPipeline FromPretrained(string idOrPath, LoadOptions? options = null) =>
        AutoPipeline.FromPretrained(AutoPipelineTask.Inpainting, idOrPath, null, options);

    /// <inheritdoc cref="AutoPipelineForText2Image.FromPretrained(string, LoadOptions?)"/>
    public static DiffusionPipeline FromPretrained(string idOrPath, nn.Module controlnet, LoadOptions? options = null) =>
        AutoPipeline.FromPretrained(AutoPipelineTask.Inpainting, idOrPath, controlnet ?? throw new ArgumentNullException(nameof(controlnet)), options);

    /// <inheritdoc cref="AutoPipelineForText2Image.FromPipe"/>
    public static DiffusionPipeline FromPipe(DiffusionPipeline pipeline, FromPipeOptions? options = null) =>
        AutoPipeline.FromPipe(AutoPipelineTask.Inpainting, pipeline, options);
}
