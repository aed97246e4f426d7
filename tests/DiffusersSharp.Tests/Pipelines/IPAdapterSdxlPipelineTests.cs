using DiffusersSharp.Imaging;
using DiffusersSharp.Models;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Tests.Support;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Pipelines;

/// <summary>
/// The SDXL pipelines with diffusers 0.25.1's <c>ip_adapter_image</c> (txt2img, img2img, inpaint, ControlNet) against the
/// real diffusers runs of tests/golden/ip-adapter (make.py's sdxl_runs): tiny-sdxl with SDXL-width adapters
/// (ip-adapter/sdxl/, cross_attention_dim 48, 17 cross-attentions), the image embeds in <c>added_cond_kwargs</c> next to
/// <c>text_embeds</c> and <c>time_ids</c>; prompt and pooled embeds from tiny-sdxl-expected (real transformers).
/// </summary>
public class IPAdapterSdxlPipelineTests
{
    private const string Expected = "ip-adapter/ip-adapter-expected.safetensors";
    private const string Embeds = "tiny-sdxl-expected.safetensors";

    /// <summary>A whole pipeline run (decoded images in [0, 1]).</summary>
    private const double Trajectory = 1e-4;

    [Theory]
    [InlineData("sdxl_basic", "ip-adapter-sdxl-basic.bin")]
    [InlineData("sdxl_plus_scale_0.7_n2", "ip-adapter-sdxl-plus.safetensors")]
    [InlineData("sdxl_img2img_basic", "ip-adapter-sdxl-basic.safetensors")]
    [InlineData("sdxl_inpaint_plus", "ip-adapter-sdxl-plus.bin")]
    [InlineData("sdxl_controlnet_basic", "ip-adapter-sdxl-basic.bin")]
    public void EverySdxlPipelineTakesAnImagePrompt(string run, string file)
    {
        var ip = Image.LoadImage(Golden.Path("ip-adapter", "ip-image.png"));
        var init = Image.LoadImage(Golden.Path("img2img-init.png"));
        var mask = Image.LoadImage(Golden.Path("inpaint-mask.png"));
        ImageInput[] edges = [Image.LoadImage(Golden.Path("controlnet-edges.png"))];
        using var hidden = Golden.Tensor(Embeds, "pipeline/txt2img_default/unet_encoder_hidden_states");
        using var pooled = Golden.Tensor(Embeds, "pipeline/txt2img_default/unet_added_text_embeds");
        using var pe = hidden.narrow(0, 1, 1);
        using var npe = hidden.narrow(0, 0, 1);
        using var ppe = pooled.narrow(0, 1, 1);
        using var nppe = pooled.narrow(0, 0, 1);
        string sdxl = StableDiffusionXLPipelineTests.Base;
        using StableDiffusionXLPipelineBase pipe = run switch
        {
            "sdxl_img2img_basic" => StableDiffusionXLImg2ImgPipeline.FromPretrained(sdxl),
            "sdxl_inpaint_plus" => StableDiffusionXLInpaintPipeline.FromPretrained(sdxl),
            "sdxl_controlnet_basic" => StableDiffusionXLControlNetPipeline.FromPretrained(sdxl,
                ControlNetModel.FromPretrained(Golden.Path("sdxl-controlnet-img2img", "controlnet"))),
            _ => StableDiffusionXLPipeline.FromPretrained(sdxl),
        };
        // the golden runs hand diffusers the encoder (image_encoder=...); its folder is the SD adapters' one
        pipe.ImageEncoder = CLIPVisionModelWithProjection.FromPretrained(Golden.Path("ip-adapter", "image_encoder"));
        pipe.LoadIPAdapter(Golden.Path("ip-adapter"), "sdxl", file);
        Assert.Equal(32, pipe.FeatureExtractor!.CropHeight);
        double scale = run.Contains("scale_0.7", StringComparison.Ordinal) ? 0.7 : 1.0;
        pipe.SetIPAdapterScale(scale);
        using var o = pipe switch
        {
            StableDiffusionXLPipeline p => p.Generate(promptEmbeds: pe, negativePromptEmbeds: npe, pooledPromptEmbeds: ppe,
                negativePooledPromptEmbeds: nppe, numInferenceSteps: 3, guidanceScale: 5.0, numImagesPerPrompt: scale == 1.0 ? 1 : 2,
                seed: 0, outputType: OutputType.Np, ipAdapterImage: ip),
            StableDiffusionXLImg2ImgPipeline p => p.Generate(promptEmbeds: pe, negativePromptEmbeds: npe, pooledPromptEmbeds: ppe,
                negativePooledPromptEmbeds: nppe, image: init, strength: 0.6, numInferenceSteps: 4, guidanceScale: 5.0, seed: 0,
                outputType: OutputType.Np, ipAdapterImage: ip),
            StableDiffusionXLInpaintPipeline p => p.Generate(promptEmbeds: pe, negativePromptEmbeds: npe, pooledPromptEmbeds: ppe,
                negativePooledPromptEmbeds: nppe, image: init, maskImage: mask, strength: 1.0, height: 64, width: 64,
                numInferenceSteps: 3, guidanceScale: 5.0, seed: 0, outputType: OutputType.Np, ipAdapterImage: ip),
            StableDiffusionXLControlNetPipeline p => p.Generate(promptEmbeds: pe, negativePromptEmbeds: npe, pooledPromptEmbeds: ppe,
                negativePooledPromptEmbeds: nppe, image: edges, height: 64, width: 64, numInferenceSteps: 3, guidanceScale: 5.0,
                seed: 0, outputType: OutputType.Np, ipAdapterImage: ip),
            _ => throw new InvalidOperationException(run),
        };
        Tol.Close(o.Array!, Golden.Tensor(Expected, $"pipeline/{run}/images"), Trajectory, run);
    }

