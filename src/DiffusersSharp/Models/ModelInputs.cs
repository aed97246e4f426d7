using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// The argument checks the models' forward passes share, beside each model's own shape checks: cheap reads of a
/// tensor's shape and dtype, no pass over its values. What they refuse fails in diffusers inside torch (a convolution
/// or matmul on mixed dtypes, a kernel larger than an empty input), with torch's words and no name of the argument.
/// </summary>
internal static class ModelInputs
{
    /// <summary>
    /// <paramref name="x"/> (the argument <paramref name="what"/> of <paramref name="model"/>) must not be null and must
    /// hold values: a zero-sized batch, height or width fails in the first convolution or attention.
    /// </summary>
    public static void NotEmpty(Tensor? x, string model, string what)
    {
        ArgumentNullException.ThrowIfNull(x, what);
        if (x.numel() == 0)
            throw new ArgumentException($"{model}: {what} is empty (shape {Layers.Shape(x)}); every dimension must be at least 1", what);
    }

    /// <summary>
    /// <paramref name="x"/> must have the dtype the model runs in: libtorch refuses mixed dtypes in a convolution or
    /// matmul ("Input type (float) and bias type (c10::BFloat16) should be the same"), as in diffusers.
    /// </summary>
    public static void SameDType(Tensor x, ScalarType modelDType, string model, string what)
    {
        if (x.dtype != modelDType)
            throw new ArgumentException($"{model}: {what} has dtype {x.dtype}, but the model runs in {modelDType}; pass it in {modelDType}", what);
    }

    /// <summary>A timestep or scale given as a number must be finite: NaN or ±Inf make every output NaN.</summary>
    public static void Finite(double value, string model, string what)
    {
        if (!double.IsFinite(value))
            throw new ArgumentException($"{model}: {what} must be a finite number, got {value.ToString(System.Globalization.CultureInfo.InvariantCulture)}", what);
    }
}
