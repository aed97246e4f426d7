using DiffusersSharp.Loading;

namespace DiffusersSharp.Models;

public sealed partial class VQModel
{
    /// <summary>
    /// Loads a VQModel from a model folder (<c>config.json</c> + weights) or a Hub id (the Hugging Face cache, downloading
    /// when allowed: <see cref="PretrainedLocator"/>), or from their <paramref name="subfolder"/> (usually "vqvae" of a
    /// latent diffusion pipeline), as <see cref="AutoencoderKL.FromPretrained"/>: safetensors or <c>.bin</c>, variants and
    /// shards, legacy attention names converted, every weight required; in the options' dtype and device, in eval mode.
    /// </summary>
    public static VQModel FromPretrained(string idOrPath, string? subfolder = null, LoadOptions? options = null) =>
        ModuleScope.Run(() => ModelLoading.FromPretrained<VQModelConfig, VQModel>(idOrPath, subfolder, options, FromConfig,
            expectedClassName: nameof(VQModel)));

    /// <summary>
    /// Writes <c>config.json</c> and <c>diffusion_pytorch_model[.variant].safetensors</c> (metadata format "pt") into
    /// <paramref name="directory"/> atomically; diffusers' <c>VQModel.from_pretrained</c> reads them back.
    /// </summary>
    public void SavePretrained(string directory, string? variant = null) =>
        ModelLoading.SavePretrained(this, Config, directory, variant: variant);
}
