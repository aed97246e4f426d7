using static TorchSharp.torch;

namespace DiffusersSharp.Models.Lora;

/// <summary>
/// One model a LoRA file may patch: the component name its keys use (<c>unet</c>, <c>text_encoder</c>,
/// <c>text_encoder_2</c>), the model, the <see cref="LoraScale"/> its layers read, and for a UNet its layers_per_block
/// (to map kohya SGM names). Any UNet2DConditionModel and CLIP text encoder works, so every pipeline can list its own.
/// </summary>
public sealed record LoraTarget(string Component, nn.Module Model, LoraScale Scale, int? LayersPerBlock = null)
{
    /// <summary>A UNet under the component name <c>unet</c>.</summary>
    public static LoraTarget ForUnet(UNet2DConditionModel unet) =>
        new("unet", unet, unet.LoraScale, unet.Config.LayersPerBlock.Length > 0 ? unet.Config.LayersPerBlock[0] : 2);

    /// <summary>A CLIP text encoder under <paramref name="component"/> (<c>text_encoder</c> or <c>text_encoder_2</c>).</summary>
    public static LoraTarget ForTextEncoder(string component, CLIPTextModel encoder) => new(component, encoder, encoder.LoraScale);

    /// <summary>A CLIP text encoder with projection (SDXL's second) under <paramref name="component"/>.</summary>
    public static LoraTarget ForTextEncoder(string component, CLIPTextModelWithProjection encoder) => new(component, encoder, encoder.LoraScale);

    /// <summary>True for the UNet (0.25.1 replaces LoRAs per layer there, but clears a whole text encoder first).</summary>
    public bool IsUnet => Component == "unet";
}
