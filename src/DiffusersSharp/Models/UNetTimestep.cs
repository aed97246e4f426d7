using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// The <c>timestep</c> argument of <see cref="UNet2DConditionModel.Forward"/>: a tensor (0-d or 1-d, of 1 or batch
/// values), or a number, which diffusers turns into a one-element tensor, int64 for an integer and float64 for a
/// fractional value (so 500.5 is not truncated).
/// </summary>
public readonly struct UNetTimestep
{
    private readonly Tensor? _tensor;
    private readonly long _integer;
    private readonly double? _fraction;

    private UNetTimestep(Tensor? tensor, long integer, double? fraction)
    {
        _tensor = tensor;
        _integer = integer;
        _fraction = fraction;
    }

    /// <summary>A timestep tensor (0-dim or one per batch item), used as is.</summary>
    public static implicit operator UNetTimestep(Tensor timestep) =>
        new(timestep ?? throw new ArgumentNullException(nameof(timestep)), 0, null);
    /// <summary>An integer timestep (DDPM, DDIM, ...), broadcast to the batch.</summary>
    public static implicit operator UNetTimestep(long timestep) => new(null, timestep, null);
    /// <summary>A fractional timestep (Euler, Heun, LMS: float32 in diffusers), broadcast to the batch.</summary>
    public static implicit operator UNetTimestep(double timestep) => new(null, 0, timestep);

    /// <summary>
    /// The timesteps as a 1-D tensor on <paramref name="device"/>; a number becomes a new tensor (its caller's). A NaN or
    /// infinite number is refused, naming <paramref name="model"/>: it would make every output value NaN.
    /// </summary>
    internal Tensor ToTensor(Device device, string model)
    {
        if (_tensor is not null)
            return (_tensor.dim() == 0 ? _tensor.unsqueeze(0) : _tensor).to(device);
        if (_fraction is double value)
            ModelInputs.Finite(value, model, "timestep");
        return _fraction is double f
            ? torch.tensor(new[] { f }, dtype: ScalarType.Float64, device: device)
            : torch.tensor(new[] { _integer }, dtype: ScalarType.Int64, device: device);
    }

    /// <summary>The value as given, for messages.</summary>
    public override string ToString() =>
        _tensor is not null ? Layers.Shape(_tensor) : _fraction?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? _integer.ToString(System.Globalization.CultureInfo.InvariantCulture);
}
