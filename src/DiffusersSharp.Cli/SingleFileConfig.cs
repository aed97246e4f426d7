using DiffusersSharp.Loading;
using DiffusersSharp.Pipelines;

namespace DiffusersSharp.Cli;

/// <summary>
/// The <c>--config</c> of <c>convert</c> and <c>generate</c> for a single-file checkpoint: an original YAML
/// (<c>.yaml</c>/<c>.yml</c>, diffusers' <c>original_config_file</c>) or a diffusers folder / Hub id whose configs,
/// tokenizers and scheduler to use (diffusers' <c>config</c>).
/// </summary>
internal static class SingleFileConfig
{
    /// <summary>The option's description (shared by both commands).</summary>
    public const string Description = "Original YAML config (.yaml), or a diffusers folder / Hub id whose configs, tokenizers and scheduler to use";

    /// <summary><paramref name="options"/> with <paramref name="config"/> set as the YAML or the folder it names; unchanged for null.</summary>
    public static SingleFileOptions Apply(SingleFileOptions options, string? config) =>
        config is null ? options
        : IsYaml(config) ? options with { OriginalConfigFile = config }
        : options with { Config = config };

    /// <summary>
    /// How <c>generate</c> reads <paramref name="model"/> when it is a single-file checkpoint (the load's dtype and log, and
    /// <paramref name="config"/>); null for a pipeline folder, which <c>FromPretrained</c> reads. A <paramref name="config"/>
    /// Hub id is fetched as the run's other ids are: into its cache (<see cref="LoadOptions.CacheDir"/>, <c>--cache-dir</c>),
    /// at main (<c>--revision</c> is the model's).
    /// </summary>
    public static SingleFileOptions? ForGenerate(string model, LoadOptions options, string? config) =>
        File.Exists(model)
            ? Apply(new SingleFileOptions { Log = options.Log, Dtype = options.Dtype },
                config is null || IsYaml(config) ? config : PretrainedLocator.Resolve(config, options: LoadOptions.Default with { CacheDir = options.CacheDir }))
            : null;

    private static bool IsYaml(string config) =>
        config.EndsWith(".yaml", StringComparison.OrdinalIgnoreCase) || config.EndsWith(".yml", StringComparison.OrdinalIgnoreCase);
}
