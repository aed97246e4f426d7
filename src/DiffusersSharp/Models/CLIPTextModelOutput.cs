using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// Output of <see cref="CLIPTextModelWithProjection.Forward"/> (transformers' <c>CLIPTextModelOutput</c>).
/// Disposing it disposes every tensor it holds.
/// </summary>
public sealed class CLIPTextModelOutput : IDisposable
{
    /// <summary>Wraps the encoder's outputs; the instance owns the tensors.</summary>
    public CLIPTextModelOutput(Tensor textEmbeds, Tensor lastHiddenState, IReadOnlyList<Tensor>? hiddenStates)
    {
        TextEmbeds = textEmbeds;
        LastHiddenState = lastHiddenState;
        HiddenStates = hiddenStates;
    }

    /// <summary>[batch, projection_dim]: the projected pooled output.</summary>
    public Tensor TextEmbeds { get; }

    /// <summary>[batch, seq, hidden]: the last layer's output after the final LayerNorm.</summary>
    public Tensor LastHiddenState { get; }

    /// <summary>With <c>outputHiddenStates</c>: embeddings, then each layer's output (no final LayerNorm).</summary>
    public IReadOnlyList<Tensor>? HiddenStates { get; }

    /// <summary>Disposes every tensor of the output.</summary>
    public void Dispose()
    {
        TextEmbeds.Dispose();
        LastHiddenState.Dispose();
        if (HiddenStates is not null) foreach (var t in HiddenStates) t.Dispose();
    }
}
