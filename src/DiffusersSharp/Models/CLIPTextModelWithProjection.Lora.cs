using DiffusersSharp.Models.Lora;

namespace DiffusersSharp.Models;

public sealed partial class CLIPTextModelWithProjection
{
    /// <summary>The scale its LoRA layers read (diffusers' <c>PatchedLoraProjection.lora_scale</c>): set by the pipelines' prompt encoding from the call's <c>cross_attention_kwargs["scale"]</c> and kept until set again, as in diffusers 0.25.1.</summary>
    public LoraScale LoraScale { get; } = new();
}
