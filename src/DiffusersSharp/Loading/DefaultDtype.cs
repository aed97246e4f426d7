using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Loading;

/// <summary>
/// Builds a model directly in its load dtype: torch's default dtype (which every parameter TorchSharp's layers and our
/// own make takes when none is given) is set to that dtype for the build and restored afterwards, also when the build
/// throws. A bf16 model is then never an fp32 model first (an SDXL UNet: 5.1 GB instead of 10.3 GB, then converted).
/// The default dtype is process-wide in TorchSharp: builds are serialised by one lock, and code that runs on another
/// thread during a build and makes tensors without an explicit dtype would get the build's dtype (the library's
/// forward passes name their dtypes).
/// </summary>
internal static class DefaultDtype
{
    private static readonly Lock Gate = new();

    /// <summary>
    /// Runs <paramref name="build"/> with torch's default dtype set to <paramref name="dtype"/> when it is a floating
    /// dtype (null or any other dtype: the build runs as it is).
    /// </summary>
    public static T Build<T>(ScalarType? dtype, Func<T> build)
    {
        if (dtype is not { } dt || !IsFloating(dt)) return build();
        lock (Gate)
        {
            var previous = torch.get_default_dtype();
            torch.set_default_dtype(dt);
            try { return build(); }
            finally { torch.set_default_dtype(previous); }
        }
    }

    /// <summary>Whether <paramref name="dtype"/> is one torch's default dtype can be.</summary>
    public static bool IsFloating(ScalarType dtype) =>
        dtype is ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Float32 or ScalarType.Float64;
}
