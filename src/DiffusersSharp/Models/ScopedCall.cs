using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// Runs one sub-module call in its own dispose scope so that its temporaries are freed as soon as it returns
/// (a forward pass's intermediates would otherwise live until the caller's scope ends), keeping the results.
/// </summary>
internal static class ScopedCall
{
    public static Tensor Run(Func<Tensor> call)
    {
        using var scope = torch.NewDisposeScope();
        var result = call();
        scope.MoveToOuter(result);
        return result;
    }

    public static (Tensor HiddenStates, Tensor[] OutputStates) Run(Func<(Tensor HiddenStates, Tensor[] OutputStates)> call)
    {
        using var scope = torch.NewDisposeScope();
        var (h, outputs) = call();
        scope.MoveToOuter(outputs.Append(h));
        return (h, outputs);
    }

    /// <summary>Disposes <paramref name="t"/> unless it is one of <paramref name="keep"/> (same object).</summary>
    public static void DisposeUnless(Tensor t, params Tensor[] keep)
    {
        foreach (var k in keep)
            if (ReferenceEquals(t, k)) return;
        t.Dispose();
    }
}
