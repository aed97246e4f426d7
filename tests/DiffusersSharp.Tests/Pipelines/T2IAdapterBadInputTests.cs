using System.Text.Json.Nodes;
using DiffusersSharp.Imaging;
using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Tests.Models;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Pipelines;

/// <summary>The T2I-Adapter pipelines refuse what does not fit with messages that name it, and load from pipeline folders.</summary>
public class T2IAdapterBadInputTests
{
    private static (Tensor Prompt, Tensor Negative) SdEmbeds()
    {
        using var f = Golden.Open("tiny-sd-expected.safetensors");
        return (f.Load("pipeline/pndm_default/prompt_embeds"), f.Load("pipeline/pndm_default/negative_prompt_embeds"));
    }

    [Fact]
    public void AnAdapterWhoseChannelsDoNotFitTheUNetIsAConfigError()
    {
        var e = Assert.Throws<ConfigException>(() => T2IAdapterPipelineTests.SdPipe(T2IAdapterGoldenTests.Load("sdxl-full")));
        Assert.Equal("StableDiffusionAdapterPipeline: adapter 0 (full_adapter_xl, channels [8, 16, 16, 16]) gives states of [8, 16, 16, 16] channels, " +
            "but the UNet's down blocks have block_out_channels [32, 64]: the adapter was made for another model", e.Message);
        Assert.Equal("channels", e.Key);
    }

    [Fact]
    public void AnAdapterWhoseStatesHaveAnotherSizeThanTheUNetsBlocksIsNamedAtTheFirstStep()
    {
        // tiny-sd's own UNet starts with a DownBlock2D, which takes its state after its downsampler (half the size)
        string sd = StableDiffusionPipelineTests.Model;
        using var pipe = StableDiffusionAdapterPipeline.FromPretrained(sd, T2IAdapterGoldenTests.Load("sd-full"));
        var (prompt, _) = SdEmbeds();
        var e = Assert.Throws<ArgumentException>(() => pipe.Generate(image: [T2IAdapterPipelineTests.Edges], height: 32, width: 32,
            numInferenceSteps: 1, guidanceScale: 1.0, promptEmbeds: prompt, outputType: OutputType.Latent));
        Assert.StartsWith("UNet2DConditionModel: a down_intrablock_additional_residuals tensor has shape [1, 32, 16, 16], but the down block it goes into gives [1, 32, 8, 8]", e.Message);
    }

    [Fact]
    public void ControlImagesMustMatchTheAdaptersInNumberAndChannels()
    {
        using var pipe = T2IAdapterPipelineTests.SdPipe(T2IAdapterGoldenTests.Load("sd-full"));
        var (prompt, negative) = SdEmbeds();
        var gray = Image.Load(Golden.Path("controlnet-edges.png"), grayscale: true);
        var e = Assert.Throws<DiffusersException>(() => pipe.Generate(image: [gray], height: 32, width: 32, numInferenceSteps: 1,
            promptEmbeds: prompt, negativePromptEmbeds: negative));
        Assert.Equal("StableDiffusionAdapterPipeline: image 0 has 1 channel(s), adapter 0 takes 3 (in_channels)", e.Message);
        e = Assert.Throws<DiffusersException>(() => pipe.Generate(image: null, promptEmbeds: prompt, negativePromptEmbeds: negative));
        Assert.Equal("StableDiffusionAdapterPipeline: an image is required for each of the 1 adapter(s)", e.Message);
        e = Assert.Throws<DiffusersException>(() => pipe.Generate(image: [T2IAdapterPipelineTests.Edges], adapterConditioningScale: [0.5, 0.5],
            promptEmbeds: prompt, negativePromptEmbeds: negative));
        Assert.Equal("StableDiffusionAdapterPipeline: adapter_conditioning_scale has 2 values, but there are 1 adapters; pass one value, or one per adapter", e.Message);
        using var small = torch.rand(1, 3, 16, 16);
        e = Assert.Throws<DiffusersException>(() => pipe.Generate(image: [small], height: 32, width: 32, numInferenceSteps: 1,
            promptEmbeds: prompt, negativePromptEmbeds: negative));
        Assert.Equal("StableDiffusionAdapterPipeline: image 0 is a tensor of 16x16, but the output is 32x32; diffusers does not resize tensors: give one of the output size", e.Message);
    }

