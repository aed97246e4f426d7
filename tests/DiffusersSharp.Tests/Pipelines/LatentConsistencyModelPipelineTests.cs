using System.Text.Json.Nodes;
using DiffusersSharp.Imaging;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Tests.Support;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Pipelines;

/// <summary>
/// <see cref="LatentConsistencyModelPipeline"/> and <see cref="LatentConsistencyModelImg2ImgPipeline"/> against diffusers
/// 0.25.1 (tests/golden/lcm-pipeline, made by its make.py): a tiny UNet with time_cond_proj_dim on tiny-sd's VAE and text
/// components, LCMScheduler with LCM_Dreamshaper_v7's config; txt2img with the defaults (4 steps, guidance 8.5), another
/// guidance with original_inference_steps, custom timesteps and 2 images per prompt, img2img at strength 0.5 without and
/// with custom timesteps (where the last step re-noises the latents, so the decoded <c>denoised</c> differs from them), a
/// folder loaded through <see cref="DiffusionPipeline.FromPretrained"/>, and the refusals.
/// </summary>
public class LatentConsistencyModelPipelineTests(ITestOutputHelper log)
{
    private const string Expected = "lcm-pipeline/lcm-pipeline-expected.safetensors";
    // whole trajectories (several steps): the bound of the other SD pipeline runs
    private const double Trajectory = 1e-4;

    /// <summary>
    /// A LatentConsistencyModelPipeline folder (model_index.json's <c>_class_name</c> <paramref name="className"/>): tiny-sd's
    /// vae, text_encoder and tokenizer, the golden LCM unet and scheduler.
    /// </summary>
    internal static TempDir Folder(string className = LatentConsistencyModelPipeline.Name)
    {
        var dir = new TempDir();
        foreach (var sub in new[] { "vae", "text_encoder", "tokenizer" })
            CopyFolder(Path.Combine(StableDiffusionPipelineTests.Model, sub), Path.Combine(dir.Path, sub));
        foreach (var sub in new[] { "unet", "scheduler" })
            CopyFolder(Golden.Path(Path.Combine("lcm-pipeline", sub)), Path.Combine(dir.Path, sub));
        var index = JsonNode.Parse(File.ReadAllText(Path.Combine(StableDiffusionPipelineTests.Model, "model_index.json")))!.AsObject();
        index["_class_name"] = className;
        index["scheduler"] = new JsonArray("diffusers", LCMScheduler.Name);
        File.WriteAllText(Path.Combine(dir.Path, "model_index.json"), index.ToJsonString());
        return dir;
    }

