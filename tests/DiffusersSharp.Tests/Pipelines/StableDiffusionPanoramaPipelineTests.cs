using System.Text.Json.Nodes;
using DiffusersSharp.Models;
using DiffusersSharp.Imaging;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Tests.Support;
using DiffusersSharp.Text;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Pipelines;

/// <summary>
/// StableDiffusionPanoramaPipeline (MultiDiffusion) against diffusers 0.25.1 (tests/golden/panorama, made by its make.py):
/// tiny-sd's UNet with a tiny VAE of scale factor 8 (tiny-vae8, so that diffusers' get_views, which measures in pixels / 8,
/// meets the latents), 16 × 640 pixels = 2 × 80 latents: three windows (cut to the 2 rows), ten with circular padding. DDIM with one and two
/// windows per UNet call, circular padding with one and three (an uneven last batch), eta with two images per prompt, no
/// guidance, PNDM and DPM-Solver multistep (one scheduler state per batch of windows), and tiny-sd's own VAE (scale 2), whose
/// latents one window covers only in part. The prompt embeddings are real transformers outputs stored in tiny-sd-expected.
/// </summary>
public class StableDiffusionPanoramaPipelineTests(ITestOutputHelper log)
{
    private const string Expected = "panorama/panorama-expected.safetensors";
    // whole trajectories (several steps of UNet calls averaged over windows): the bound of the other SD runs
    private const double Trajectory = 1e-4;

    internal static string Vae8 => Golden.Path("panorama", "tiny-vae8");

    /// <summary>tiny-sd's text encoder, tokenizer and UNet with <paramref name="vae"/> and a <paramref name="scheduler"/> made
    /// from tiny-sd's scheduler config (diffusers' <c>X.from_pretrained("tiny-sd/scheduler")</c>).</summary>
    internal static StableDiffusionPanoramaPipeline Pipe(string scheduler = DDIMScheduler.Name, string? vae = null)
    {
        string sd = Golden.Path("tiny-sd");
        return new StableDiffusionPanoramaPipeline(vae is null ? AutoencoderKL.FromPretrained(Vae8) : AutoencoderKL.FromPretrained(sd, vae),
            CLIPTextModel.FromPretrained(sd, "text_encoder"), CLIPTokenizer.FromPretrained(sd, "tokenizer"),
            UNet2DConditionModel.FromPretrained(sd, "unet"), SchedulerFactory.FromConfig(scheduler, SchedulerFactory.ReadConfigFile(sd, "scheduler")));
    }

    private static (Tensor Prompt, Tensor Negative) Embeds()
    {
        using var f = Golden.Open("tiny-sd-expected.safetensors");
        return (f.Load("pipeline/pndm_default/prompt_embeds"), f.Load("pipeline/pndm_default/negative_prompt_embeds"));
    }

    private ImagePipelineOutput Run(StableDiffusionPanoramaPipeline pipe, string run, int steps = 2, double guidance = 7.5, int viewBatchSize = 1,
        bool circular = false, double eta = 0, int images = 1, int height = 16, int width = 640, StepEndCallback? callback = null,
        ImageInput ipAdapterImage = default)
    {
        var (prompt, negative) = Embeds();
        using var trace = new SdTrace(pipe);
        using var g = new SafetensorsLike(Expected);
        bool decode = g.Contains($"{run}/image");
        var result = pipe.Generate(promptEmbeds: prompt, negativePromptEmbeds: guidance > 1 ? negative : null, height: height, width: width,
            numInferenceSteps: steps, guidanceScale: guidance, viewBatchSize: viewBatchSize, circularPadding: circular, eta: eta,
            numImagesPerPrompt: images, seed: 0, outputType: decode ? OutputType.Np : OutputType.Latent, callbackOnStepEnd: callback,
            ipAdapterImage: ipAdapterImage);
        // diffusers' legacy callback skips PNDM's warm-up step (its 4 steps run 5 timesteps): its first call follows the second
        int warmup = pipe.Scheduler.ClassName == PNDMScheduler.Name ? 1 : 0;
        Assert.Equal(steps + warmup, trace.Count("latents_after_step"));
        using var stacked = trace.Stacked("latents_after_step");
        SdTrace.Check(log, g, $"{run}/latents_step0", stacked[warmup], Trajectory);
        SdTrace.Check(log, g, $"{run}/latents", trace.One("latents_after_step"), Trajectory);
        if (decode) SdTrace.CheckImages(log, g, $"{run}/image", result.Array!);
        return result;
    }

