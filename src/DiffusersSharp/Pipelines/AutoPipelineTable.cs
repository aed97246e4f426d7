using DiffusersSharp.Imaging;
using DiffusersSharp.Models;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Text;
using TorchSharp;

namespace DiffusersSharp.Pipelines;

/// <summary>The three tasks of diffusers' AutoPipeline classes.</summary>
public enum AutoPipelineTask
{
    /// <summary><c>AutoPipelineForText2Image</c> (AUTO_TEXT2IMAGE_PIPELINES_MAPPING).</summary>
    Text2Image,
    /// <summary><c>AutoPipelineForImage2Image</c> (AUTO_IMAGE2IMAGE_PIPELINES_MAPPING).</summary>
    Image2Image,
    /// <summary><c>AutoPipelineForInpainting</c> (AUTO_INPAINT_PIPELINES_MAPPING).</summary>
    Inpainting,
}

/// <summary>
/// diffusers 0.25.1's AutoPipeline tables (pipelines/auto_pipeline.py) as data: each model family's pipeline class per task,
/// every row of diffusers' tables, those of families DiffusersSharp does not have included (they are refused by name), and
/// the builders of the classes DiffusersSharp has: one line per class, building it from named components.
/// </summary>
internal static class AutoPipelineTable
{
    /// <summary>One family's row: its text-to-image, image-to-image and inpainting class (null: diffusers' table has none).</summary>
    internal sealed record Row(string Family, string? Text2Image, string? Image2Image, string? Inpainting)
    {
        public string? For(AutoPipelineTask task) => task switch
        {
            AutoPipelineTask.Text2Image => Text2Image,
            AutoPipelineTask.Image2Image => Image2Image,
            _ => Inpainting,
        };
    }

    /// <summary>AUTO_TEXT2IMAGE / AUTO_IMAGE2IMAGE / AUTO_INPAINT_PIPELINES_MAPPING, by family, in diffusers' order.</summary>
    internal static readonly IReadOnlyList<Row> Rows =
    [
        new("stable-diffusion", StableDiffusionPipeline.Name, StableDiffusionImg2ImgPipeline.Name, StableDiffusionInpaintPipeline.Name),
        new("stable-diffusion-xl", StableDiffusionXLPipeline.Name, StableDiffusionXLImg2ImgPipeline.Name, StableDiffusionXLInpaintPipeline.Name),
        new("if", "IFPipeline", "IFImg2ImgPipeline", "IFInpaintingPipeline"),
        new("kandinsky", "KandinskyCombinedPipeline", "KandinskyImg2ImgCombinedPipeline", "KandinskyInpaintCombinedPipeline"),
        new("kandinsky22", "KandinskyV22CombinedPipeline", "KandinskyV22Img2ImgCombinedPipeline", "KandinskyV22InpaintCombinedPipeline"),
        new("kandinsky3", "Kandinsky3Pipeline", "Kandinsky3Img2ImgPipeline", null),
        new("stable-diffusion-controlnet", StableDiffusionControlNetPipeline.Name, StableDiffusionControlNetImg2ImgPipeline.Name,
            StableDiffusionControlNetInpaintPipeline.Name),
        // diffusers 0.25.1 maps no inpainting class here (StableDiffusionXLControlNetInpaintPipeline is not in its tables)
        new("stable-diffusion-xl-controlnet", StableDiffusionXLControlNetPipeline.Name, StableDiffusionXLControlNetImg2ImgPipeline.Name, null),
        new("wuerstchen", "WuerstchenCombinedPipeline", null, null),
        new("lcm", LatentConsistencyModelPipeline.Name, LatentConsistencyModelImg2ImgPipeline.Name, null),
        new("pixart", "PixArtAlphaPipeline", null, null),
    ];

    /// <summary>
    /// _AUTO_*_DECODER_PIPELINES_MAPPING: the decoder pipelines of the prior + decoder families, which diffusers' family
    /// lookup (<c>_get_task_class</c>'s <c>get_model</c>) also searches.
    /// </summary>
    internal static readonly IReadOnlyList<Row> DecoderRows =
    [
        new("kandinsky", "KandinskyPipeline", "KandinskyImg2ImgPipeline", "KandinskyInpaintPipeline"),
        new("kandinsky22", "KandinskyV22Pipeline", "KandinskyV22Img2ImgPipeline", "KandinskyV22InpaintPipeline"),
        new("wuerstchen", "WuerstchenDecoderPipeline", null, null),
    ];

