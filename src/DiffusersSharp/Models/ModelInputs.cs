using System.Runtime.InteropServices;
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

    /// <summary>
    /// An embedding table's rows for integer <paramref name="ids"/> (<paramref name="lookup"/>, of a table of
    /// <paramref name="count"/> rows). An id outside the table fails in libtorch ("index out of range in self", as in
    /// diffusers and transformers); on that failure only, the ids are read and the ones outside [0, count) named by
    /// <paramref name="describe"/>, as an error about <paramref name="parameter"/>.
    /// </summary>
    public static Tensor Lookup(Func<Tensor> lookup, Tensor ids, long count, string parameter, Func<long[], string> describe)
    {
        try
        {
            return lookup();
        }
        catch (ExternalException e)
        {
            using var values = ids.to(ScalarType.Int64, CPU).flatten();
            var outside = values.data<long>().Where(id => id < 0 || id >= count).Distinct().ToArray();
            if (outside.Length == 0) throw;
            throw new ArgumentException(describe(outside), parameter, e);
        }
    }

    /// <summary>A timestep or scale given as a number must be finite: NaN or ±Inf make every output NaN.</summary>
    public static void Finite(double value, string model, string what)
    {
        if (!double.IsFinite(value))
            throw new ArgumentException($"{model}: {what} must be a finite number, got {value.ToString(System.Globalization.CultureInfo.InvariantCulture)}", what);
    }
}
