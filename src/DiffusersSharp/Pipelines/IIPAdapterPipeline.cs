using DiffusersSharp.Imaging;
using DiffusersSharp.Loading;
using DiffusersSharp.Models;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// diffusers' <c>IPAdapterMixin</c>: what the Stable Diffusion and SDXL pipeline bases (<see cref="StableDiffusionPipelineBase"/>,
/// <see cref="StableDiffusionXLPipelineBase"/>) offer alike for IP-Adapter: the image encoder and its image processor
/// (a pipeline folder's <c>image_encoder</c> / <c>feature_extractor</c> components), loading an adapter and its scale.
/// </summary>
public interface IIPAdapterPipeline
{
    /// <summary>diffusers' <c>image_encoder</c>: the CLIP vision model of IP-Adapter (owned and disposed by the pipeline).</summary>
    CLIPVisionModelWithProjection? ImageEncoder { get; set; }

    /// <summary>diffusers' <c>feature_extractor</c>: how IP-Adapter images are made the encoder's input.</summary>
    CLIPImageProcessor? FeatureExtractor { get; set; }

    /// <summary>diffusers' <c>load_ip_adapter(pretrained_model_name_or_path, subfolder, weight_name)</c>.</summary>
    void LoadIPAdapter(string pathOrId, string? subfolder, string weightName, LoadOptions? options = null);

    /// <summary>diffusers' <c>set_ip_adapter_scale</c>.</summary>
    void SetIPAdapterScale(double scale);

    /// <summary>The loaded adapter's image projection (the UNet's <see cref="UNet2DConditionModel.IPAdapterImageProjection"/>), or null when none is loaded.</summary>
    IImageProjection? IPAdapterImageProjection { get; }
}
