using DiffusersSharp.Models.Lora;

namespace DiffusersSharp.Models;

public sealed partial class UNet2DConditionModel
{
    /// <summary>The scale its LoRA layers read: set from <see cref="CrossAttentionOptions.Scale"/> at the start of every <see cref="Forward"/> (diffusers' <c>cross_attention_kwargs["scale"]</c>, 1.0 when not given).</summary>
    public LoraScale LoraScale { get; } = new();
}
