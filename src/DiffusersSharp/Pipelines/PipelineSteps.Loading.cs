using DiffusersSharp.Loading;
using DiffusersSharp.Models;

namespace DiffusersSharp.Pipelines;

internal static partial class PipelineSteps
{
    /// <summary>
    /// The first steps of diffusers' <c>from_pretrained</c> for the Stable Diffusion and SDXL loaders: reads
    /// <paramref name="folder"/>'s model_index.json, checks its class is one of <paramref name="acceptedClasses"/>, that
    /// each of <paramref name="required"/> (given the index) is listed and has its folder (a missing one is named), and logs
    /// the optional components that are present but not run.
    /// </summary>
    internal static PipelineIndex ReadPipelineIndex(string folder, string className, string[] acceptedClasses,
        Func<PipelineIndex, IEnumerable<string>> required, Action<string> log)
    {
        string indexPath = PipelinePaths.ModelIndex(folder);
        var index = PipelineIndex.Read(indexPath);
        if (!acceptedClasses.Contains(index.ClassName))
            throw new ConfigException(
                $"{indexPath}: _class_name is \"{index.ClassName}\", but {className}.FromPretrained needs a {string.Join(" or ", acceptedClasses)} folder")
            { FilePath = indexPath, Key = "_class_name" };
        foreach (var name in required(index))
        {
            index.Require(name);
            string sub = Path.Combine(folder, name);
            if (!Directory.Exists(sub))
                throw new ConfigException($"{folder}: the pipeline's '{name}' component folder is missing ({sub}), though {indexPath} lists it")
                { FilePath = sub, Key = name };
        }
        foreach (var name in StableDiffusionPipelineBase.NotRunComponents)
            if (index.Component(name) is { } c && !(name == "feature_extractor" && IPAdapterComponents.LoadsFeatureExtractor(folder, index)))
                log($"{indexPath}: the '{name}' component ({c.Library}.{c.ClassName}) is not loaded or run by DiffusersSharp");
        return index;
    }

    /// <summary>A text encoder's config.json (in <paramref name="sub"/>), range-checked.</summary>
    internal static CLIPTextConfig ReadTextConfig(string folder, string sub)
    {
        string path = Path.Combine(folder, sub, "config.json");
        var config = ConfigJson.Read<CLIPTextConfig>(path);
        config.Validate(path);
        return config;
    }

    /// <summary>
    /// Runs <paramref name="load"/>, which loads models and registers each with the list it is given; when it throws, the
    /// registered models are disposed (in load order) before the exception goes on.
    /// </summary>
    internal static T DisposeOnFailure<T>(Func<List<IDisposable>, T> load)
    {
        var loaded = new List<IDisposable>();
        try
        {
            return load(loaded);
        }
        catch
        {
            foreach (var model in loaded) model.Dispose();
            throw;
        }
    }

    /// <summary>Registers a just-loaded <paramref name="model"/> in <paramref name="loaded"/> and returns it.</summary>
    internal static TModel Kept<TModel>(this List<IDisposable> loaded, TModel model) where TModel : IDisposable
    {
        loaded.Add(model);
        return model;
    }
}
