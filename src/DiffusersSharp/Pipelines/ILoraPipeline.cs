using DiffusersSharp.Models.Lora;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// A pipeline that takes LoRAs at run time (diffusers' <c>LoraLoaderMixin</c> / <c>StableDiffusionXLLoraLoaderMixin</c>):
/// the Stable Diffusion and SDXL pipelines. Front ends (the CLI, the generation service) use it to apply LoRAs without
/// knowing which family the model is.
/// </summary>
public interface ILoraPipeline
{
    /// <summary>The models a LoRA file may patch, by component name (<c>unet</c>, <c>text_encoder</c>, <c>text_encoder_2</c>).</summary>
    IReadOnlyList<LoraTarget> LoraTargets { get; }

    /// <summary>diffusers' <c>load_lora_weights</c> with all options.</summary>
    LoraLoadResult LoadLoraWeights(string path, LoraLoadOptions options);

    /// <summary>diffusers' <c>fuse_lora(lora_scale)</c>; returns the number of layers fused.</summary>
    int FuseLora(double loraScale = 1.0, bool fuseUnet = true, bool fuseTextEncoder = true);

    /// <summary>diffusers' <c>unfuse_lora()</c>; returns the number of layers restored.</summary>
    int UnfuseLora(bool unfuseUnet = true, bool unfuseTextEncoder = true);

    /// <summary>diffusers' <c>unload_lora_weights()</c>: every LoRA removed.</summary>
    void UnloadLoraWeights();

    /// <summary>diffusers' <c>set_adapters(names, weights)</c>: only these named adapters apply, each with its weight.</summary>
    void SetAdapters(IReadOnlyList<string> adapterNames, IReadOnlyList<double>? weights = null);

    /// <summary>The names of the loaded adapters.</summary>
    IReadOnlyList<string> LoraAdapterNames { get; }
}
