using DiffusersSharp.Imaging;
using DiffusersSharp.Models;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Pipelines;

/// <summary>
/// <see cref="StableDiffusionPipeline"/> with <c>ipAdapterImage</c> against the real diffusers 0.25.1 pipeline
/// (tests/golden/ip-adapter: <c>load_ip_adapter</c>, <c>encode_image</c>, the guided loop): the PNG goes through
/// <see cref="CLIPImageProcessor"/> and the image encoder that <see cref="StableDiffusionPipelineBase.LoadIPAdapter"/> loads
/// from the adapter folder's <c>image_encoder/</c>.
/// </summary>
public class IPAdapterPipelineTests
{
    private const string Expected = "ip-adapter/ip-adapter-expected.safetensors";

    /// <summary>A whole pipeline run (decoded images in [0, 1]).</summary>
    private const double Trajectory = 1e-4;

    [Theory]
    [InlineData("basic", "ip-adapter-basic.bin", 1.0, 1)]
    [InlineData("basic_scale_0.6_n2", "ip-adapter-basic.safetensors", 0.6, 2)]
    [InlineData("plus", "ip-adapter-plus.safetensors", 1.0, 1)]
    public void AnImagePromptGivesDiffusersImages(string run, string file, double scale, int n)
    {
        using var pipe = StableDiffusionPipeline.FromPretrained(Golden.Path("tiny-sd"));
        pipe.LoadIPAdapter(Golden.Path("ip-adapter"), "", file);
        pipe.SetIPAdapterScale(scale);
        Assert.NotNull(pipe.ImageEncoder);
        Assert.Equal((32, 32), (pipe.FeatureExtractor!.CropHeight, pipe.FeatureExtractor.ShortestEdge));
        var image = Image.LoadImage(Golden.Path("ip-adapter", "ip-image.png"));
        using var pe = Golden.Tensor("tiny-sd-expected.safetensors", "pipeline/ddim/prompt_embeds");
        using var npe = Golden.Tensor("tiny-sd-expected.safetensors", "pipeline/ddim/negative_prompt_embeds");
        var o = pipe.Generate(promptEmbeds: pe, negativePromptEmbeds: npe, numInferenceSteps: 3, guidanceScale: 7.5, height: 64, width: 64,
            numImagesPerPrompt: n, seed: 0, outputType: OutputType.Np, ipAdapterImage: image);
        Tol.Close(o.Array!, Golden.Tensor(Expected, $"pipeline/{run}/images"), Trajectory, run);
    }