    [Theory]
    [InlineData("ddim-vb2", DDIMScheduler.Name, 2, 7.5, 2, false)]
    [InlineData("ddim-circular", DDIMScheduler.Name, 2, 7.5, 1, true)]
    [InlineData("ddim-circular-vb3", DDIMScheduler.Name, 2, 7.5, 3, true)]
    [InlineData("ddim-nocfg", DDIMScheduler.Name, 2, 1.0, 1, false)]
    [InlineData("pndm", PNDMScheduler.Name, 4, 7.5, 1, false)]
    [InlineData("dpmsolver-multistep", DPMSolverMultistepScheduler.Name, 4, 7.5, 1, false)]
    [InlineData("dpmsolver-multistep-vb2", DPMSolverMultistepScheduler.Name, 4, 7.5, 2, false)]
    public void PanoramasMatchDiffusers(string run, string scheduler, int steps, double guidance, int viewBatchSize, bool circular)
    {
        using var pipe = Pipe(scheduler);
        using var result = Run(pipe, run, steps, guidance, viewBatchSize, circular);
    }

    /// <summary>
    /// An image prompt: tests/golden/ip-adapter's basic adapter (its image encoder loaded with it) and ip-image.png, one
    /// window per UNet call, gives diffusers' panorama (its latents differ from the plain DDIM run's by up to 4.4).
    /// </summary>
    [Fact]
    public void AnImagePromptOfALoadedIPAdapterGivesDiffusersPanorama()
    {
        using var pipe = Pipe();
        pipe.LoadIPAdapter(Golden.Path("ip-adapter"), "", "ip-adapter-basic.bin");
        using var result = Run(pipe, "ddim-ip-adapter-basic", ipAdapterImage: Image.LoadImage(Golden.Path("ip-adapter", "ip-image.png")));
    }

    [Fact]
    public void TwoImagesWithEtaPairTheGuidanceRowsAsDiffusersDoesAndSaySo()
    {
        using var pipe = Pipe();
        var logs = new List<string>();
        pipe.Log = logs.Add;
        using var result = Run(pipe, "ddim-eta0.5-2images-vb2", viewBatchSize: 2, eta: 0.5, images: 2);
        Assert.Equal(
            "StableDiffusionPanoramaPipeline: 2 images with guidance: as diffusers 0.25.1, each window's UNet rows pair the latents " +
            "(repeat_interleave) with [negative; prompt] repeated, so only a batch of one image is guided as the prompt asks", Assert.Single(logs));
    }

    /// <summary>
    /// A folder whose model_index.json says StableDiffusionPanoramaPipeline (tiny-sd with tiny-vae8 and a DDIMScheduler)
    /// loads through <see cref="DiffusionPipeline.FromPretrained"/> and gives diffusers' DDIM panorama; the callback sees
    /// the averaged latents after every step.
    /// </summary>
    [Fact]
    public void APanoramaFolderLoadsThroughDiffusionPipelineAndMatchesDiffusers()
    {
        using var dir = PipelineLoadOptionsTests.Copy(Golden.Path("tiny-sd"));
        MakePanoramaFolder(dir.Path);
        using var loaded = DiffusionPipeline.FromPretrained(dir.Path);
        var pipe = Assert.IsType<StableDiffusionPanoramaPipeline>(loaded);
        Assert.Equal(DDIMScheduler.Name, pipe.Scheduler.ClassName);
        var seen = new List<(int Step, long[] Shape)>();
        using var result = Run(pipe, "ddim", callback: (i, t, tensors) => seen.Add((i, tensors["latents"].shape)));
        Assert.Equal([0, 1], seen.Select(s => s.Step));
        Assert.All(seen, s => Assert.Equal(new long[] { 1, 4, 2, 80 }, s.Shape));
    }

