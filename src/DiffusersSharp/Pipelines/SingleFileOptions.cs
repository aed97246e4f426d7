using DiffusersSharp.Models;
using DiffusersSharp.Text;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// How <c>FromSingleFile</c> reads an original-layout checkpoint (diffusers' <c>from_single_file</c> arguments). With no
/// config the architecture is inferred from the file's keys and shapes; <see cref="OriginalConfigFile"/> (an original
/// YAML) or <see cref="Config"/> (a diffusers folder or Hub id whose configs, tokenizers and scheduler to use) describe
/// anything else.
/// </summary>
public sealed record SingleFileOptions
{
    /// <summary>The original config (<c>v1-inference.yaml</c>, …), diffusers' <c>original_config_file</c>.</summary>
    public string? OriginalConfigFile { get; init; }

    /// <summary>A diffusers pipeline folder or Hub id whose component configs, tokenizers and scheduler are used.</summary>
    public string? Config { get; init; }

    /// <summary>The image size the model was trained on (UNet sample_size × 8); default: the family's (512, SD 2.x 768, SDXL 1024).</summary>
    public int? ImageSize { get; init; }

    /// <summary>"epsilon" or "v_prediction"; default: SD 2.x v_prediction (epsilon for the 512 base, global_step 875000), else epsilon.</summary>
    public string? PredictionType { get; init; }

    /// <summary>diffusers' <c>upcast_attention</c> (it changes nothing in the computation here).</summary>
    public bool? UpcastAttention { get; init; }

    /// <summary>diffusers' <c>scheduler_type</c>: pndm (default), lms, heun, euler, euler-ancestral, dpm, ddim (SD 1.x/2.x; an SDXL file gets Euler, and another value is refused).</summary>
    public string SchedulerType { get; init; } = "pndm";

    /// <summary>Take the UNet from the EMA weights (<c>model_ema.*</c>) of a training checkpoint that has both.</summary>
    public bool ExtractEma { get; init; }

    /// <summary>A tokenizer to use instead of the shipped CLIP vocabulary.</summary>
    public CLIPTokenizer? Tokenizer { get; init; }

    /// <summary>
    /// A text encoder to use: its config replaces the inferred one and its weights are overwritten from the file (as
    /// diffusers does with <c>text_encoder=</c>); when the file has no text encoder weights it is used as it is.
    /// </summary>
    public CLIPTextModel? TextEncoder { get; init; }

    /// <summary>The models' dtype; null = float32.</summary>
    public ScalarType? Dtype { get; init; }

    /// <summary>Warnings (unused keys of the file, …); default: standard error.</summary>
    public Action<string>? Log { get; init; }

    /// <summary>The defaults: no original config, float32, warnings on standard error.</summary>
    public static readonly SingleFileOptions Default = new();
}