    /// <summary>
    /// The other Stable Diffusion pipelines with diffusers 0.25.1's <c>ip_adapter_image</c> (the same encode_image; the
    /// ControlNet ones with tiny-sd-controlnet and controlnet-edges.png), each against the real diffusers run.
    /// </summary>
    [Theory]
    [InlineData("img2img_basic", "ip-adapter-basic.bin")]
    [InlineData("inpaint_plus", "ip-adapter-plus.bin")]
    [InlineData("controlnet_basic", "ip-adapter-basic.safetensors")]
    [InlineData("controlnet_img2img_basic", "ip-adapter-basic.bin")]
    [InlineData("controlnet_inpaint_plus", "ip-adapter-plus.safetensors")]
    public void EveryStableDiffusionPipelineTakesAnImagePrompt(string run, string file)
    {
        var ip = Image.LoadImage(Golden.Path("ip-adapter", "ip-image.png"));
        var init = Image.LoadImage(Golden.Path("img2img-init.png"));
        var mask = Image.LoadImage(Golden.Path("inpaint-mask.png"));
        ImageInput[] edges = [Image.LoadImage(Golden.Path("controlnet-edges.png"))];
        using var pe = Golden.Tensor("tiny-sd-expected.safetensors", "pipeline/ddim/prompt_embeds");
        using var npe = Golden.Tensor("tiny-sd-expected.safetensors", "pipeline/ddim/negative_prompt_embeds");
        string sd = Golden.Path("tiny-sd");
        using StableDiffusionPipelineBase pipe = run switch
        {
            "img2img_basic" => StableDiffusionImg2ImgPipeline.FromPretrained(sd),
            "inpaint_plus" => StableDiffusionInpaintPipeline.FromPretrained(sd),
            "controlnet_basic" => StableDiffusionControlNetPipeline.FromPretrained(sd, ControlNet()),
            "controlnet_img2img_basic" => StableDiffusionControlNetImg2ImgPipeline.FromPretrained(sd, ControlNet()),
            _ => StableDiffusionControlNetInpaintPipeline.FromPretrained(sd, ControlNet()),
        };
        pipe.LoadIPAdapter(Golden.Path("ip-adapter"), "", file);
        using var o = pipe switch
        {
            StableDiffusionImg2ImgPipeline p => p.Generate(promptEmbeds: pe, negativePromptEmbeds: npe, image: init, strength: 0.6,
                numInferenceSteps: 3, seed: 0, outputType: OutputType.Np, ipAdapterImage: ip),
            StableDiffusionInpaintPipeline p => p.Generate(promptEmbeds: pe, negativePromptEmbeds: npe, image: init, maskImage: mask,
                height: 64, width: 64, numInferenceSteps: 3, seed: 0, outputType: OutputType.Np, ipAdapterImage: ip),
            StableDiffusionControlNetPipeline p => p.Generate(promptEmbeds: pe, negativePromptEmbeds: npe, image: edges, height: 64,
                width: 64, numInferenceSteps: 3, seed: 0, outputType: OutputType.Np, ipAdapterImage: ip),
            StableDiffusionControlNetImg2ImgPipeline p => p.Generate(promptEmbeds: pe, negativePromptEmbeds: npe, image: init,
                controlImage: edges, strength: 0.6, numInferenceSteps: 3, seed: 0, outputType: OutputType.Np, ipAdapterImage: ip),
            StableDiffusionControlNetInpaintPipeline p => p.Generate(promptEmbeds: pe, negativePromptEmbeds: npe, image: init,
                maskImage: mask, controlImage: edges, height: 64, width: 64, numInferenceSteps: 3, seed: 0, outputType: OutputType.Np,
                ipAdapterImage: ip),
            _ => throw new InvalidOperationException(run),
        };
        Tol.Close(o.Array!, Golden.Tensor(Expected, $"pipeline/{run}/images"), Trajectory, run);
    }

    /// <summary>
    /// StableDiffusionInstructPix2PixPipeline with an image prompt (diffusers 0.25.1: with guidance the image embeds are
    /// [image, negative, negative], the order of its three-way batch) on tiny-sd-instruct-pix2pix, whose UNet has
    /// tiny-sd's cross-attentions, against the real diffusers runs (EulerAncestral, img2img-init.png, 3 steps).
    /// </summary>
    [Theory]
    [InlineData("pix2pix_basic", "ip-adapter-basic.bin", 7.5, 1)]
    [InlineData("pix2pix_plus_n2", "ip-adapter-plus.safetensors", 7.5, 2)]
    [InlineData("pix2pix_basic_noguidance", "ip-adapter-basic.safetensors", 1.0, 1)]
    public void InstructPix2PixTakesAnImagePrompt(string run, string file, double guidance, int n)
    {
        using var pipe = StableDiffusionInstructPix2PixPipeline.FromPretrained(Golden.Path("tiny-sd-instruct-pix2pix"));
        pipe.LoadIPAdapter(Golden.Path("ip-adapter"), "", file);
        using var pe = Golden.Tensor("tiny-sd-expected.safetensors", "pipeline/ddim/prompt_embeds");
        using var npe = Golden.Tensor("tiny-sd-expected.safetensors", "pipeline/ddim/negative_prompt_embeds");
        using var o = pipe.Generate(promptEmbeds: pe, negativePromptEmbeds: npe, image: Image.LoadImage(Golden.Path("img2img-init.png")),
            numInferenceSteps: 3, guidanceScale: guidance, imageGuidanceScale: 1.5, numImagesPerPrompt: n, seed: 0, outputType: OutputType.Np,
            ipAdapterImage: Image.LoadImage(Golden.Path("ip-adapter", "ip-image.png")));
        Tol.Close(o.Array!, Golden.Tensor(Expected, $"pipeline/{run}/images"), Trajectory, run);
    }

