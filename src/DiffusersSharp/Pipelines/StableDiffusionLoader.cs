using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Text;

namespace DiffusersSharp.Pipelines;

/// <summary>Loading the components of a Stable Diffusion pipeline folder (diffusers' <c>from_pretrained</c> for these classes).</summary>
internal static class StableDiffusionLoader
{
    /// <summary>The loaded components of a Stable Diffusion folder.</summary>
    internal sealed record Loaded(AutoencoderKL Vae, CLIPTextModel TextEncoder, CLIPTokenizer Tokenizer,
        UNet2DConditionModel Unet, IScheduler Scheduler, PipelineIndex Index);

    /// <summary>
    /// Reads a Stable Diffusion pipeline folder (or Hub id): checks model_index.json's class is one of
    /// <paramref name="acceptedClasses"/>, that every required component is listed and has its folder (a missing one is
    /// named), logs the optional components that are present but not run (to <see cref="LoadOptions.Log"/>), and loads
    /// the rest, each with the same <paramref name="options"/> (variant, dtype, device, revision, cache and Hub settings; the
    /// variant only where the component's folder holds it, <see cref="PipelineVariant"/>; the
    /// text encoder in <see cref="StableDiffusionPipelineBase.TextEncoderDtype"/>;
    /// outside any dispose scope, so the weights live as long as the pipeline), then builds the pipeline with
    /// <paramref name="create"/>; when that throws, the loaded models and scheduler are disposed.
    /// </summary>
    public static TPipeline Load<TPipeline>(string idOrPath, LoadOptions? options, string className, string[] acceptedClasses,
        Func<Loaded, TPipeline> create) where TPipeline : IIPAdapterPipeline
    {
        options ??= LoadOptions.Default;
        string folder = PipelinePaths.Resolve(idOrPath, options);
        var index = PipelineSteps.ReadPipelineIndex(folder, className, acceptedClasses, _ => StableDiffusionPipelineBase.RequiredComponents,
            options.Log ?? StableDiffusionPipelineBase.DefaultLog);
        PipelineVariant.RequireSomewhere(index, options.Variant);

        var tokenizer = CLIPTokenizer.FromPretrained(folder, "tokenizer", options);
        return PipelineSteps.DisposeOnFailure(loaded =>
        {
            var scheduler = loaded.Kept(SchedulerFactory.FromPretrained(folder, "scheduler", options));
            var textConfig = PipelineSteps.ReadTextConfig(folder, "text_encoder");
            var unetConfig = ConfigJson.Read<UNet2DConditionModelConfig>(Path.Combine(folder, "unet", UNet2DConditionModel.ConfigName));
            TokenizerFit.CheckComponents(tokenizer, textConfig, unetConfig, Path.Combine(folder, "text_encoder", "config.json"),
                Path.Combine(folder, "unet", UNet2DConditionModel.ConfigName));
            var text = loaded.Kept(CLIPTextModel.FromPretrained(folder, "text_encoder",
                PipelineVariant.For(options, index, "text_encoder") with { Dtype = StableDiffusionPipelineBase.TextEncoderDtype(options.Dtype) }));
            var unet = loaded.Kept(UNet2DConditionModel.FromPretrained(folder, "unet", PipelineVariant.For(options, index, "unet")));
            var vae = loaded.Kept(AutoencoderKL.FromPretrained(folder, "vae", PipelineVariant.For(options, index, "vae")));
            var (encoder, featureExtractor) = IPAdapterComponents.Load(folder, index, unet, options, loaded,
                options.Log ?? StableDiffusionPipelineBase.DefaultLog);
            return IPAdapterComponents.Attach(create(new Loaded(vae, text, tokenizer, unet, scheduler, index)), encoder, featureExtractor);
        });
    }
}
