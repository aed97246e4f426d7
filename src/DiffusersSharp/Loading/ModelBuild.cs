using static TorchSharp.torch;

namespace DiffusersSharp.Loading;

/// <summary>
/// How the model being built on this thread makes its layers (per thread; outside a build: torch's default dtype,
/// initialised as PyTorch does).
/// <list type="bullet">
/// <item><see cref="Dtype"/>: a model is built directly in its load dtype, so that a bf16 model is never an fp32 model
/// first (an SDXL UNet: 5.1 GB instead of 10.3 GB, then converted). Every layer the models make (convolutions,
/// linears, norms, embeddings, LoRA-compatible layers: <c>Models/Layers.BuildDType</c>) takes it as its explicit
/// <c>dtype</c>. torch's default dtype, which is process-wide in TorchSharp, is never touched, so models built or
/// tensors made on other threads meanwhile are not affected. A layer that does not read it is built in the default
/// dtype and converted by the <c>to(dtype)</c> that follows every build (the same values; only the memory saving is
/// lost there).</item>
/// <item><see cref="ForCheckpoint"/>: the build is followed by a strict load that overwrites every parameter and
/// buffer (<c>FromPretrained</c>, single-file loading), so the layers' random initialisation would be thrown away:
/// the weight layers (<c>Models/Layers.Conv2d</c>, <c>ConvTranspose2d</c>, <c>Linear</c>, <c>Embedding</c>, the
/// LoRA-compatible layers, the Gaussian Fourier projection: <c>Layers.LeaveUninitialized</c>) are
/// allocated uninitialised instead, as diffusers' default <c>low_cpu_mem_usage</c> load builds under
/// accelerate's <c>init_empty_weights</c>. That drawing was half of the CPU time of loading a model, and it used
/// torch's global random generator: a load now draws no random numbers, as in diffusers.</item>
/// </list>
/// </summary>
internal static class ModelBuild
{
    [ThreadStatic] private static ScalarType? _dtype;
    [ThreadStatic] private static bool _forCheckpoint;

    /// <summary>The dtype of the build running on this thread; null outside a build (layers take torch's default).</summary>
    public static ScalarType? Dtype => _dtype;

    /// <summary>True while the build on this thread is followed by a strict load of every parameter (see the class).</summary>
    public static bool ForCheckpoint => _forCheckpoint;

    /// <summary>
    /// Runs <paramref name="build"/> with <see cref="Dtype"/> = <paramref name="dtype"/> when it is a floating dtype (null
    /// or any other dtype: as it is) and <see cref="ForCheckpoint"/> = <paramref name="forCheckpoint"/>, both restored
    /// afterwards, also when the build throws.
    /// </summary>
    public static T Run<T>(ScalarType? dtype, bool forCheckpoint, Func<T> build)
    {
        var (previousDtype, previousForCheckpoint) = (_dtype, _forCheckpoint);
        if (dtype is { } dt && IsFloating(dt)) _dtype = dt;
        _forCheckpoint = forCheckpoint;
        try { return build(); }
        finally { (_dtype, _forCheckpoint) = (previousDtype, previousForCheckpoint); }
    }

    /// <summary>Whether <paramref name="dtype"/> is a floating dtype a model can be built in.</summary>
    public static bool IsFloating(ScalarType dtype) =>
        dtype is ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Float32 or ScalarType.Float64;
}
