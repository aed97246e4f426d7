using DiffusersSharp.Hub;
using static TorchSharp.torch;

namespace DiffusersSharp.Loading;

/// <summary>
/// How <c>FromPretrained</c> finds and loads a model, a scheduler, a tokenizer or a whole pipeline: the arguments
/// diffusers' and transformers' <c>from_pretrained</c> take besides the id and the subfolder (<c>revision</c>,
/// <c>variant</c>, <c>torch_dtype</c>, <c>cache_dir</c>, <c>local_files_only</c>, <c>token</c>) plus diffusers'
/// <c>.to(device)</c> and where messages go. Every <c>FromPretrained</c> takes one, always as
/// <c>FromPretrained(idOrPath, [subfolder,] options)</c>; a pipeline hands the same options to each component.
/// Null members keep the defaults: the <c>main</c> revision, no variant, the stored float32 on the CPU, the Hub
/// cache and settings of the environment. Options that concern only some components (a tokenizer has no dtype, a
/// scheduler no weights) are ignored by the others.
/// </summary>
public sealed record LoadOptions
{
    /// <summary>No options: every default.</summary>
    public static LoadOptions Default { get; } = new();

    /// <summary>A branch, tag or 40-hex commit of a Hub id (default <c>main</c>); ignored for local folders.</summary>
    public string? Revision { get; init; }

    /// <summary>
    /// A weights variant such as "fp16" (<c>diffusion_pytorch_model.fp16.safetensors</c>, <c>model.fp16.safetensors</c>).
    /// A pipeline gives it only to the components whose folder holds files of it (<see cref="PipelineVariant"/>).
    /// </summary>
    public string? Variant { get; init; }

    /// <summary>The models' dtype (diffusers' <c>torch_dtype</c>); null = float32 as built, stored weights converted.</summary>
    public ScalarType? Dtype { get; init; }

    /// <summary>The models' device (diffusers' <c>pipe.to(device)</c>, applied while loading); null = the CPU.</summary>
    public Device? Device { get; init; }

    /// <summary>The Hub cache folder (huggingface_hub's <c>cache_dir</c>); null = <see cref="Hub"/>'s, else the environment's.</summary>
    public string? CacheDir { get; init; }

    /// <summary>Never download (diffusers' <c>local_files_only</c>): a Hub id must be in the cache.</summary>
    public bool LocalFilesOnly { get; init; }

    /// <summary>Hub token for private or gated repositories (default: <see cref="Hub"/>'s, else <c>HF_TOKEN</c> / the token file).</summary>
    public string? Token { get; init; }

    /// <summary>Endpoint, token, offline flag and cache folder (default: <see cref="HubSettings.FromEnvironment"/>).</summary>
    public HubSettings? Hub { get; init; }

    /// <summary>Retries, timeouts and parallelism of downloads (default: <see cref="HubClientOptions"/>' defaults).</summary>
    public HubClientOptions? HubClientOptions { get; init; }

    /// <summary>Download progress, per file, when a Hub id is fetched.</summary>
    public IProgress<HubDownloadProgress>? DownloadProgress { get; init; }

    /// <summary>
    /// Where loading and running report what they skip or adjust (components not run, scheduler configs fixed as
    /// diffusers does, tensors of a model's checkpoint that the model does not have); null = the component's default
    /// (models and Stable Diffusion pipelines write to standard error).
    /// </summary>
    public Action<string>? Log { get; init; }
}
