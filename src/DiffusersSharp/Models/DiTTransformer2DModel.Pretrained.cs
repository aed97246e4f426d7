using DiffusersSharp.Loading;

namespace DiffusersSharp.Models;

public sealed partial class DiTTransformer2DModel
{
    /// <summary>diffusers' class name in the model's <c>config.json</c> (<c>_class_name</c>).</summary>
    public const string DiffusersClassName = "Transformer2DModel";

    /// <summary>
    /// Loads a patch-input <c>Transformer2DModel</c> (e.g. the <c>transformer</c> subfolder of <c>facebook/DiT-XL-2-256</c>)
    /// from a model folder or Hub id (<see cref="PretrainedLocator"/>), or its <paramref name="subfolder"/>: config.json
    /// (whose <c>_class_name</c> must be Transformer2DModel) and <c>diffusion_pytorch_model[.variant].safetensors</c> / .bin,
    /// in the options' dtype and device, in eval mode.
    /// </summary>
    public static DiTTransformer2DModel FromPretrained(string idOrPath, string? subfolder = null, LoadOptions? options = null) =>
        ModuleScope.Run(() => ModelLoading.FromPretrained<Transformer2DModelConfig, DiTTransformer2DModel>(idOrPath, subfolder, options,
            (config, path) => new DiTTransformer2DModel(config, path), expectedClassName: DiffusersClassName));
}
