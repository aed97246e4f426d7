namespace DiffusersSharp.Models.Lora;

/// <summary>
/// The LoRA strength a model's LoRA-compatible layers read while it runs: diffusers' <c>cross_attention_kwargs["scale"]</c>
/// for a UNet (set by <see cref="UNet2DConditionModel.Forward"/> from its <see cref="CrossAttentionOptions"/> at the start
/// of every call) and <c>PatchedLoraProjection.lora_scale</c> for a text encoder (set by the pipeline's prompt encoding and
/// kept until set again, as in diffusers 0.25.1). One value per model: a model runs one forward pass at a time.
/// </summary>
public sealed class LoraScale
{
    /// <summary>The current scale (1.0 = the LoRA as trained, 0 = off).</summary>
    public double Value { get; set; } = 1.0;
}
