using DiffusersSharp.Imaging;
using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// What every pipeline with diffusers 0.25.1's <c>ip_adapter_image</c> shares (Stable Diffusion 1.x/2.x and SDXL, the
/// ControlNet ones included): <c>load_ip_adapter</c> and <c>encode_image</c> as <c>__call__</c> uses it. The pipeline
/// bases hold the <c>image_encoder</c> and <c>feature_extractor</c> and call these.
/// </summary>
internal static class IPAdapterSupport
{
    /// <summary>
    /// diffusers' <c>load_ip_adapter</c>: the weights into <paramref name="unet"/>, and, when <paramref name="encoder"/>
    /// is null, the encoder of <c>{subfolder}/image_encoder</c> (UNet dtype and device) and, when
    /// <paramref name="featureExtractor"/> is null too, that folder's <c>preprocessor_config.json</c>; a feature
    /// extractor still missing is transformers' defaults at the encoder's <c>image_size</c>.
    /// </summary>
    public static (CLIPVisionModelWithProjection Encoder, CLIPImageProcessor FeatureExtractor) Load(UNet2DConditionModel unet,
        CLIPVisionModelWithProjection? encoder, CLIPImageProcessor? featureExtractor, string pathOrId, string? subfolder,
        string weightName, LoadOptions? options)
    {
        ArgumentException.ThrowIfNullOrEmpty(weightName);
        string file = IPAdapterFile.Locate(pathOrId, subfolder, weightName, options);
        using (torch.NewDisposeScope())   // the read tensors and the new modules' temporaries; the modules' weights are detached
        using (var weights = IPAdapterFile.Read(file))
            unet.LoadIPAdapter(file, weights.ImageProj, weights.IPAdapter);
        if (encoder is null)
        {
            if (File.Exists(Hub.UserPath.ExpandUser(pathOrId)))
                throw new DiffusersException($"{pathOrId}: `image_encoder` cannot be None when using IP Adapters: load the pipeline's ImageEncoder first, or give the folder or Hub id that holds {weightName} and image_encoder/");
            string encoderSub = string.IsNullOrEmpty(subfolder) ? "image_encoder" : subfolder.TrimEnd('/') + "/image_encoder";
            var o = (options ?? LoadOptions.Default) with { Dtype = unet.DType, Device = unet.Device };
            encoder = CLIPVisionModelWithProjection.FromPretrained(pathOrId, encoderSub, o);
            if (featureExtractor is null)
            {
                string? folder = null;
                try { folder = PretrainedLocator.Resolve(pathOrId, encoderSub, o); } catch (DiffusersException) { }
                featureExtractor = folder is not null && File.Exists(Path.Combine(folder, CLIPImageProcessor.ConfigName))
                    ? CLIPImageProcessor.FromPretrained(folder) : null;
            }
        }
        featureExtractor ??= new CLIPImageProcessor
        {
            ShortestEdge = encoder.Config.ImageSize,
            CropHeight = encoder.Config.ImageSize,
            CropWidth = encoder.Config.ImageSize,
        };
        return (encoder, featureExtractor);
    }

    /// <summary>
    /// diffusers' <c>encode_image</c> and its use in <c>__call__</c>: the image through <paramref name="featureExtractor"/>
    /// and <paramref name="encoder"/>; the image embeds (zeros for the negative) or, for adapters that read hidden states,
    /// the penultimate hidden states (those of a zeros image for the negative); each repeated
    /// <paramref name="numImagesPerPrompt"/> times; with guidance [negative; positive], in the UNet's dtype. Null without
    /// an image. <paramref name="embedsOnly"/>: the call passes no <c>output_hidden_states</c> (the caller has refused an
    /// adapter that reads hidden states).
    /// </summary>
    public static Tensor? Encode(string className, UNet2DConditionModel unet, CLIPVisionModelWithProjection? encoder,
        CLIPImageProcessor? featureExtractor, ImageInput image, int numImagesPerPrompt, bool cfg, bool embedsOnly = false)
    {
        if (image.IsNone) return null;
        var projection = Projection(className, unet);
        if (embedsOnly && projection.TakesHiddenStates)
            throw new DiffusersException($"{className}: the loaded IP-Adapter's {projection.GetType().Name} reads the image encoder's hidden states, and diffusers 0.25.1's {className} gives it the image embeds only (encode_image without output_hidden_states): use an adapter with an ImageProjection (ip-adapter_sd15), or {StableDiffusionControlNetPipeline.Name}");
        var enc = encoder ?? throw new DiffusersException($"{className}: ipAdapterImage needs an image encoder (ImageEncoder is null)");
        using var scope = torch.NewDisposeScope();
        var pixels = image.Tensor is { } t ? t : (featureExtractor ?? new CLIPImageProcessor()).Preprocess(image.Images!);
        Tensor positive, negative;
        if (projection.TakesHiddenStates)
        {
            using var o = enc.Forward(pixels, outputHiddenStates: true);
            using var z = enc.Forward(torch.zeros_like(pixels), outputHiddenStates: true);
            positive = o.HiddenStates![^2].clone();
            negative = z.HiddenStates![^2].clone();
        }
        else
        {
            using var o = enc.Forward(pixels);
            positive = o.ImageEmbeds.clone();
            negative = torch.zeros_like(positive);
        }
        positive = positive.repeat_interleave(numImagesPerPrompt, dim: 0);
        negative = negative.repeat_interleave(numImagesPerPrompt, dim: 0);
        var embeds = cfg ? torch.cat([negative, positive]) : positive;
        return embeds.to(unet.DType).MoveToOuterDisposeScope();
    }

