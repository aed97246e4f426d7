using TorchSharp;

namespace DiffusersSharp.Models;

/// <summary>
/// Keeps a model's weights out of the caller's <c>DisposeScope</c>. TorchSharp registers tensors made while a
/// scope is open in that scope, module parameters included (native modules such as <c>Embedding</c> wrap theirs
/// on construction, and <c>module.to(dtype)</c> makes new ones): a model built or converted inside
/// <c>using var scope = torch.NewDisposeScope()</c> would lose those weights when the scope ends. Build and
/// convert inside <see cref="Run{T}"/>, which detaches every parameter and buffer of the result.
/// </summary>
internal static class ModuleScope
{
    public static T Run<T>(Func<T> build) where T : torch.nn.Module
    {
        using var scope = torch.NewDisposeScope();
        var module = build();
        Detach(module);
        return module;
    }

    public static void Detach(torch.nn.Module module)
    {
        foreach (var (_, p) in module.named_parameters()) p.DetachFromDisposeScope();
        foreach (var (_, b) in module.named_buffers()) b.DetachFromDisposeScope();
    }
}
