using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Text;
using static TorchSharp.torch;

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
    /// named), logs the optional components that are present but not run, and loads the rest (outside any dispose
    /// scope, so the weights live as long as the pipeline).
    /// </summary>
    public static Loaded Load(string idOrPath, string? variant, ScalarType? dtype, Action<string>? log,
        string className, params string[] acceptedClasses)
    {
        log ??= StableDiffusionPipelineBase.DefaultLog;
        string folder = PretrainedLocator.Resolve(idOrPath, variant: variant);
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

        var tokenizer = CLIPTokenizer.FromPretrained(folder, "tokenizer");
        var scheduler = SchedulerFactory.FromPretrained(Path.Combine(folder, "scheduler"), subfolder: null);
        var textConfig = ReadTextConfig(folder);
        var unetConfig = ConfigJson.Read<UNet2DConditionModelConfig>(Path.Combine(folder, "unet", UNet2DConditionModel.ConfigName));
        TokenizerFit.CheckComponents(tokenizer, textConfig, unetConfig, Path.Combine(folder, "text_encoder", "config.json"),
            Path.Combine(folder, "unet", UNet2DConditionModel.ConfigName));

        CLIPTextModel? text = null;
        UNet2DConditionModel? unet = null;
        try
        {
            text = CLIPTextModel.FromPretrained(folder, "text_encoder", dtype, null, variant);
            unet = UNet2DConditionModel.FromPretrained(folder, "unet", variant, dtype);
            var vae = AutoencoderKL.FromPretrained(folder, "vae", variant, dtype);
            return new Loaded(vae, text, tokenizer, unet, scheduler, index);
        }
        catch
        {
            text?.Dispose();
            unet?.Dispose();
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
