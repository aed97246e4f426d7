using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// What <c>EncodePrompt</c> returns (diffusers' <c>(prompt_embeds, negative_prompt_embeds)</c>): both
/// [batch · num_images_per_prompt, 77, hidden]; the negative ones only with classifier-free guidance.
/// Owns the tensors: dispose it.
/// </summary>
public sealed class PromptEmbeddings(Tensor promptEmbeds, Tensor? negativePromptEmbeds) : IDisposable
{
    public Tensor PromptEmbeds { get; } = promptEmbeds;
    public Tensor? NegativePromptEmbeds { get; } = negativePromptEmbeds;

    public void Dispose()
    {
        PromptEmbeds.Dispose();
        NegativePromptEmbeds?.Dispose();
    }
}
