namespace DiffusersSharp.Pipelines;

/// <summary>
/// diffusers' loader mixins that a pipeline class has (its class line in 0.25.1): what
/// <see cref="StableDiffusionPipelineBase.Loaders"/> answers, and what the base's loading members check before they change
/// anything. A pipeline whose diffusers class lacks a mixin refuses its members, since its <c>Generate</c> would not apply
/// what they load (a silent wrong answer).
/// </summary>
[Flags]
public enum LoaderMixins
{
    /// <summary>None of them (e.g. <c>StableDiffusionLatentUpscalePipeline(DiffusionPipeline, FromSingleFileMixin)</c>).</summary>
    None = 0,

    /// <summary><c>TextualInversionLoaderMixin</c>: <c>load_textual_inversion</c>.</summary>
    TextualInversion = 1,

    /// <summary><c>LoraLoaderMixin</c>: <c>load_lora_weights</c>, <c>fuse_lora</c>, <c>unfuse_lora</c>, <c>unload_lora_weights</c>, <c>set_adapters</c>.</summary>
    Lora = 2,

    /// <summary><c>IPAdapterMixin</c>: <c>load_ip_adapter</c>, <c>set_ip_adapter_scale</c>.</summary>
    IPAdapter = 4,

    /// <summary>All three (the text-to-image, image-to-image and inpainting pipelines).</summary>
    All = TextualInversion | Lora | IPAdapter,
}

/// <summary>The one check behind the Stable Diffusion and SDXL bases' <c>Loaders</c>: a member of a mixin the class lacks is refused.</summary>
internal static class LoaderMixinChecks
{
    /// <summary>
    /// Refuses <paramref name="member"/> (diffusers' <paramref name="diffusersMethod"/> of <paramref name="mixin"/>) when
    /// <paramref name="has"/>, the loader mixins of <paramref name="className"/>'s diffusers class, lacks the mixin.
    /// </summary>
    public static void Require(string className, LoaderMixins has, LoaderMixins mixin, string member, string diffusersMethod)
    {
        if ((has & mixin) == mixin) return;
        string mixinName = mixin switch
        {
            LoaderMixins.TextualInversion => "TextualInversionLoaderMixin",
            LoaderMixins.Lora => "LoraLoaderMixin",
            _ => "IPAdapterMixin",
        };
        throw new DiffusersException(
            $"{className}: {member} is not available: diffusers 0.25.1's {className} has no {diffusersMethod} (its class has no {mixinName})");
    }
}