    /// <summary>
    /// With no encoder set, LoadIPAdapter loads <c>{subfolder}/image_encoder</c> (h94's <c>sdxl_models/image_encoder</c>)
    /// into the pipeline, which owns it: a component, disposed with the pipeline.
    /// </summary>
    [Fact]
    public void TheSdxlPipelineLoadsAndDisposesTheImageEncoder()
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(Path.Combine(dir.Path, "sdxl_models"));
        File.Copy(Golden.Path("ip-adapter", "sdxl", "ip-adapter-sdxl-basic.safetensors"), Path.Combine(dir.Path, "sdxl_models", "a.safetensors"));
        CopyDir(Golden.Path("ip-adapter", "image_encoder"), Path.Combine(dir.Path, "sdxl_models", "image_encoder"));
        var pipe = StableDiffusionXLPipeline.FromPretrained(StableDiffusionXLPipelineTests.Base);
        pipe.LoadIPAdapter(dir.Path, "sdxl_models", "a.safetensors");
        var encoder = pipe.ImageEncoder!;
        Assert.Same(encoder, pipe.Components["image_encoder"]);
        Assert.Equal((32, 32), (pipe.FeatureExtractor!.ShortestEdge, pipe.FeatureExtractor.CropWidth));
        var weight = encoder.parameters().First();
        pipe.Dispose();
        Assert.True(weight.IsInvalid, "the image encoder outlived its pipeline");
    }

    [Fact]
    public void AnSdxlImagePromptWithoutAnAdapterIsAClearError()
    {
        using var pipe = StableDiffusionXLImg2ImgPipeline.FromPretrained(StableDiffusionXLPipelineTests.Base);
        var image = Image.LoadImage(Golden.Path("ip-adapter", "ip-image.png"));
        var e = Assert.Throws<DiffusersException>(() => pipe.Generate("a cat", Image.LoadImage(Golden.Path("img2img-init.png")),
            numInferenceSteps: 2, ipAdapterImage: image));
        Assert.Equal("StableDiffusionXLImg2ImgPipeline: ipAdapterImage was given but no IP-Adapter is loaded (LoadIPAdapter first)", e.Message);
    }

    /// <summary>An SD 1.5-width adapter (cross_attention_dim 32) on tiny-sdxl (48) is refused naming the file and key.</summary>
    [Fact]
    public void AnSd15AdapterOnAnSdxlUnetNamesTheFileAndKey()
    {
        using var pipe = StableDiffusionXLPipeline.FromPretrained(StableDiffusionXLPipelineTests.Base);
        string file = Golden.Path("ip-adapter", "ip-adapter-basic.safetensors");
        var e = Assert.Throws<WeightsException>(() => pipe.LoadIPAdapter(Golden.Path("ip-adapter"), "", "ip-adapter-basic.safetensors"));
        Assert.Equal($"{file}: ip_adapter key '1.to_k_ip.weight' has shape [64, 32], down_blocks.1.attentions.0.transformer_blocks.0.attn2 needs [16, 48] (its width, the UNet's cross_attention_dim)", e.Message);
        Assert.Equal(("ip_adapter.1.to_k_ip.weight", file), (e.Key, e.FilePath));
        Assert.Null(pipe.ImageEncoder);
        Assert.Null(pipe.Unet.IPAdapterImageProjection);
    }

    private static void CopyDir(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(from)) File.Copy(f, Path.Combine(to, Path.GetFileName(f)));
    }
}
