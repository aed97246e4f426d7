using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// What <c>EncodePrompt</c> returns (diffusers' <c>(prompt_embeds, negative_prompt_embeds)</c>): both
/// [batch · num_images_per_prompt, 77, hidden]; the negative ones only with classifier-free guidance.
/// Owns the tensors: dispose it.
/// </summary>
public sealed class PromptEmbeddings(Tensor promptEmbeds, Tensor? negativePromptEmbeds) : IDisposable
{
    /// <summary>The prompt embeddings [batch · num_images_per_prompt, 77, hidden].</summary>
    public Tensor PromptEmbeds { get; } = promptEmbeds;
    /// <summary>The negative prompt embeddings, same shape; null without classifier-free guidance.</summary>
    public Tensor? NegativePromptEmbeds { get; } = negativePromptEmbeds;

    /// <summary>Disposes both tensors.</summary>
    public void Dispose()
    {
        PromptEmbeds.Dispose();
        NegativePromptEmbeds?.Dispose();
    }
}
