using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// Output of <see cref="CLIPTextModel.Forward"/> (transformers' <c>BaseModelOutputWithPooling</c>).
/// Disposing it disposes every tensor it holds.
/// </summary>
public sealed class BaseModelOutputWithPooling : IDisposable
{
    /// <summary>Wraps the encoder's outputs; the instance owns the tensors.</summary>
    public BaseModelOutputWithPooling(Tensor lastHiddenState, Tensor poolerOutput, IReadOnlyList<Tensor>? hiddenStates)
    {
        LastHiddenState = lastHiddenState;
        PoolerOutput = poolerOutput;
        HiddenStates = hiddenStates;
    }

    /// <summary>[batch, seq, hidden]: the last layer's output after the final LayerNorm.</summary>
    public Tensor LastHiddenState { get; }

    /// <summary>[batch, hidden]: <see cref="LastHiddenState"/> at each prompt's EOS position.</summary>
    public Tensor PoolerOutput { get; }

    /// <summary>
    /// With <c>outputHiddenStates</c>: the embeddings, then the output of each layer (num_hidden_layers + 1
    /// tensors, no final LayerNorm); null otherwise. diffusers' clip_skip k uses <c>HiddenStates[^(k + 1)]</c>.
    /// </summary>
    public IReadOnlyList<Tensor>? HiddenStates { get; }

    /// <summary>Disposes every tensor of the output.</summary>
    public void Dispose()
    {
        LastHiddenState.Dispose();
        PoolerOutput.Dispose();
        if (HiddenStates is not null) foreach (var t in HiddenStates) t.Dispose();
    }
}
