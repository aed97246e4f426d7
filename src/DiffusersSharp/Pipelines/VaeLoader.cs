using DiffusersSharp.Loading;
using DiffusersSharp.Models;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// Loads a VAE of whichever kind a folder holds, for <c>pipe.Vae = …</c>: the class is read from <c>config.json</c>'s
/// <c>_class_name</c> (<c>AutoencoderKL</c>, <c>AutoencoderTiny</c>; others can be registered). A pipeline folder is
/// read from its <c>vae</c> subfolder.
/// </summary>
public static class VaeLoader
{
    /// <summary>The tiny VAE for Stable Diffusion 1.x / 2.x latents (TAESD).</summary>
    public const string TaesdId = "madebyollin/taesd";

    /// <summary>The tiny VAE for SDXL latents (TAESD's architecture, its own weights).</summary>
    public const string TaesdXlId = "madebyollin/taesdxl";

    /// <summary>
    /// The tiny VAE (TAESD) distilled for <paramref name="space"/>: <see cref="TaesdId"/> for Stable Diffusion 1.x/2.x,
    /// <see cref="TaesdXlId"/> for SDXL. What <c>--vae tiny</c> and the previews' default load for a pipeline
    /// (<see cref="ILatentDiffusionPipeline.LatentSpace"/>). The two share one architecture and config, so nothing in a
    /// folder tells them apart: the pipeline's latent space decides.
    /// </summary>
    public static string TaesdIdFor(LatentSpace space) => space switch
    {
        LatentSpace.StableDiffusion => TaesdId,
        LatentSpace.StableDiffusionXL => TaesdXlId,
        _ => throw new ArgumentOutOfRangeException(nameof(space), space, "not a latent space"),
    };

    private static readonly ClassRegistry<Func<string, LoadOptions, IVae>> Registry = new()
    {
        [nameof(AutoencoderKL)] = (folder, options) => AutoencoderKL.FromPretrained(folder, null, options),
        [nameof(AutoencoderTiny)] = (folder, options) => AutoencoderTiny.FromPretrained(folder, null, options),
    };

    /// <summary>The VAE classes <see cref="FromPretrained"/> can build, sorted.</summary>
    public static IReadOnlyList<string> KnownClasses => Registry.KnownClasses;

    /// <summary>Makes another VAE class loadable by <see cref="FromPretrained"/>.</summary>
    public static void Register(string className, Func<string, LoadOptions, IVae> fromPretrained) =>
        Registry.Register(className, fromPretrained);

    /// <summary>
    /// Loads the VAE in <paramref name="idOrPath"/> (a model folder, a pipeline folder with a <c>vae</c> subfolder, or a Hub
    /// id), building the class its config names. An unknown class is a <see cref="ConfigException"/> naming the file.
    /// </summary>
    public static IVae FromPretrained(string idOrPath, LoadOptions? options = null)
    {
        options ??= LoadOptions.Default;
        string folder = PretrainedLocator.Resolve(idOrPath, null, options);
        if (!File.Exists(Path.Combine(folder, ModelLoading.ConfigName)) && Directory.Exists(Path.Combine(folder, "vae")))
            folder = Path.Combine(folder, "vae");
        string configPath = Path.Combine(folder, ModelLoading.ConfigName);
        if (!File.Exists(configPath))
            throw new ConfigException($"{folder}: no {ModelLoading.ConfigName} (and no vae/ subfolder): not a VAE folder") { FilePath = configPath };
        var config = ConfigJson.Read<AnyConfig>(configPath);
        string className = config.ClassName ?? throw new ConfigException(
            $"{configPath}: config key '_class_name' is missing: cannot tell which VAE class it is ({string.Join(", ", KnownClasses)})")
        { FilePath = configPath, Key = "_class_name" };
        var factory = Registry.Find(className);
        if (factory is null)
            throw new ConfigException($"{configPath}: config key '_class_name' is '{className}', not a VAE class DiffusersSharp knows ({string.Join(", ", KnownClasses)})")
            { FilePath = configPath, Key = "_class_name" };
        return factory(folder, options);
    }

    /// <summary>Any config, read only for its <c>_class_name</c> (every other key lands in Extra).</summary>
    private sealed record AnyConfig : DiffusersConfig;
}
