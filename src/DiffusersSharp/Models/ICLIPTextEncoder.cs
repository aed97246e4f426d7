using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// What textual inversion needs of a CLIP text encoder (<see cref="CLIPTextModel"/>, <see cref="CLIPTextModelWithProjection"/>):
/// its config, its token embedding (transformers' <c>get_input_embeddings().weight</c>) and
/// <c>resize_token_embeddings</c>.
/// </summary>
public interface ICLIPTextEncoder
{
    /// <summary>The config the encoder was built from.</summary>
    CLIPTextConfig Config { get; }

    /// <summary>The token embedding weight [vocab_size, hidden_size]: a handle on the live parameter (writes change the model).</summary>
    Tensor GetInputEmbeddings();

    /// <summary>
    /// transformers' <c>resize_token_embeddings(n)</c>: the token embedding gets <paramref name="newNumTokens"/> rows,
    /// the first ones kept, and <c>vocab_size</c> in <see cref="Config"/> follows.
    /// </summary>
    void ResizeTokenEmbeddings(int newNumTokens);
}
