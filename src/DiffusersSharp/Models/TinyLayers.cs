using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>Runs TAESD's <c>nn.Sequential</c> of layers, freeing each layer's input as soon as the next output exists.</summary>
internal static class TinyLayers
{
    /// <summary>
    /// <paramref name="input"/> through the layers [<paramref name="from"/>, <paramref name="to"/>) in order;
    /// <paramref name="input"/> is disposed once used (the callers pass a tensor they made). <paramref name="hook"/> sees
    /// <c>layers.&lt;i&gt;</c> and each output.
    /// </summary>
    public static Tensor Run(ModuleList<nn.Module<Tensor, Tensor>> layers, int from, int to, Tensor input, Action<string, Tensor>? hook)
    {
        var h = input;
        for (int i = from; i < to; i++)
        {
            var next = layers[i].forward(h);
            if (!ReferenceEquals(next, h)) h.Dispose();
            h = next;
            hook?.Invoke($"layers.{i}", h);
        }
        return h;
    }
}
