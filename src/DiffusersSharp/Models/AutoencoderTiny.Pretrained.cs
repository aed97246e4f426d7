using DiffusersSharp.Loading;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

public sealed partial class AutoencoderTiny
{
    public const string ConfigName = ModelLoading.ConfigName;
    public const string WeightsName = ModelLoading.WeightsName;

    /// <summary>
    /// Loads an AutoencoderTiny from a model folder (<c>config.json</c> + weights) or a Hub id such as
    /// <c>madebyollin/taesd</c> / <c>madebyollin/taesdxl</c> (the Hugging Face cache, downloading when allowed:
    /// <see cref="PretrainedLocator"/>), or from their <paramref name="subfolder"/>. Weights:
    /// <c>diffusion_pytorch_model[.variant].safetensors</c>, else <c>.bin</c>, sharded or not. The model is converted to
    /// <paramref name="dtype"/> / moved to <paramref name="device"/> before the weights are copied in, and put in eval
    /// mode. Its weights belong to no dispose scope (dispose the model).
    /// </summary>
    public static AutoencoderTiny FromPretrained(string idOrPath, string? subfolder = null, string? variant = null,
        ScalarType? dtype = null, Device? device = null, string? revision = null, string? cacheDir = null)
    {
        return ModuleScope.Run(() => ModelLoading.FromPretrained<AutoencoderTinyConfig, AutoencoderTiny>(idOrPath, FromConfig, subfolder,
            variant, dtype, device, revision, cacheDir, WeightsName, expectedClassName: nameof(AutoencoderTiny)));
    }

    /// <summary>
    /// Writes <c>config.json</c> and <c>diffusion_pytorch_model[.variant].safetensors</c> (metadata format "pt")
    /// into <paramref name="directory"/> atomically; diffusers' <c>AutoencoderTiny.from_pretrained</c> reads them back.
    /// </summary>
    public void SavePretrained(string directory, string? variant = null) =>
        ModelLoading.SavePretrained(this, Config, directory, WeightsName, variant);
}
