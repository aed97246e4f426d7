using DiffusersSharp.Imaging;
using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

public abstract partial class StableDiffusionXLPipelineBase : IIPAdapterPipeline
{
    /// <summary>
    /// diffusers' <c>image_encoder</c>: the CLIP vision model of IP-Adapter (h94/IP-Adapter's <c>sdxl_models/image_encoder</c>
    /// is ViT-bigG; set by <see cref="LoadIPAdapter"/> when none is; the pipeline owns it and disposes it with the others).
    /// </summary>
    public CLIPVisionModelWithProjection? ImageEncoder { get; set; }

    /// <summary>
    /// diffusers' <c>feature_extractor</c> for IP-Adapter images. When none is set, <see cref="LoadIPAdapter"/> takes the
    /// image encoder folder's <c>preprocessor_config.json</c> when it has one, else transformers' defaults at the encoder's
    /// <c>image_size</c>.
    /// </summary>
    public CLIPImageProcessor? FeatureExtractor { get; set; }

    /// <summary>
    /// diffusers' <c>load_ip_adapter(pretrained_model_name_or_path, subfolder, weight_name)</c>, as
    /// <see cref="StableDiffusionPipelineBase.LoadIPAdapter"/>: h94/IP-Adapter, "sdxl_models", "ip-adapter_sdxl.bin" (the
    /// adapters' cross_attention_dim is SDXL's 2048), the encoder from <c>{subfolder}/image_encoder</c> when the pipeline
    /// has no <see cref="ImageEncoder"/>.
    /// </summary>
    public void LoadIPAdapter(string pathOrId, string? subfolder, string weightName, LoadOptions? options = null)
    {
        LoaderMixinChecks.Require(ClassName, Loaders, LoaderMixins.IPAdapter, nameof(LoadIPAdapter), "load_ip_adapter");
        (ImageEncoder, FeatureExtractor) = IPAdapterSupport.Load(Unet, ImageEncoder, FeatureExtractor, pathOrId, subfolder, weightName, options);
    }

    /// <summary>diffusers' <c>set_ip_adapter_scale</c>.</summary>
    public void SetIPAdapterScale(double scale)
    {
        LoaderMixinChecks.Require(ClassName, Loaders, LoaderMixins.IPAdapter, nameof(SetIPAdapterScale), "set_ip_adapter_scale");
        Unet.SetIPAdapterScale(scale);
    }

    /// <summary>
    /// The loader mixins of this pipeline's diffusers class. On the SDXL pipelines only the IP-Adapter's members check it
    /// (<see cref="LoadIPAdapter"/>, <see cref="SetIPAdapterScale"/> throw a <see cref="DiffusersException"/> on a class
    /// without <see cref="LoaderMixins.IPAdapter"/>, whose <c>Generate</c> takes no image prompt); LoRA and textual inversion
    /// load on every SDXL pipeline.
    /// </summary>
    protected virtual LoaderMixins Loaders => LoaderMixins.All;

    /// <summary>Whether this pipeline takes what <paramref name="mixin"/>'s members load (see <see cref="Loaders"/>).</summary>
    public bool Supports(LoaderMixins mixin) => (Loaders & mixin) == mixin;

    /// <inheritdoc/>
    public IImageProjection? IPAdapterImageProjection => Unet.IPAdapterImageProjection;

    /// <summary>
    /// diffusers' <c>encode_image</c> and its use in the SDXL <c>__call__</c>s (the same as Stable Diffusion's): with
    /// guidance [negative; positive]; the loop passes them as <c>added_cond_kwargs["image_embeds"]</c> next to
    /// <c>text_embeds</c> and <c>time_ids</c>. Null without an image.
    /// </summary>
    private protected Tensor? EncodeIPAdapterImage(ImageInput image, int numImagesPerPrompt, bool cfg) =>
        IPAdapterSupport.Encode(ClassName, Unet, ImageEncoder, FeatureExtractor, image, numImagesPerPrompt, cfg);
}