    /// <summary>
    /// The family of a pipeline class: the first table row naming it, searched in diffusers' order (the three task tables,
    /// then the decoder tables); null when no table names it.
    /// </summary>
    internal static string? FamilyOf(string className)
    {
        foreach (var task in Enum.GetValues<AutoPipelineTask>())
            foreach (var rows in new[] { Rows, DecoderRows })
                foreach (var row in rows)
                    if (row.For(task) == className) return row.Family;
        return null;
    }

    /// <summary>The row of a family.</summary>
    internal static Row RowOf(string family) => Rows.First(r => r.Family == family);

    /// <summary>
    /// A pipeline class's builder: the component names it takes (model_index.json's) and how it is made from them. The
    /// options are model_index.json's of the same names (SDXL's <c>force_zeros_for_empty_prompt</c>,
    /// <c>requires_aesthetics_score</c>).
    /// </summary>
    internal sealed record Builder(IReadOnlyList<string> Takes, IReadOnlyList<string> Options, Func<AutoPipelineParts, DiffusionPipeline> Build);

    private static readonly string[] Sd = ["vae", "text_encoder", "tokenizer", "unet", "scheduler", "image_encoder", "feature_extractor"];
    private static readonly string[] SdControlNet = [.. Sd, "controlnet"];
    private static readonly string[] Sdxl = ["vae", "text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2", "unet", "scheduler", "image_encoder", "feature_extractor"];
    private static readonly string[] SdxlControlNet = [.. Sdxl, "controlnet"];
    private const string ForceZeros = "force_zeros_for_empty_prompt";
    private const string Aesthetics = "requires_aesthetics_score";

    /// <summary>The classes of the tables that DiffusersSharp has, one line each.</summary>
    internal static readonly IReadOnlyDictionary<string, Builder> Builders = new Dictionary<string, Builder>(StringComparer.Ordinal)
    {
        [StableDiffusionPipeline.Name] = new(Sd, [], p => new StableDiffusionPipeline(p.Vae, p.TextEncoder, p.Tokenizer, p.Unet, p.Scheduler, p.Log)),
        [StableDiffusionImg2ImgPipeline.Name] = new(Sd, [], p => new StableDiffusionImg2ImgPipeline(p.Vae, p.TextEncoder, p.Tokenizer, p.Unet, p.Scheduler, p.Log)),
        [StableDiffusionInpaintPipeline.Name] = new(Sd, [], p => new StableDiffusionInpaintPipeline(p.Vae, p.TextEncoder, p.Tokenizer, p.Unet, p.Scheduler, p.Log)),
        [StableDiffusionControlNetPipeline.Name] = new(SdControlNet, [], p =>
            new StableDiffusionControlNetPipeline(p.Vae, p.TextEncoder, p.Tokenizer, p.Unet, p.Controlnet, p.Scheduler, p.Log)),
        [StableDiffusionControlNetImg2ImgPipeline.Name] = new(SdControlNet, [], p =>
            new StableDiffusionControlNetImg2ImgPipeline(p.Vae, p.TextEncoder, p.Tokenizer, p.Unet, p.Controlnet, p.Scheduler, p.Log)),
        [StableDiffusionControlNetInpaintPipeline.Name] = new(SdControlNet, [], p =>
            new StableDiffusionControlNetInpaintPipeline(p.Vae, p.TextEncoder, p.Tokenizer, p.Unet, p.Controlnet, p.Scheduler, p.Log)),
        [StableDiffusionXLPipeline.Name] = new(Sdxl, [ForceZeros], p => new StableDiffusionXLPipeline(p.Vae, p.TextEncoder, p.Tokenizer,
            p.TextEncoder2, p.Tokenizer2, p.Unet, p.Scheduler, p.Option(ForceZeros, true), p.Log)),
        [StableDiffusionXLImg2ImgPipeline.Name] = new(Sdxl, [Aesthetics, ForceZeros], p => new StableDiffusionXLImg2ImgPipeline(p.Vae,
            p.Optional<CLIPTextModel>("text_encoder"), p.Optional<CLIPTokenizer>("tokenizer"), p.TextEncoder2, p.Tokenizer2, p.Unet, p.Scheduler,
            p.Option(Aesthetics, false), p.Option(ForceZeros, true), p.Log)),
        [StableDiffusionXLInpaintPipeline.Name] = new(Sdxl, [Aesthetics, ForceZeros], p => new StableDiffusionXLInpaintPipeline(p.Vae,
            p.Optional<CLIPTextModel>("text_encoder"), p.Optional<CLIPTokenizer>("tokenizer"), p.TextEncoder2, p.Tokenizer2, p.Unet, p.Scheduler,
            p.Option(Aesthetics, false), p.Option(ForceZeros, true), p.Log)),
        [StableDiffusionXLControlNetPipeline.Name] = new(SdxlControlNet, [ForceZeros], p => new StableDiffusionXLControlNetPipeline(p.Vae,
            p.TextEncoder, p.Tokenizer, p.TextEncoder2, p.Tokenizer2, p.Unet, p.Controlnet, p.Scheduler, p.Option(ForceZeros, true), p.Log)),
        [StableDiffusionXLControlNetImg2ImgPipeline.Name] = new(SdxlControlNet, [Aesthetics, ForceZeros], p => new StableDiffusionXLControlNetImg2ImgPipeline(
            p.Vae, p.TextEncoder, p.Tokenizer, p.TextEncoder2, p.Tokenizer2, p.Unet, p.Controlnet, p.Scheduler,
            p.Option(Aesthetics, false), p.Option(ForceZeros, true), p.Log)),
        [LatentConsistencyModelPipeline.Name] = new(Sd, [], p => new LatentConsistencyModelPipeline(p.Vae, p.TextEncoder, p.Tokenizer, p.Unet, p.Scheduler, p.Log)),
        [LatentConsistencyModelImg2ImgPipeline.Name] = new(Sd, [], p =>
            new LatentConsistencyModelImg2ImgPipeline(p.Vae, p.TextEncoder, p.Tokenizer, p.Unet, p.Scheduler, p.Log)),
    };

