using DiffusersSharp.Imaging;
using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Tests.Models;
using DiffusersSharp.Tests.Support;
using DiffusersSharp.Text;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Pipelines;

/// <summary>
/// StableDiffusionAdapterPipeline and StableDiffusionXLAdapterPipeline against diffusers 0.25.1 (tests/golden/t2i-adapter,
/// made by its make.py): the final latents and the images of SD runs with a full adapter (guidance, a scale of 0.6, no
/// guidance with two images per prompt), a light adapter and a MultiAdapter of two (RGB and greyscale control images),
/// and SDXL runs with full_adapter_xl, the adapter acting in every step and in the first half only. The prompt
/// embeddings are real transformers outputs stored in tiny-sd-expected / tiny-sdxl-expected.
/// </summary>
public class T2IAdapterPipelineTests(ITestOutputHelper log)
{
    private const string Expected = T2IAdapterGoldenTests.Expected;
    // whole trajectories (several steps of UNet + adapter states): the bound of the other SD runs
    private const double Trajectory = 1e-4;

    internal static Image Edges => Image.Load(Golden.Path("controlnet-edges.png"));

    internal static StableDiffusionAdapterPipeline SdPipe(nn.Module adapter)
    {
        string sd = Golden.Path("tiny-sd");
        return new StableDiffusionAdapterPipeline(AutoencoderKL.FromPretrained(sd, "vae"), CLIPTextModel.FromPretrained(sd, "text_encoder"),
            CLIPTokenizer.FromPretrained(sd, "tokenizer"), UNet2DConditionModel.FromPretrained(T2IAdapterGoldenTests.Folder("sd-unet")),
            adapter, SchedulerFactory.FromPretrained(sd, "scheduler"));
    }

    internal static StableDiffusionXLAdapterPipeline SdxlPipe(nn.Module adapter) =>
        StableDiffusionXLAdapterPipeline.FromPretrained(StableDiffusionXLPipelineTests.Base, adapter);

    /// <summary>
    /// Makes a copy of tiny-sd (<paramref name="sdxl"/>: tiny-sdxl) in <paramref name="folder"/> an adapter pipeline folder
    /// as diffusers' save_pretrained writes it: the tiny adapter in <c>adapter</c> (SD: also the SD-order UNet, which the
    /// full adapter fits). model_index.json is left to the caller.
    /// </summary>
    internal static void AddAdapter(string folder, bool sdxl)
    {
        CopyFolder(T2IAdapterGoldenTests.Folder(sdxl ? "sdxl-full" : "sd-full"), Path.Combine(folder, "adapter"));
        if (!sdxl)
        {
            Directory.Delete(Path.Combine(folder, "unet"), recursive: true);
            CopyFolder(T2IAdapterGoldenTests.Folder("sd-unet"), Path.Combine(folder, "unet"));
        }
    }

    private static void CopyFolder(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(from)) File.Copy(f, Path.Combine(to, Path.GetFileName(f)));
    }

    private void CheckRun(string run, SdTrace trace, ImagePipelineOutput result)
    {
        using var g = new SafetensorsLike(Expected);
        SdTrace.Check(log, g, $"pipeline/{run}/latents", trace.One("latents_after_step"), Trajectory);
        SdTrace.CheckImages(log, g, $"pipeline/{run}/image", result.Array!);
    }

    private static (Tensor Prompt, Tensor Negative) SdEmbeds()
    {
        using var f = Golden.Open("tiny-sd-expected.safetensors");
        return (f.Load("pipeline/pndm_default/prompt_embeds"), f.Load("pipeline/pndm_default/negative_prompt_embeds"));
    }

    [Theory]
    [InlineData("sd-full-cfg", "sd-full", 7.5, null, 1)]
    [InlineData("sd-full-scale0.6", "sd-full", 7.5, 0.6, 1)]
    [InlineData("sd-full-nocfg-2images", "sd-full", 1.0, null, 2)]
    [InlineData("sd-light-cfg", "sd-light", 7.5, null, 1)]
    public void StableDiffusionRunsMatchDiffusers(string run, string adapter, double guidance, double? scale, int imagesPerPrompt)
    {
        using var pipe = SdPipe(T2IAdapterGoldenTests.Load(adapter));
        using var trace = new SdTrace(pipe);
        var (prompt, negative) = SdEmbeds();
        using var result = pipe.Generate(image: [Edges], height: 32, width: 32, numInferenceSteps: 3, guidanceScale: guidance,
            numImagesPerPrompt: imagesPerPrompt, seed: 0, promptEmbeds: prompt, negativePromptEmbeds: guidance > 1 ? negative : null,
            outputType: OutputType.Np, adapterConditioningScale: scale is double s ? [s] : null);
        Assert.Equal(guidance > 1 ? 2 : imagesPerPrompt, trace.First("adapter_state_0").shape[0]);
        CheckRun(run, trace, result);
    }

    [Fact]
    public void MultiAdapterRunMatchesDiffusers()
    {
        using var pipe = SdPipe(new MultiAdapter([T2IAdapterGoldenTests.Load("sd-full"), T2IAdapterGoldenTests.Load("sd-full-gray")]));
        using var trace = new SdTrace(pipe);
        var (prompt, negative) = SdEmbeds();
        var gray = Image.Load(Golden.Path("controlnet-edges.png"), grayscale: true);
        using var result = pipe.Generate(image: [Edges, gray], height: 32, width: 32, numInferenceSteps: 3, guidanceScale: 7.5, seed: 0,
            promptEmbeds: prompt, negativePromptEmbeds: negative, outputType: OutputType.Np, adapterConditioningScale: [0.8, 0.4]);
        CheckRun("sd-multi", trace, result);
    }

    [Theory]
    [InlineData("sdxl-full-default", null, 1.0)]
    [InlineData("sdxl-full-factor0.5", 0.9, 0.5)]
    public void StableDiffusionXLRunsMatchDiffusers(string run, double? scale, double factor)
    {
        using var pipe = SdxlPipe(T2IAdapterGoldenTests.Load("sdxl-full"));
        using var trace = new SdTrace(pipe);
        using var f = Golden.Open(StableDiffusionXLPipelineTests.Expected);
        using var embeds = f.Load("pipeline/txt2img_default/unet_encoder_hidden_states");
        using var pooled = f.Load("pipeline/txt2img_default/unet_added_text_embeds");
        using var result = pipe.Generate(image: [Edges], height: 32, width: 32, numInferenceSteps: 4, guidanceScale: 5.0, seed: 0,
            promptEmbeds: embeds[1..], negativePromptEmbeds: embeds[..1], pooledPromptEmbeds: pooled[1..],
            negativePooledPromptEmbeds: pooled[..1], outputType: OutputType.Np,
            adapterConditioningScale: scale is double s ? [s] : null, adapterConditioningFactor: factor);
        CheckRun(run, trace, result);
    }

    [Fact]
    public void TheOutputSizeDefaultsToTheControlImageRoundedDownToTheDownscaleFactor()
    {
        using var pipe = SdPipe(T2IAdapterGoldenTests.Load("sd-full"));
        var (prompt, _) = SdEmbeds();
        var image = ImageResize.Resize(Edges, 41, 33);   // 41x33 → 40x32 (multiples of downscale_factor 2, then of 8)
        using var result = pipe.Generate(image: [image], numInferenceSteps: 1, guidanceScale: 1.0, seed: 0, promptEmbeds: prompt,
            outputType: OutputType.Latent);
        Assert.Equal([1L, 4, 16, 20], result.Tensor!.shape);
    }
}
