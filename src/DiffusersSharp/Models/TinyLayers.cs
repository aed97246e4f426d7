using DiffusersSharp.Models.Lora;
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
    /// <c>layers.&lt;i&gt;</c> and each output. Where <paramref name="upsamplesAreNearest2x"/> (the decoder's upsamples
    /// are nearest ×2) and no hook looks, an upsample and the 3×3 convolution after it run as one pass where the Winograd
    /// path takes them (<see cref="LoRACompatibleConv.ForwardUpsampled"/>): the upsampled tensor, 4× the input, is never
    /// made.
    /// </summary>
    public static Tensor Run(ModuleList<nn.Module<Tensor, Tensor>> layers, int from, int to, Tensor input, Action<string, Tensor>? hook,
        bool upsamplesAreNearest2x = false)
    {
        var h = input;
        for (int i = from; i < to; i++)
        {
            Tensor next;
            if (upsamplesAreNearest2x && hook is null && layers[i] is Upsample && i + 1 < to
                && layers[i + 1] is LoRACompatibleConv conv && conv.FusesUpsample(h))
            {
                next = conv.ForwardUpsampled(h);
                i++;
            }
            else next = layers[i].forward(h);
            if (!ReferenceEquals(next, h)) h.Dispose();
            h = next;
            hook?.Invoke($"layers.{i}", h);
        }
        return h;
    }
}
