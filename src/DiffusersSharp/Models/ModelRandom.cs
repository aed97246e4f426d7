using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>diffusers' <c>randn_tensor</c> (utils/torch_utils.py, v0.25.1) for model code.</summary>
internal static class ModelRandom
{
    /// <summary>
    /// One generator (or none): a CPU generator draws on the CPU and the result moves to <paramref name="device"/>.
    /// A list of generators: item i of the batch is drawn from generator i (a one-element list acts as one
    /// generator), as diffusers does.
    /// </summary>
    public static Tensor RandnTensor(long[] shape, IReadOnlyList<Generator>? generators, ScalarType dtype, Device device)
    {
        if (generators is null || generators.Count == 0)
            return torch.randn(shape, dtype, device);
        var genType = generators[0].device.type;
        Device randDevice = device;
        if (genType != device.type)
        {
            if (genType != DeviceType.CPU)
                throw new DiffusersException($"Cannot generate a {device} tensor from a generator of type {genType}.");
            randDevice = CPU;
        }
        if (generators.Count == 1)
        {
            var t = torch.randn(shape, dtype, randDevice, generator: generators[0]);
            return randDevice == device ? t : MoveAndDispose(t, device);
        }
        if (generators.Count != shape[0])
            throw new DiffusersException($"You have passed a list of generators of length {generators.Count}, but requested an effective batch size of {shape[0]}. Make sure the batch size matches the length of the generators.");
        var itemShape = (long[])shape.Clone();
        itemShape[0] = 1;
        var items = new Tensor[generators.Count];
        try
        {
            for (int i = 0; i < items.Length; i++)
                items[i] = torch.randn(itemShape, dtype, randDevice, generator: generators[i]);
            var cat = torch.cat(items, dim: 0);
            return randDevice == device ? cat : MoveAndDispose(cat, device);
        }
        finally
        {
            foreach (var t in items) t?.Dispose();
        }
    }

    private static Tensor MoveAndDispose(Tensor t, Device device)
    {
        using (t) return t.to(device);
    }
}
