using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// How <c>FromPretrained</c> loads a pipeline's models (diffusers' <c>torch_dtype</c>, <c>variant</c> and
/// <c>.to(device)</c>): null members keep the defaults (the weights' float32, no variant, the CPU).
/// </summary>
public sealed record PipelineLoadOptions
{
    /// <summary>The models' dtype (e.g. <c>ScalarType.BFloat16</c>); null = float32 as stored.</summary>
    public ScalarType? Dtype { get; init; }

    /// <summary>The models' device; null = the CPU.</summary>
    public Device? Device { get; init; }

    /// <summary>A weights variant such as "fp16" (<c>diffusion_pytorch_model.fp16.safetensors</c>).</summary>
    public string? Variant { get; init; }

    public static readonly PipelineLoadOptions Default = new();
}