    /// <summary>
    /// Makes a copy of tiny-sd in <paramref name="folder"/> a panorama folder as diffusers' save_pretrained would write it:
    /// model_index.json's class StableDiffusionPanoramaPipeline, tiny-vae8 as the VAE, a DDIMScheduler of tiny-sd's config.
    /// </summary>
    internal static void MakePanoramaFolder(string folder)
    {
        Directory.Delete(Path.Combine(folder, "vae"), recursive: true);
        Golden.CopyModel(Path.Combine(folder, "vae"), c => c, "panorama", "tiny-vae8");
        var index = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "model_index.json")))!.AsObject();
        index["_class_name"] = StableDiffusionPanoramaPipeline.Name;
        index["scheduler"] = new JsonArray("diffusers", DDIMScheduler.Name);
        File.WriteAllText(Path.Combine(folder, "model_index.json"), index.ToJsonString());
        string schedulerConfig = Path.Combine(folder, "scheduler", "scheduler_config.json");
        var scheduler = JsonNode.Parse(File.ReadAllText(schedulerConfig))!.AsObject();
        scheduler["_class_name"] = DDIMScheduler.Name;
        File.WriteAllText(schedulerConfig, scheduler.ToJsonString());
    }

    [Fact]
    public void AStableDiffusionFolderLoadsAsAPanoramaPipeline()
    {
        using var pipe = StableDiffusionPanoramaPipeline.FromPretrained(Golden.Path("tiny-sd"));
        Assert.Equal(StableDiffusionPanoramaPipeline.Name, pipe.ClassName);
        Assert.Equal(PNDMScheduler.Name, pipe.Scheduler.ClassName);
    }

    /// <summary>
    /// tiny-sd's own VAE has scale factor 2: 8 × 160 pixels are 4 × 80 latents, but diffusers' get_views sees 1 × 20 and makes
    /// one window, which covers 64 of the 80 columns; the rest are zeros after the first step, in diffusers as here, and the
    /// log says so.
    /// </summary>
    [Fact]
    public void AVaeScaleFactorOtherThan8LeavesLatentsUncoveredAsDiffusersDoesAndSaysSo()
    {
        using var pipe = Pipe(vae: "vae");
        var logs = new List<string>();
        pipe.Log = logs.Add;
        using var result = Run(pipe, "vae2-uncovered", height: 8, width: 160);
        Assert.Equal(
            "StableDiffusionPanoramaPipeline: the windows cover 4 × 64 of the 4 × 80 latents (diffusers' get_views measures the panorama " +
            "in pixels / 8, and this VAE's scale factor is 2); the rest become zeros, as in diffusers", Assert.Single(logs));
    }

    [Fact]
    public void GetViewsGivesDiffusersWindows()
    {
        using var index = Golden.Json("panorama/panorama-expected.json");
        foreach (var c in index.RootElement.GetProperty("cases").EnumerateObject())
        {
            var a = c.Value;
            bool circular = a.TryGetProperty("circular_padding", out var cp) && cp.GetBoolean();
            var expected = a.GetProperty("views").EnumerateArray().Select(v => v.EnumerateArray().Select(x => x.GetInt32()).ToArray()).ToList();
            var views = StableDiffusionPanoramaPipeline.GetViews(a.GetProperty("height").GetInt32(), a.GetProperty("width").GetInt32(),
                circularPadding: circular);
            Assert.Equal(expected, views.Select(v => new[] { v.HStart, v.HEnd, v.WStart, v.WEnd }).ToList());
        }
        // diffusers' defaults: 512 × 2048 gives one row of 25 windows; 576 × 1024 two rows of 9; circular 512 × 1024 16 wrapping columns
        Assert.Equal(25, StableDiffusionPanoramaPipeline.GetViews(512, 2048).Count);
        Assert.Equal(new PanoramaView(8, 72, 64, 128), StableDiffusionPanoramaPipeline.GetViews(576, 1024)[^1]);
        Assert.Equal(18, StableDiffusionPanoramaPipeline.GetViews(576, 1024).Count);
        Assert.Equal(new PanoramaView(0, 64, 120, 184), StableDiffusionPanoramaPipeline.GetViews(512, 1024, circularPadding: true)[^1]);
    }

    [Fact]
    public void BadInputsAreRefusedWithDiffusersReasons()
    {
        using var pipe = Pipe();
        var (prompt, negative) = Embeds();
        string Error(Action a) => Assert.Throws<DiffusersException>(a).Message;
        Assert.Equal("StableDiffusionPanoramaPipeline: height and width have to be positive and divisible by 8 but are 64 and 636",
            Error(() => pipe.Generate(promptEmbeds: prompt, height: 64, width: 636, numInferenceSteps: 1)));
        Assert.Equal("StableDiffusionPanoramaPipeline: view_batch_size must be at least 1, got 0",
            Error(() => pipe.Generate(promptEmbeds: prompt, height: 64, width: 640, numInferenceSteps: 1, viewBatchSize: 0)));
        Assert.Equal(
            "StableDiffusionPanoramaPipeline: circular_padding with a height of 576 pixels (2 rows of windows): diffusers 0.25.1 fails on a " +
            "wrapped window below the top row (it cuts the window by the panorama's rows); use a height of at most 568 pixels, or no circular padding",
            Error(() => pipe.Generate(promptEmbeds: prompt, height: 576, width: 640, numInferenceSteps: 1, circularPadding: true)));
        Assert.Equal(
            "StableDiffusionPanoramaPipeline: circular_padding decodes with 8 latent columns from each edge (diffusers' " +
            "decode_latents_with_padding), which needs a width of at least 64 pixels, got 56",
            Error(() => pipe.Generate(promptEmbeds: prompt, height: 64, width: 56, numInferenceSteps: 1, circularPadding: true)));
        Assert.Equal(
            "StableDiffusionPanoramaPipeline: ipAdapterImage needs view_batch_size 1 here (3 windows, view_batch_size 2): diffusers 0.25.1 " +
            "gives the UNet the image embeds of one window for a batch of windows and fails on the batch mismatch",
            Error(() => pipe.Generate(promptEmbeds: prompt, height: 64, width: 640, numInferenceSteps: 1, viewBatchSize: 2,
                ipAdapterImage: new DiffusersSharp.Imaging.Image(8, 8, 3, new byte[8 * 8 * 3]))));
        Assert.Equal("StableDiffusionPanoramaPipeline: pass either a negative_prompt or negative_prompt_embeds, not both (negative_prompt \"blurry\")",
            Error(() => pipe.Generate(promptEmbeds: prompt, negativePrompt: "blurry", negativePromptEmbeds: negative, height: 64, width: 640)));
    }
}