    private static void CopyFolder(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(from)) File.Copy(f, Path.Combine(to, Path.GetFileName(f)));
    }

    private static Tensor PromptEmbeds()
    {
        using var f = Golden.Open("tiny-sd-expected.safetensors");
        return f.Load("pipeline/pndm_default/prompt_embeds");
    }

    private static StepEndCallback Collect(List<long> steps) => (_, t, _) => steps.Add((long)t);

    /// <summary>The final latents, the last step's denoised sample, the image and the timesteps against run <paramref name="run"/>.</summary>
    private void CheckRun(string run, SdTrace trace, ImagePipelineOutput result, List<long> steps)
    {
        using (var doc = Golden.Json("lcm-pipeline/lcm-pipeline-expected.json"))
            Assert.Equal(doc.RootElement.GetProperty("pipelines").GetProperty(run).GetProperty("timesteps_run").EnumerateArray().Select(t => t.GetInt64()), steps);
        using var g = new SafetensorsLike(Expected);
        SdTrace.Check(log, g, $"{run}/latents", trace.One("latents_after_step"), Trajectory);
        SdTrace.Check(log, g, $"{run}/denoised", trace.One("denoised"), Trajectory);
        SdTrace.CheckImages(log, g, $"{run}/image", result.Array!);
    }

    [Theory]
    [InlineData("txt2img-default")]
    [InlineData("txt2img-guidance3-orig20-steps2")]
    [InlineData("txt2img-timesteps")]
    [InlineData("txt2img-2images")]
    public void TextToImageMatchesDiffusers(string run)
    {
        using var dir = Folder();
        using var pipe = LatentConsistencyModelPipeline.FromPretrained(dir.Path);
        using var trace = new SdTrace(pipe);
        var steps = new List<long>();
        using var result = run switch
        {
            "txt2img-default" => pipe.Generate(promptEmbeds: PromptEmbeds(), height: 32, width: 32, seed: 0, outputType: OutputType.Np,
                callbackOnStepEnd: Collect(steps)),
            "txt2img-guidance3-orig20-steps2" => pipe.Generate(promptEmbeds: PromptEmbeds(), height: 32, width: 32, guidanceScale: 3.0,
                numInferenceSteps: 2, originalInferenceSteps: 20, seed: 0, outputType: OutputType.Np, callbackOnStepEnd: Collect(steps)),
            "txt2img-timesteps" => pipe.Generate(promptEmbeds: PromptEmbeds(), height: 32, width: 32, timesteps: [999, 759, 499, 259], seed: 0,
                outputType: OutputType.Np, callbackOnStepEnd: Collect(steps)),
            _ => pipe.Generate(promptEmbeds: PromptEmbeds(), height: 32, width: 32, numImagesPerPrompt: 2, seed: 0, outputType: OutputType.Np,
                callbackOnStepEnd: Collect(steps)),
        };
        Assert.False(trace.Has("negative_prompt_embeds"));
        Assert.Equal(run == "txt2img-2images" ? 2 : 1, trace.First("unet_input").shape[0]);   // no guidance batch
        CheckRun(run, trace, result, steps);
    }

    [Theory]
    [InlineData("img2img-strength0.5", false)]
    [InlineData("img2img-timesteps-strength0.5", true)]
    public void ImageToImageMatchesDiffusersAndDecodesTheDenoisedSample(string run, bool customTimesteps)
    {
        using var dir = Folder();
        using var pipe = LatentConsistencyModelImg2ImgPipeline.FromPretrained(dir.Path);
        using var trace = new SdTrace(pipe);
        var steps = new List<long>();
        using var result = pipe.Generate(promptEmbeds: PromptEmbeds(), image: Image.Load(Golden.Path("img2img-init.png")), strength: 0.5,
            timesteps: customTimesteps ? [999, 759, 499, 259] : null, seed: 0, outputType: OutputType.Np, callbackOnStepEnd: Collect(steps));
        CheckRun(run, trace, result, steps);
        // with custom timesteps sliced by strength the last step is not the scheduler's last: the latents are noised again
        Assert.Equal(!customTimesteps, Tol.MaxAbsDiff(trace.One("latents_after_step"), trace.One("denoised")) == 0);
    }

    [Fact]
    public void AFolderOfTheClassLoadsThroughDiffusionPipelineAndEncodesThePrompt()
    {
        using var dir = Folder();
        using var loaded = DiffusionPipeline.FromPretrained(dir.Path);
        var pipe = Assert.IsType<LatentConsistencyModelPipeline>(loaded);
        using var result = pipe.Generate("a photo of a cat", height: 32, width: 32, seed: 0, outputType: OutputType.Np);
        using var g = new SafetensorsLike(Expected);
        SdTrace.CheckImages(log, g, "txt2img-default/image", result.Array!);
        using var img2img = LatentConsistencyModelImg2ImgPipeline.FromPretrained(dir.Path);   // diffusers loads either class from the folder
        Assert.Equal(LatentConsistencyModelImg2ImgPipeline.Name, img2img.ClassName);
    }

    [Fact]
    public void ASchedulerOtherThanLcmIsRefusedNamingIt()
    {
        using var dir = Folder();
        using var pipe = LatentConsistencyModelPipeline.FromPretrained(dir.Path);
        using var lcm = pipe.Scheduler;
        pipe.Scheduler = EulerDiscreteScheduler.FromConfig(lcm.Config);
        using var euler = pipe.Scheduler;
        var e = Assert.Throws<DiffusersException>(() => pipe.Generate(promptEmbeds: PromptEmbeds(), height: 32, width: 32, seed: 0));
        Assert.Equal("LatentConsistencyModelPipeline: the scheduler is EulerDiscreteScheduler, but LatentConsistencyModelPipeline runs " +
            "LCMScheduler only (diffusers 0.25.1 passes original_inference_steps to its set_timesteps and takes the denoised sample from its step); " +
            "use LCMScheduler.FromConfig(pipe.Scheduler.Config)", e.Message);
        pipe.Scheduler = lcm;
    }

    [Fact]
    public void AUnetWithoutTimeCondProjDimIsRefusedAtLoadingNamingTheKey()
    {
        using var dir = Folder();
        Directory.Delete(Path.Combine(dir.Path, "unet"), recursive: true);
        CopyFolder(Path.Combine(StableDiffusionPipelineTests.Model, "unet"), Path.Combine(dir.Path, "unet"));
        var e = Assert.Throws<ConfigException>(() => DiffusionPipeline.FromPretrained(dir.Path));
        Assert.Equal("time_cond_proj_dim", e.Key);
        Assert.Equal("LatentConsistencyModelPipeline: the UNet config has no time_cond_proj_dim (time_cond_proj_dim: null): a latent consistency " +
            "model embeds the guidance scale with it; for an LCM-LoRA on a Stable Diffusion UNet use StableDiffusionPipeline with LCMScheduler", e.Message);
    }

    [Fact]
    public void CustomTimestepsThatStrengthLeavesNoneOfAreRefused()
    {
        using var dir = Folder();
        using var pipe = LatentConsistencyModelImg2ImgPipeline.FromPretrained(dir.Path);
        var e = Assert.Throws<DiffusersException>(() => pipe.Generate(promptEmbeds: PromptEmbeds(), image: Image.Load(Golden.Path("img2img-init.png")),
            strength: 0.2, timesteps: [999, 759, 499, 259], seed: 0));
        Assert.Equal("LatentConsistencyModelImg2ImgPipeline: strength 0.2 leaves none of the 4 timesteps (int(4 * 0.2) = 0); raise strength", e.Message);
    }
}
