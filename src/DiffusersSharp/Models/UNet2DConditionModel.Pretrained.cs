using DiffusersSharp.Loading;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

public sealed partial class UNet2DConditionModel
{
    /// <summary>The model's config file name in its folder (<c>config.json</c>).</summary>
    public const string ConfigName = ModelLoading.ConfigName;
    /// <summary>
    /// The weights' file name without extension (<c>diffusion_pytorch_model</c>; + <c>.safetensors</c>, <c>.bin</c>,
    /// a variant or shard suffix).
    /// </summary>
    public const string WeightsName = ModelLoading.WeightsName;

    /// <summary>
    /// Loads a UNet2DConditionModel from a model folder (<c>config.json</c> + weights) or a Hub id (the Hugging Face
    /// cache, downloading when allowed: <see cref="PretrainedLocator"/>), or from their <paramref name="subfolder"/> (usually "unet" of a
    /// pipeline). Weights: <c>diffusion_pytorch_model[.variant].safetensors</c>, else <c>.bin</c>, sharded or not;
    /// legacy attention names are converted as diffusers does. The model is converted to
    /// <see cref="LoadOptions.Dtype"/> / moved to <see cref="LoadOptions.Device"/> before the weights are copied in, and put in
    /// eval mode. Its weights belong to no dispose scope (dispose the model).
    /// </summary>
    public static UNet2DConditionModel FromPretrained(string idOrPath, string? subfolder = null, LoadOptions? options = null) =>
        ModuleScope.Run(() => ModelLoading.FromPretrained<UNet2DConditionModelConfig, UNet2DConditionModel>(idOrPath, subfolder, options, FromConfig,
            expectedClassName: nameof(UNet2DConditionModel)));

    /// <summary>
    /// Writes <c>config.json</c> and <c>diffusion_pytorch_model[.variant].safetensors</c> (metadata format "pt")
    /// into <paramref name="directory"/> atomically; diffusers' <c>UNet2DConditionModel.from_pretrained</c> reads them back.
    /// </summary>
    public void SavePretrained(string directory, string? variant = null) =>
        ModelLoading.SavePretrained(this, Config, directory, variant: variant);
}
