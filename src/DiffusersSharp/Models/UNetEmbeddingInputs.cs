using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// What a UNet's conditioning embeddings (<see cref="IUNetEmbedding"/>) read from one forward call: the timesteps
/// (1-D, one per batch item), the dtype the embeddings are cast to, and diffusers' optional forward arguments.
/// </summary>
public sealed record UNetEmbeddingInputs(Tensor Timesteps, ScalarType DType)
{
    /// <summary>diffusers' <c>class_labels</c>.</summary>
    public Tensor? ClassLabels { get; init; }

    /// <summary>diffusers' <c>timestep_cond</c> (for <c>time_cond_proj_dim</c>).</summary>
    public Tensor? TimestepCond { get; init; }

    /// <summary>diffusers' <c>added_cond_kwargs</c>.</summary>
    public AddedCondKwargs? AddedCondKwargs { get; init; }

    /// <summary>Test hook: (module path, output), as the UNet's intermediate hook.</summary>
    internal Action<string, Tensor>? Hook { get; init; }
}
