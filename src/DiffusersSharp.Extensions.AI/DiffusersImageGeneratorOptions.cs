using DiffusersSharp.Generation;
using DiffusersSharp.Loading;

namespace DiffusersSharp.Extensions.AI;

/// <summary>The settings of <see cref="DiffusersImageGenerator"/> (and <c>AddDiffusersImageGenerator(o => …)</c>).</summary>
public sealed class DiffusersImageGeneratorOptions
{
    /// <summary>The model: a pipeline folder or Hub id (<c>DiffusionPipeline.FromPretrained</c>). Required.</summary>
    public string Model { get; set; } = "";

    /// <summary>How it is loaded (dtype, device, cache, offline …).</summary>
    public LoadOptions? LoadOptions { get; set; }

    /// <summary>Steps when a request gives none (<c>steps</c> in AdditionalProperties). Default 25.</summary>
    public int DefaultSteps { get; set; } = 25;

    /// <summary>The largest <c>Count</c> a request may ask for. Default 4.</summary>
    public int MaxCount { get; set; } = 4;

    /// <summary>
    /// The directory of LoRA files (<c>*.safetensors</c>) requests may name in <c>loras</c> (AdditionalProperties: name →
    /// weight); null: requests with LoRAs are refused. Applied to the service the generator loads.
    /// </summary>
    public string? LoraDirectory { get; set; }

    /// <summary>
    /// An IP-Adapter loaded into the model the generator loads (<see cref="GenerationService.LoadIPAdapter"/>, with
    /// <see cref="LoadOptions"/>' cache and Hub settings): every request then gives its image prompt (AdditionalProperties
    /// <c>ip_adapter_image</c>; diffusers 0.25.1 runs a pipeline with an IP-Adapter only with one). Null: none, and requests
    /// with an image prompt are refused.
    /// </summary>
    public IPAdapterSource? IPAdapter { get; set; }

    /// <summary>The scale of <see cref="IPAdapter"/> for requests without <c>ip_adapter_scale</c>; null: 1.</summary>
    public double? IPAdapterScale { get; set; }
}
