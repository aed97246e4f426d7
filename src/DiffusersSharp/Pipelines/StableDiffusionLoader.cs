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
    /// text encoder in <see cref="StableDiffusionPipelineBase.TextEncoderDtype"/>;
    /// outside any dispose scope, so the weights live as long as the pipeline), then builds the pipeline with
    /// <paramref name="create"/>; when that throws, the loaded models are disposed.
    /// </summary>
    public static TPipeline Load<TPipeline>(string idOrPath, LoadOptions? options, string className, string[] acceptedClasses,
        Func<Loaded, TPipeline> create)
    {
        options ??= LoadOptions.Default;
        var log = options.Log ?? StableDiffusionPipelineBase.DefaultLog;
        string folder = PipelinePaths.Resolve(idOrPath, options);
        string indexPath = PipelinePaths.ModelIndex(folder);
        var index = PipelineIndex.Read(indexPath);
        if (!acceptedClasses.Contains(index.ClassName))
            throw new ConfigException(
                $"{indexPath}: _class_name is \"{index.ClassName}\", but {className}.FromPretrained needs a {string.Join(" or ", acceptedClasses)} folder")
            { FilePath = indexPath, Key = "_class_name" };
        foreach (var name in StableDiffusionPipelineBase.RequiredComponents)
        {
            index.Require(name);
            string sub = Path.Combine(folder, name);
            if (!Directory.Exists(sub))
                throw new ConfigException($"{folder}: the pipeline's '{name}' component folder is missing ({sub}), though {indexPath} lists it")
                { FilePath = sub, Key = name };
        }
        foreach (var name in StableDiffusionPipelineBase.NotRunComponents)
            if (index.Component(name) is { } c)
                log($"{indexPath}: the '{name}' component ({c.Library}.{c.ClassName}) is not loaded or run by DiffusersSharp");

        var tokenizer = CLIPTokenizer.FromPretrained(folder, "tokenizer", options);
        var scheduler = SchedulerFactory.FromPretrained(folder, "scheduler", options);
        var textConfig = ReadTextConfig(folder);
        var unetConfig = ConfigJson.Read<UNet2DConditionModelConfig>(Path.Combine(folder, "unet", UNet2DConditionModel.ConfigName));
        TokenizerFit.CheckComponents(tokenizer, textConfig, unetConfig, Path.Combine(folder, "text_encoder", "config.json"),
            Path.Combine(folder, "unet", UNet2DConditionModel.ConfigName));

        CLIPTextModel? text = null;
        UNet2DConditionModel? unet = null;
        AutoencoderKL? vae = null;
        try
        {
            text = CLIPTextModel.FromPretrained(folder, "text_encoder",
                options with { Dtype = StableDiffusionPipelineBase.TextEncoderDtype(options.Dtype) });
            unet = UNet2DConditionModel.FromPretrained(folder, "unet", options);
            vae = AutoencoderKL.FromPretrained(folder, "vae", options);
            return create(new Loaded(vae, text, tokenizer, unet, scheduler, index));
        }
        catch
        {
            text?.Dispose();
            unet?.Dispose();
            vae?.Dispose();
            throw;
        }
    }

    private static CLIPTextConfig ReadTextConfig(string folder)
    {
        string path = Path.Combine(folder, "text_encoder", "config.json");
        var config = ConfigJson.Read<CLIPTextConfig>(path);
        config.Validate(path);
        return config;
    }
}
