using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// Output of <see cref="CLIPVisionModelWithProjection.Forward"/> (transformers' <c>CLIPVisionModelOutput</c>).
/// Disposing it disposes every tensor it holds.
/// </summary>
public sealed class CLIPVisionModelOutput : IDisposable
{
    /// <summary>Wraps the encoder's outputs; the instance owns the tensors.</summary>
    public CLIPVisionModelOutput(Tensor imageEmbeds, Tensor lastHiddenState, IReadOnlyList<Tensor>? hiddenStates)
    {
        ImageEmbeds = imageEmbeds;
        LastHiddenState = lastHiddenState;
        HiddenStates = hiddenStates;
    }

    /// <summary>[batch, projection_dim]: <c>visual_projection(post_layernorm(last_hidden_state[:, 0]))</c>.</summary>
    public Tensor ImageEmbeds { get; }

    /// <summary>[batch, patches + 1, hidden]: the last layer's output (no post LayerNorm, as in transformers).</summary>
    public Tensor LastHiddenState { get; }

    /// <summary>
    /// With <c>outputHiddenStates</c>: the embeddings after <c>pre_layrnorm</c>, then each layer's output
    /// (num_hidden_layers + 1 tensors); IP-Adapter Plus reads <c>HiddenStates[^2]</c>. Null otherwise.
    /// </summary>
    public IReadOnlyList<Tensor>? HiddenStates { get; }

    /// <summary>Disposes every tensor of the output.</summary>
    public void Dispose()
    {
        ImageEmbeds.Dispose();
        LastHiddenState.Dispose();
        if (HiddenStates is not null) foreach (var t in HiddenStates) t.Dispose();
    }
}