    /// <summary>The loaded adapter's image projection, or the error that none is loaded.</summary>
    public static IImageProjection Projection(string className, UNet2DConditionModel unet) =>
        unet.IPAdapterImageProjection
        ?? throw new DiffusersException($"{className}: ipAdapterImage was given but no IP-Adapter is loaded (LoadIPAdapter first)");
}

/// <summary>
/// The IP-Adapter components a pipeline folder may list (diffusers' <c>save_pretrained</c> after <c>load_ip_adapter</c>
/// writes them): <c>image_encoder</c> (transformers <c>CLIPVisionModelWithProjection</c>) and <c>feature_extractor</c>
/// (<c>CLIPImageProcessor</c>). <c>[null, null]</c> entries and absent ones are nothing.
/// </summary>
internal static class IPAdapterComponents
{
    /// <summary>
    /// Whether the folder's <c>feature_extractor</c> is loaded: listed as <c>CLIPImageProcessor</c> and its
    /// <c>preprocessor_config.json</c> is there (Hub downloads leave it out, as diffusers leaves out a component passed
    /// as None; then it is logged as not loaded, as before).
    /// </summary>
    public static bool LoadsFeatureExtractor(string folder, PipelineIndex index) =>
        index.Component("feature_extractor") is { ClassName: "CLIPImageProcessor" }
        && File.Exists(Path.Combine(folder, "feature_extractor", CLIPImageProcessor.ConfigName));

    /// <summary>
    /// Loads what <paramref name="index"/> lists: the image encoder (in the UNet's dtype and on its device, registered with
    /// <paramref name="loaded"/>) and the feature extractor. An <c>image_encoder</c> of another class is logged as not
    /// loaded; a listed one whose folder is missing is a <see cref="ConfigException"/> naming it, as for other components.
    /// </summary>
    public static (CLIPVisionModelWithProjection? Encoder, CLIPImageProcessor? FeatureExtractor) Load(string folder, PipelineIndex index,
        UNet2DConditionModel unet, LoadOptions options, List<IDisposable> loaded, Action<string> log)
    {
        CLIPVisionModelWithProjection? encoder = null;
        if (index.Component("image_encoder") is { IsEmpty: false } c)
        {
            if (c.ClassName != "CLIPVisionModelWithProjection")
                log($"{index.Path}: the 'image_encoder' component ({c.Library}.{c.ClassName}) is not loaded or run by DiffusersSharp (it loads CLIPVisionModelWithProjection)");
            else
            {
                string sub = Path.Combine(folder, "image_encoder");
                if (!Directory.Exists(sub))
                    throw new ConfigException($"{folder}: the pipeline's 'image_encoder' component folder is missing ({sub}), though {index.Path} lists it")
                    { FilePath = sub, Key = "image_encoder" };
                encoder = CLIPVisionModelWithProjection.FromPretrained(folder, "image_encoder",
                    PipelineVariant.For(options, index, "image_encoder") with { Dtype = unet.DType, Device = unet.Device });
                loaded.Add(encoder);
            }
        }
        var featureExtractor = LoadsFeatureExtractor(folder, index) ? CLIPImageProcessor.FromPretrained(Path.Combine(folder, "feature_extractor")) : null;
        return (encoder, featureExtractor);
    }

    /// <summary>Gives <paramref name="pipeline"/> (an SD or SDXL pipeline: <see cref="IIPAdapterPipeline"/>) what <see cref="Load"/> loaded.</summary>
    public static T Attach<T>(T pipeline, CLIPVisionModelWithProjection? encoder, CLIPImageProcessor? featureExtractor)
        where T : IIPAdapterPipeline
    {
        pipeline.ImageEncoder = encoder;
        pipeline.FeatureExtractor = featureExtractor;
        return pipeline;
    }
}
