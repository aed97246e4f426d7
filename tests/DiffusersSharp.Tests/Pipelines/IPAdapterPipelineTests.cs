using DiffusersSharp.Imaging;
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

    [Fact]
    public void AnImageWithoutALoadedAdapterIsAClearError()
    {
        using var pipe = StableDiffusionPipeline.FromPretrained(Golden.Path("tiny-sd"));
        var image = Image.LoadImage(Golden.Path("ip-adapter", "ip-image.png"));
        var e = Assert.Throws<DiffusersException>(() => pipe.Generate("a cat", numInferenceSteps: 1, ipAdapterImage: image));
        Assert.Equal("StableDiffusionPipeline: ipAdapterImage was given but no IP-Adapter is loaded (LoadIPAdapter first)", e.Message);
    }
}
