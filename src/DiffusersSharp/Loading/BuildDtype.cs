using static TorchSharp.torch;

namespace DiffusersSharp.Loading;

/// <summary>
/// Builds a model directly in its load dtype, so that a bf16 model is never an fp32 model first (an SDXL UNet: 5.1 GB
/// instead of 10.3 GB, then converted). For the build, <see cref="Current"/> is the dtype, and every layer the models
/// make (convolutions, linears, norms, embeddings, LoRA-compatible layers: <c>Models/Layers.BuildDType</c>) takes it
/// as its explicit <c>dtype</c>. It is per thread: torch's default dtype, which is process-wide in TorchSharp, is never
/// touched, so models built or tensors made on other threads meanwhile are not affected. A layer that does not read it
/// is built in the default dtype and converted by the <c>to(dtype)</c> that follows every build (the same values;
/// only the memory saving is lost there).
/// </summary>
internal static class BuildDtype
{
    [ThreadStatic] private static ScalarType? _current;

    /// <summary>The dtype of the build running on this thread; null outside a build (layers take torch's default).</summary>
    public static ScalarType? Current => _current;

    /// <summary>
    /// Runs <paramref name="build"/> with <see cref="Current"/> = <paramref name="dtype"/> when it is a floating dtype (null or any
    /// other dtype: as it is), restored afterwards, also when the build throws.
    /// </summary>
    public static T Build<T>(ScalarType? dtype, Func<T> build)
    {
        if (dtype is not { } dt || !IsFloating(dt)) return build();
        var previous = _current;
        _current = dt;
        try { return build(); }
        finally { _current = previous; }
    }

    /// <summary>Whether <paramref name="dtype"/> is a floating dtype a model can be built in.</summary>
    public static bool IsFloating(ScalarType dtype) =>
        dtype is ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Float32 or ScalarType.Float64;
}
