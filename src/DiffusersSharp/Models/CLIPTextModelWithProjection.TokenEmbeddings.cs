using static TorchSharp.torch;

namespace DiffusersSharp.Models;

public sealed partial class CLIPTextModelWithProjection : ICLIPTextEncoder
{
    /// <inheritdoc/>
    public Tensor GetInputEmbeddings() => text_model.Embeddings.Weight;

    /// <inheritdoc/>
    public void ResizeTokenEmbeddings(int newNumTokens)
    {
        if (newNumTokens < 1) throw new ArgumentOutOfRangeException(nameof(newNumTokens), newNumTokens, "a token embedding needs at least one row");
        text_model.Embeddings.ResizeTokenEmbeddings(newNumTokens);
        Config = Config with { VocabSize = newNumTokens };
    }
}
