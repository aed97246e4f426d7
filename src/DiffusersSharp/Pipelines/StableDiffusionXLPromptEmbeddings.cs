using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// What the SDXL <c>EncodePrompt</c> returns (diffusers' <c>(prompt_embeds, negative_prompt_embeds, pooled_prompt_embeds,
/// negative_pooled_prompt_embeds)</c>): the concatenated penultimate hidden states [batch · num_images_per_prompt, 77,
/// hidden₁ + hidden₂] and the pooled <c>text_embeds</c> of the second encoder [batch · num_images_per_prompt,
/// projection_dim]; the negative ones only with classifier-free guidance. Owns the tensors: dispose it.
/// </summary>
public sealed class StableDiffusionXLPromptEmbeddings(Tensor promptEmbeds, Tensor? negativePromptEmbeds,
    Tensor pooledPromptEmbeds, Tensor? negativePooledPromptEmbeds) : IDisposable
{
    /// <summary>The prompt's hidden states (both encoders, concatenated on the feature axis).</summary>
    public Tensor PromptEmbeds { get; } = promptEmbeds;

    /// <summary>The negative prompt's hidden states (zeros with force_zeros_for_empty_prompt and no negative prompt).</summary>
    public Tensor? NegativePromptEmbeds { get; } = negativePromptEmbeds;

    /// <summary>The prompt's pooled embedding (<c>text_encoder_2</c>'s <c>text_embeds</c>).</summary>
    public Tensor PooledPromptEmbeds { get; } = pooledPromptEmbeds;

    /// <summary>The negative prompt's pooled embedding.</summary>
    public Tensor? NegativePooledPromptEmbeds { get; } = negativePooledPromptEmbeds;

    /// <summary>Frees the four tensors.</summary>
    public void Dispose()
    {
        PromptEmbeds.Dispose();
        NegativePromptEmbeds?.Dispose();
        PooledPromptEmbeds.Dispose();
        NegativePooledPromptEmbeds?.Dispose();
    }
}