    /// <summary>
    /// diffusers 0.25.1's ControlNet img2img calls encode_image without output_hidden_states: an adapter whose projection
    /// reads hidden states (the Resampler of IP-Adapter Plus) gets the image embeds and fails there; here a message says why.
    /// </summary>
    [Fact]
    public void ControlNetImg2ImgRefusesAnAdapterThatReadsHiddenStates()
    {
        using var pipe = StableDiffusionControlNetImg2ImgPipeline.FromPretrained(Golden.Path("tiny-sd"), ControlNet());
        pipe.LoadIPAdapter(Golden.Path("ip-adapter"), "", "ip-adapter-plus.bin");
        var init = Image.LoadImage(Golden.Path("img2img-init.png"));
        var e = Assert.Throws<DiffusersException>(() => pipe.Generate("a cat", init, [Image.LoadImage(Golden.Path("controlnet-edges.png"))],
            numInferenceSteps: 1, ipAdapterImage: Image.LoadImage(Golden.Path("ip-adapter", "ip-image.png"))));
        Assert.Equal("StableDiffusionControlNetImg2ImgPipeline: the loaded IP-Adapter's Resampler reads the image encoder's hidden states, and diffusers 0.25.1's StableDiffusionControlNetImg2ImgPipeline gives it the image embeds only (encode_image without output_hidden_states): use an adapter with an ImageProjection (ip-adapter_sd15), or StableDiffusionControlNetPipeline", e.Message);
    }

    /// <summary>
    /// The image encoder LoadIPAdapter loads is the pipeline's: a component of every SD pipeline class (those that add their
    /// own components through the base's, the ControlNet ones, included), disposed with it.
    /// </summary>
    [Theory]
    [InlineData("sd")]
    [InlineData("controlnet")]
    [InlineData("controlnet-inpaint")]
    [InlineData("controlnet-img2img")]
    public void ThePipelineDisposesTheImageEncoderItLoaded(string kind)
    {
        string sd = Golden.Path("tiny-sd");
        StableDiffusionPipelineBase pipe = kind switch
        {
            "sd" => StableDiffusionPipeline.FromPretrained(sd),
            "controlnet" => StableDiffusionControlNetPipeline.FromPretrained(sd, ControlNet()),
            "controlnet-inpaint" => StableDiffusionControlNetInpaintPipeline.FromPretrained(sd, ControlNet()),
            _ => StableDiffusionControlNetImg2ImgPipeline.FromPretrained(sd, ControlNet()),
        };
        pipe.LoadIPAdapter(Golden.Path("ip-adapter"), "", "ip-adapter-basic.bin");
        var encoder = pipe.ImageEncoder!;
        Assert.Same(encoder, pipe.Components["image_encoder"]);
        var weight = encoder.parameters().First();
        Assert.False(weight.IsInvalid);
        pipe.Dispose();
        Assert.True(weight.IsInvalid, $"{pipe.ClassName}: the image encoder outlived its pipeline");
    }

    private static ControlNetModel ControlNet() => ControlNetModel.FromPretrained(Golden.Path("tiny-sd-controlnet"));

    [Fact]
    public void AnImageWithoutALoadedAdapterIsAClearError()
    {
        using var pipe = StableDiffusionPipeline.FromPretrained(Golden.Path("tiny-sd"));
        var image = Image.LoadImage(Golden.Path("ip-adapter", "ip-image.png"));
        var e = Assert.Throws<DiffusersException>(() => pipe.Generate("a cat", numInferenceSteps: 1, ipAdapterImage: image));
        Assert.Equal("StableDiffusionPipeline: ipAdapterImage was given but no IP-Adapter is loaded (LoadIPAdapter first)", e.Message);
    }
}
