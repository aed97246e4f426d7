using DiffusersSharp.Loading;

namespace DiffusersSharp.Pipelines;

/// <summary>Finding a pipeline folder and its model_index.json, with errors that say what to do.</summary>
public static class PipelinePaths
{
    /// <summary>
    /// A local folder as is; otherwise a Hub id from the local Hugging Face cache, downloaded when it is not there and
    /// <paramref name="options"/> allow it (<see cref="PretrainedLocator"/>).
    /// </summary>
    public static string Resolve(string idOrPath, LoadOptions? options = null) => PretrainedLocator.Resolve(idOrPath, null, options);

    /// <summary>The folder's model_index.json, or an error naming the folder.</summary>
    public static string ModelIndex(string folder)
    {
        string index = Path.Combine(folder, "model_index.json");
        if (!File.Exists(index))
            throw new ConfigException($"{folder} is not a diffusers pipeline folder: {index} not found") { FilePath = index };
        return index;
    }

    /// <summary>A component subfolder (<c>unet</c>, <c>scheduler</c>, …), or an error naming it.</summary>
    public static string Component(string folder, string name)
    {
        string sub = Path.Combine(folder, name);
        if (!Directory.Exists(sub))
            throw new ConfigException($"{folder}: the pipeline's '{name}' folder is missing ({sub})") { FilePath = sub };
        return sub;
    }
}
