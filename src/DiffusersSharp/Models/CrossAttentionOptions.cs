namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>cross_attention_kwargs</c>: per-call options of the attention (and LoRA-carrying linear) layers,
/// handed down through <see cref="BlockContext.CrossAttention"/>.
/// </summary>
public sealed record CrossAttentionOptions
{
    /// <summary>No options: every value at diffusers' default.</summary>
    public static readonly CrossAttentionOptions Default = new();

    /// <summary>diffusers' <c>cross_attention_kwargs["scale"]</c>: the weight of LoRA updates (1.0 = as trained).</summary>
    public double Scale { get; init; } = 1.0;
}
