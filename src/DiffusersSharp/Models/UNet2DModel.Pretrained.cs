using DiffusersSharp.Loading;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

public sealed partial class UNet2DModel
{
    /// <summary>The model's config file name in its folder (<c>config.json</c>).</summary>
    public const string ConfigName = "config.json";
    /// <summary>
    /// The weights' file name without extension (<c>diffusion_pytorch_model</c>; + <c>.safetensors</c>, <c>.bin</c>,
    /// a variant or shard suffix).
    /// </summary>
    public const string WeightsName = "diffusion_pytorch_model";

    /// <summary>
    /// Loads a UNet2DModel from a model folder (<c>config.json</c> + weights) or a Hub id in the local Hugging
    /// Face cache (<see cref="PretrainedLocator"/>), or from their <paramref name="subfolder"/> (e.g. "unet" of
    /// a pipeline). Weights: <c>diffusion_pytorch_model[.variant].safetensors</c>, else <c>.bin</c>, sharded or
    /// not (<see cref="WeightLoader.ReadFolder"/>); legacy attention names are converted. The model is
    /// converted to the options' dtype / moved to their device when given, and put in eval mode.
    /// </summary>
    public static UNet2DModel FromPretrained(string idOrPath, string? subfolder = null, LoadOptions? options = null) =>
        ModuleScope.Run(() => ModelLoading.FromPretrained<UNet2DModelConfig, UNet2DModel>(idOrPath, subfolder, options, FromConfig,
            expectedClassName: nameof(UNet2DModel),
            prepareWeights: (model, weights) => model.MergeStateDictAliases(weights)));

    /// <summary>
    /// Folds diffusers' duplicate state-dict names into the one parameter this model registers: the fourier
    /// projection's <c>time_proj.W</c> (the same tensor as <c>time_proj.weight</c>). A file with only
    /// <c>W</c> is renamed; with both, <c>W</c> is dropped. Call before <see cref="WeightLoader.LoadInto"/>.
    /// </summary>
    public void MergeStateDictAliases(IDictionary<string, Tensor> weights)
    {
        if (time_proj is not GaussianFourierProjection { WAlias: true }) return;
        if (!weights.Remove("time_proj.W", out var w)) return;
        if (weights.ContainsKey("time_proj.weight")) w.Dispose();
        else weights["time_proj.weight"] = w;
    }

    /// <summary>
    /// Writes <c>config.json</c> (<c>_diffusers_version</c> = <see cref="ModelLoading.DiffusersVersion"/>) and
    /// <c>diffusion_pytorch_model.safetensors</c> (metadata format "pt") into <paramref name="directory"/>, which
    /// diffusers' <c>UNet2DModel.from_pretrained</c> reads back.
    /// </summary>
    public void SavePretrained(string directory)
    {
        Directory.CreateDirectory(directory);
        // diffusers' to_json_string stamps the writing library's version, whatever the loaded config said.
        var config = Config with { ClassName = nameof(UNet2DModel), DiffusersVersion = ModelLoading.DiffusersVersion };
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (name, p) in named_parameters()) tensors[name] = p;
        foreach (var (name, b) in named_buffers()) tensors.TryAdd(name, b);
        if (time_proj is GaussianFourierProjection { WAlias: true } gf)
            tensors["time_proj.W"] = gf.Weight; // as torch's state_dict(): the shared parameter under both names
        SafetensorsFile.Save(Path.Combine(directory, WeightsName + ".safetensors"), tensors,
            new Dictionary<string, string> { ["format"] = "pt" });
        ConfigJson.Write(config, Path.Combine(directory, ConfigName));
    }
}