    [Fact]
    public void AMultiAdapterNeedsOneImagePerAdapter()
    {
        using var pipe = T2IAdapterPipelineTests.SdPipe(new MultiAdapter([T2IAdapterGoldenTests.Load("sd-full"), T2IAdapterGoldenTests.Load("sd-full-gray")]));
        var (prompt, negative) = SdEmbeds();
        var e = Assert.Throws<DiffusersException>(() => pipe.Generate(image: [T2IAdapterPipelineTests.Edges], promptEmbeds: prompt, negativePromptEmbeds: negative));
        Assert.Equal("StableDiffusionAdapterPipeline: MultiAdapter requires passing the same number of images as adapters. Given 1 images and 2 adapters.", e.Message);
    }

    [Fact]
    public void TheAdapterConditioningFactorMustBeAFraction()
    {
        using var pipe = T2IAdapterPipelineTests.SdxlPipe(T2IAdapterGoldenTests.Load("sdxl-full"));
        var e = Assert.Throws<DiffusersException>(() => pipe.Generate("a cat", [T2IAdapterPipelineTests.Edges], height: 32, width: 32,
            adapterConditioningFactor: 1.5));
        Assert.Equal("StableDiffusionXLAdapterPipeline: adapter_conditioning_factor must be between 0 and 1 (the fraction of the steps the adapter acts in), got 1.5", e.Message);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void APipelineFolderWithAnAdapterLoadsThroughDiffusionPipeline(bool sdxl)
    {
        using var dir = new TempDir();
        string source = sdxl ? StableDiffusionXLPipelineTests.Base : StableDiffusionPipelineTests.Model;
        foreach (var f in Directory.GetFiles(source, "*", SearchOption.AllDirectories))
        {
            string to = Path.Combine(dir.Path, Path.GetRelativePath(source, f));
            Directory.CreateDirectory(Path.GetDirectoryName(to)!);
            File.Copy(f, to);
        }
        T2IAdapterPipelineTests.AddAdapter(dir.Path, sdxl);
        string name = sdxl ? StableDiffusionXLAdapterPipeline.Name : StableDiffusionAdapterPipeline.Name;
        var index = JsonNode.Parse(File.ReadAllText(dir.File("model_index.json")))!.AsObject();
        index["_class_name"] = name;
        index["adapter"] = new JsonArray("diffusers", "T2IAdapter");
        File.WriteAllText(dir.File("model_index.json"), index.ToJsonString());
        using var pipe = DiffusionPipeline.FromPretrained(dir.Path);
        Assert.Equal(name, pipe.ClassName);
        var adapter = Assert.IsType<T2IAdapter>(pipe.Components["adapter"]);
        Assert.Equal(sdxl ? "full_adapter_xl" : "full_adapter", adapter.Config.AdapterType);

        // a MultiAdapter's second adapter in adapter_1
        if (sdxl) return;
        index["adapter"] = new JsonArray("diffusers", "MultiAdapter");
        File.WriteAllText(dir.File("model_index.json"), index.ToJsonString());
        var e = Assert.Throws<ConfigException>(() => StableDiffusionAdapterPipeline.FromPretrained(dir.Path));
        Assert.Equal($"{dir.File("model_index.json")}: the adapter is a MultiAdapter, but only the folder 'adapter' exists (a MultiAdapter needs adapter_1 too)", e.Message);
        Directory.CreateDirectory(dir.File("adapter_1"));
        foreach (var f in Directory.GetFiles(dir.File("adapter"))) File.Copy(f, Path.Combine(dir.File("adapter_1"), Path.GetFileName(f)));
        using var multi = StableDiffusionAdapterPipeline.FromPretrained(dir.Path);
        Assert.Equal(2, Assert.IsType<MultiAdapter>(multi.Adapter).Adapters.Count);
    }
}
