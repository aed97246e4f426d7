using DiffusersSharp.Loading;

namespace DiffusersSharp.Models;

public sealed partial class T2IAdapter
{
    /// <summary>
    /// Loads a T2IAdapter from a model folder (<c>config.json</c> + <c>diffusion_pytorch_model[.variant].safetensors</c> or
    /// <c>.bin</c>) or a Hub id such as <c>TencentARC/t2iadapter_canny_sd15v2</c> or
    /// <c>TencentARC/t2i-adapter-canny-sdxl-1.0</c>, or from its <paramref name="subfolder"/>, with
    /// <paramref name="options"/> (variant, dtype, device, revision, cache and Hub settings). Every weight must be in the
    /// file (errors name the file, the key and both shapes); the model is in eval mode and its weights belong to no
    /// dispose scope (dispose the model).
    /// </summary>
    public static T2IAdapter FromPretrained(string idOrPath, string? subfolder = null, LoadOptions? options = null) =>
        ModuleScope.Run(() => ModelLoading.FromPretrained<T2IAdapterConfig, T2IAdapter>(idOrPath, subfolder, options,
            (config, path) => FromConfig(config, path), expectedClassName: nameof(T2IAdapter)));

    /// <summary>Writes <c>config.json</c> and <c>diffusion_pytorch_model[.variant].safetensors</c> into <paramref name="directory"/> atomically.</summary>
    public void SavePretrained(string directory, string? variant = null) =>
        ModelLoading.SavePretrained(this, Config, directory, variant: variant);
}
