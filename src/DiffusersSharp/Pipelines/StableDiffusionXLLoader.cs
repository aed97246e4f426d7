using System.Text.Json;
using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Text;

namespace DiffusersSharp.Pipelines;

/// <summary>Loading the components of a Stable Diffusion XL pipeline folder (diffusers' <c>from_pretrained</c> for these classes).</summary>
internal static class StableDiffusionXLLoader
{
    /// <summary>
    /// The loaded components of an SDXL folder; <see cref="TextEncoder"/> / <see cref="Tokenizer"/> are null for a refiner
    /// (model_index.json lists them as <c>[null, null]</c>).
    /// </summary>
    internal sealed record Loaded(AutoencoderKL Vae, CLIPTextModel? TextEncoder, CLIPTokenizer? Tokenizer,
        CLIPTextModelWithProjection TextEncoder2, CLIPTokenizer Tokenizer2, UNet2DConditionModel Unet, IScheduler Scheduler,
        PipelineIndex Index)
    {
        /// <summary>model_index.json's <c>force_zeros_for_empty_prompt</c> (diffusers' default: true).</summary>
        public bool ForceZerosForEmptyPrompt => Flag(Index, "force_zeros_for_empty_prompt", true);

        /// <summary>model_index.json's <c>requires_aesthetics_score</c> (diffusers' default: false).</summary>
        public bool RequiresAestheticsScore => Flag(Index, "requires_aesthetics_score", false);
    }

    /// <summary>
    /// Reads an SDXL pipeline folder (or Hub id): checks model_index.json's class is one of <paramref name="acceptedClasses"/>,
    /// that every required component is listed and has its folder (a missing one is named), loads <c>text_encoder</c> /
    /// <c>tokenizer</c> when listed (the refiner has neither), checks that tokenizers, text encoders and UNet fit each
    /// other, and loads everything with <paramref name="options"/> (the variant only where the component's folder holds it,
    /// <see cref="PipelineVariant"/>); when <paramref name="create"/> throws, the loaded
    /// models and scheduler are disposed.
    /// </summary>
    public static TPipeline Load<TPipeline>(string idOrPath, LoadOptions? options, string className, string[] acceptedClasses,
        Func<Loaded, TPipeline> create) where TPipeline : IIPAdapterPipeline
    {
        options ??= LoadOptions.Default;
        string folder = PipelinePaths.Resolve(idOrPath, options);
        var index = PipelineSteps.ReadPipelineIndex(folder, className, acceptedClasses, RequiredComponents,
            options.Log ?? StableDiffusionPipelineBase.DefaultLog);
        PipelineVariant.RequireSomewhere(index, options.Variant);
        bool hasFirst = index.Component("text_encoder") is not null;
        foreach (var key in new[] { "force_zeros_for_empty_prompt", "requires_aesthetics_score" })
            Flag(index, key, false);

        var tokenizer = hasFirst ? CLIPTokenizer.FromPretrained(folder, "tokenizer", options) : null;
        var tokenizer2 = CLIPTokenizer.FromPretrained(folder, "tokenizer_2", options);
        string unetPath = Path.Combine(folder, "unet", UNet2DConditionModel.ConfigName);
        return PipelineSteps.DisposeOnFailure(loaded =>
        {
            var scheduler = loaded.Kept(SchedulerFactory.FromPretrained(folder, "scheduler", options));
            ConfigJson.Read<UNet2DConditionModelConfig>(unetPath);
            if (tokenizer is not null)
                TokenizerFit.Check(tokenizer, PipelineSteps.ReadTextConfig(folder, "text_encoder"), Path.Combine(folder, "text_encoder", "config.json"));
            TokenizerFit.Check(tokenizer2, PipelineSteps.ReadTextConfig(folder, "text_encoder_2"), Path.Combine(folder, "text_encoder_2", "config.json"));
            // the text encoders in fp32 under bf16, as the SD loader keeps its one (StableDiffusionPipelineBase.TextEncoderDtype)
            var textOptions = options with { Dtype = StableDiffusionPipelineBase.TextEncoderDtype(options.Dtype) };
            var text = hasFirst ? loaded.Kept(CLIPTextModel.FromPretrained(folder, "text_encoder", PipelineVariant.For(textOptions, index, "text_encoder"))) : null;
            var text2 = loaded.Kept(CLIPTextModelWithProjection.FromPretrained(folder, "text_encoder_2", PipelineVariant.For(textOptions, index, "text_encoder_2")));
            var unet = loaded.Kept(UNet2DConditionModel.FromPretrained(folder, "unet", PipelineVariant.For(options, index, "unet")));
            var vae = loaded.Kept(AutoencoderKL.FromPretrained(folder, "vae", PipelineVariant.For(options, index, "vae")));
            var (encoder, featureExtractor) = IPAdapterComponents.Load(folder, index, unet, options, loaded,
                options.Log ?? StableDiffusionPipelineBase.DefaultLog);
            try
            {
                return IPAdapterComponents.Attach(create(new Loaded(vae, text, tokenizer, text2, tokenizer2, unet, scheduler, index)),
                    encoder, featureExtractor);
            }
            catch (ConfigException e) when (e.FilePath is null)
            {
                throw new ConfigException($"{unetPath}: {e.Message}", e) { FilePath = unetPath, Key = e.Key };
            }
        });
    }

    /// <summary>The components an SDXL folder needs: the base's first encoder pair only when its index lists <c>text_encoder</c>.</summary>
    private static IEnumerable<string> RequiredComponents(PipelineIndex index) =>
        StableDiffusionXLPipelineBase.RequiredComponents.Concat(
            index.Component("text_encoder") is not null ? ["text_encoder", "tokenizer"] : Array.Empty<string>());

    /// <summary>A boolean option of model_index.json; anything but true / false is an error naming the file and key.</summary>
    private static bool Flag(PipelineIndex index, string key, bool fallback)
    {
        if (!index.Options.TryGetValue(key, out var value) || value.ValueKind == JsonValueKind.Null) return fallback;
        return value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new ConfigException($"{index.Path}: {key} must be true or false, got {value.GetRawText()}")
            { FilePath = index.Path, Key = key },
        };
    }
}
