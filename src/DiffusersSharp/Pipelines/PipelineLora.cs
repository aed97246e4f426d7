using DiffusersSharp.Models.Lora;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// The LoRA members every text-to-image pipeline base shares (diffusers' <c>LoraLoaderMixin</c> /
/// <c>StableDiffusionXLLoraLoaderMixin</c>): each pipeline lists its <see cref="LoraTarget"/>s and forwards here, so the
/// SD and SDXL bases behave the same way.
/// </summary>
internal static class PipelineLora
{
    /// <summary>Loads a LoRA file into <paramref name="targets"/>; notes go to <paramref name="log"/> unless the options set one.</summary>
    public static LoraLoadResult Load(string path, IReadOnlyList<LoraTarget> targets, LoraLoadOptions options, Action<string>? log) =>
        LoraLoader.Load(path, targets, options.Log is null ? options with { Log = log } : options);

    /// <summary>Fuses the active LoRAs of the UNet and/or the text encoders; returns the number of layers fused.</summary>
    public static int Fuse(IReadOnlyList<LoraTarget> targets, double loraScale, bool unet, bool textEncoder) =>
        LoraLoader.Fuse(Select(targets, unet, textEncoder), loraScale);

    /// <summary>Restores the weights from before fusing, in the UNet and/or the text encoders.</summary>
    public static int Unfuse(IReadOnlyList<LoraTarget> targets, bool unet, bool textEncoder) =>
        LoraLoader.Unfuse(Select(targets, unet, textEncoder));

    private static IEnumerable<LoraTarget> Select(IReadOnlyList<LoraTarget> targets, bool unet, bool textEncoder) =>
        targets.Where(t => t.IsUnet ? unet : textEncoder);
}
