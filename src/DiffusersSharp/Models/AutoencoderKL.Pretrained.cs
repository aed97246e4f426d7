using DiffusersSharp.Loading;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

public sealed partial class AutoencoderKL
{
    /// <summary>The model's config file name in its folder (<c>config.json</c>).</summary>
    public const string ConfigName = ModelLoading.ConfigName;
    /// <summary>
    /// The weights' file name without extension (<c>diffusion_pytorch_model</c>; + <c>.safetensors</c>, <c>.bin</c>,
    /// a variant or shard suffix).
    /// </summary>
    public const string WeightsName = ModelLoading.WeightsName;

    /// <summary>
    /// Loads an AutoencoderKL from a model folder (<c>config.json</c> + weights) or a Hub id (the Hugging Face
    /// cache, downloading when allowed: <see cref="PretrainedLocator"/>), or from their <paramref name="subfolder"/> (usually "vae" of a
    /// pipeline). Weights: <c>diffusion_pytorch_model[.variant].safetensors</c>, else <c>.bin</c>, sharded or not;
    /// legacy attention names (<c>query</c>/<c>key</c>/<c>value</c>/<c>proj_attn</c>) are converted as diffusers does. The model is converted to
    /// <see cref="LoadOptions.Dtype"/> / moved to <see cref="LoadOptions.Device"/> before the weights are copied in, and put in
    /// eval mode. Its weights belong to no dispose scope (dispose the model).
    /// </summary>
    public static AutoencoderKL FromPretrained(string idOrPath, string? subfolder = null, LoadOptions? options = null) =>
        ModuleScope.Run(() => ModelLoading.FromPretrained<AutoencoderKLConfig, AutoencoderKL>(idOrPath, subfolder, options, FromConfig,
            expectedClassName: nameof(AutoencoderKL)));

    /// <summary>
    /// Writes <c>config.json</c> and <c>diffusion_pytorch_model[.variant].safetensors</c> (metadata format "pt")
    /// into <paramref name="directory"/> atomically; diffusers' <c>AutoencoderKL.from_pretrained</c> reads them back.
    /// </summary>
    public void SavePretrained(string directory, string? variant = null) =>
        ModelLoading.SavePretrained(this, Config, directory, variant: variant);
}
