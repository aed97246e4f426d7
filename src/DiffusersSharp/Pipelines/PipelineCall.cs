using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// What a Stable Diffusion / SDXL / ControlNet call holds from its start to its end: the effective batch
/// (prompts × images per prompt), the generators, and — disposed in reverse order when the call ends — the generator a
/// seed made, the no-grad mode and the call's dispose scope. Made by <c>DiffusionPipeline.BeginCall</c>.
/// </summary>
internal sealed class PipelineCall : IDisposable
{
    private readonly Generator? _owned;
    private readonly IDisposable _noGrad;
    private readonly DisposeScope _scope;

    /// <summary>Starts the call; <paramref name="owned"/> (a seed's generator) is disposed with it.</summary>
    internal PipelineCall(int total, IReadOnlyList<Generator>? generators, Generator? owned)
    {
        Total = total;
        Generators = generators;
        _owned = owned;
        _noGrad = torch.no_grad();
        _scope = torch.NewDisposeScope();
    }

    /// <summary>The effective batch size: prompts × images per prompt.</summary>
    internal int Total { get; }

    /// <summary>The call's generators (null: torch's global one).</summary>
    internal IReadOnlyList<Generator>? Generators { get; }

    /// <summary>The call's batch and generators, as <c>var (total, gens) = call;</c>.</summary>
    internal void Deconstruct(out int total, out IReadOnlyList<Generator>? generators)
    {
        total = Total;
        generators = Generators;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _scope.Dispose();
        _noGrad.Dispose();
        _owned?.Dispose();
    }
}