    /// <summary>The model_index.json options a pipeline has (what <c>from_pipe</c> reads from its config).</summary>
    internal static IReadOnlyDictionary<string, bool> OptionsOf(DiffusionPipeline pipeline) => pipeline switch
    {
        StableDiffusionXLPipelineBase x when Builders.TryGetValue(x.ClassName, out var b) => b.Options.ToDictionary(
            o => o, o => o == ForceZeros ? x.ForceZerosForEmptyPrompt : x.RequiresAestheticsScore),
        _ => new Dictionary<string, bool>(),
    };
}

/// <summary>
/// The named components (and model_index.json options) a table class is built from, with errors naming the class, the
/// component and what it should be.
/// </summary>
internal sealed class AutoPipelineParts(string who, string className, string source, IReadOnlyDictionary<string, object> components,
    IReadOnlyDictionary<string, bool> options, Action<string>? log)
{
    public Action<string>? Log => log;

    public T Need<T>(string name) where T : class =>
        Optional<T>(name) ?? throw new DiffusersException(
            $"{who}: {className} needs the '{name}' component, which {source} does not have; pass one in FromPipeOptions.Components");

    public T? Optional<T>(string name) where T : class =>
        !components.TryGetValue(name, out var c) ? null
        : c as T ?? throw new DiffusersException($"{who}: {className}'s '{name}' component must be a {typeof(T).Name}, not a {c.GetType().Name}");

    public bool Option(string name, bool fallback) => options.TryGetValue(name, out var v) ? v : fallback;

    public IVae Vae => Need<IVae>("vae");
    public CLIPTextModel TextEncoder => Need<CLIPTextModel>("text_encoder");
    public CLIPTokenizer Tokenizer => Need<CLIPTokenizer>("tokenizer");
    public CLIPTextModelWithProjection TextEncoder2 => Need<CLIPTextModelWithProjection>("text_encoder_2");
    public CLIPTokenizer Tokenizer2 => Need<CLIPTokenizer>("tokenizer_2");
    public UNet2DConditionModel Unet => Need<UNet2DConditionModel>("unet");
    public IScheduler Scheduler => Need<IScheduler>("scheduler");
    public torch.nn.Module Controlnet => Need<torch.nn.Module>("controlnet");
    public CLIPVisionModelWithProjection? ImageEncoder => Optional<CLIPVisionModelWithProjection>("image_encoder");
    public CLIPImageProcessor? FeatureExtractor => Optional<CLIPImageProcessor>("feature_extractor");
}
