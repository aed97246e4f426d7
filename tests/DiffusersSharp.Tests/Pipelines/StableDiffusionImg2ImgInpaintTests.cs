using DiffusersSharp.Imaging;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Pipelines;

/// <summary>img2img (golden README section D) and inpaint (section E) runs against diffusers 0.25.1.</summary>
public class StableDiffusionImg2ImgInpaintTests(ITestOutputHelper log)
{
    private const double Component = 1e-5;
    // The VAE encoder: diffusers feeds it a channels-last view (README D); and whole trajectories.
    private const double Encoder = 1e-4;
    private const double Trajectory = 1e-4;

    /// <summary>
    /// The inpaint pipeline folder: tiny-sd-inpaint's model_index.json and UNet with tiny-sd's tokenizer, text encoder,
    /// VAE and scheduler (byte-for-byte the files of tiny-sd-inpaint, README E), so they are not stored twice.
    /// </summary>
    internal static TempDir AssembleInpaintFolder(bool withUnet = true)
    {
        var dir = new TempDir();
        File.Copy(Golden.Path("tiny-sd-inpaint", "model_index.json"), dir.File("model_index.json"));
        foreach (var (name, src) in new[] { ("tokenizer", "tiny-sd"), ("text_encoder", "tiny-sd"), ("vae", "tiny-sd"), ("scheduler", "tiny-sd"), ("unet", "tiny-sd-inpaint") })
        {
            if (name == "unet" && !withUnet) continue;
            Directory.CreateDirectory(dir.File(name));
            foreach (var f in Directory.GetFiles(Golden.Path(src, name)))
                File.Copy(f, Path.Combine(dir.File(name), Path.GetFileName(f)));
        }
        return dir;
    }

    [Theory]
    [InlineData("pndm_default", null)]
    [InlineData("ddim", DDIMScheduler.Name)]
    public void Img2ImgRunMatchesDiffusers(string run, string? scheduler)
    {
        using var pipe = StableDiffusionImg2ImgPipeline.FromPretrained(StableDiffusionPipelineTests.Model);
        if (scheduler is not null)
        {
            using var loaded = pipe.Scheduler;
            pipe.Scheduler = SchedulerFactory.FromConfig(scheduler, loaded.Config);
        }
        using var trace = new SdTrace(pipe);
        var init = Image.Load(Golden.Path("img2img-init.png"));
        using var result = pipe.Generate("a photo of a cat", init, strength: 0.6, negativePrompt: "", guidanceScale: 7.5,
            numInferenceSteps: 5, seed: 0, outputType: OutputType.Np);
        using var g = new SafetensorsLike("tiny-sd-img2img-expected.safetensors");
        string p = $"pipeline/{run}/";
        SdTrace.Check(log, g, p + "prompt_embeds", trace.One("prompt_embeds"), Component);
        SdTrace.Check(log, g, p + "negative_prompt_embeds", trace.One("negative_prompt_embeds"), Component);
        SdTrace.Check(log, g, p + "image_preprocessed", trace.One("image_preprocessed"), 0);
        SdTrace.Check(log, g, p + "image_latent_mean", trace.One("image_latent_mean"), Encoder);
        SdTrace.Check(log, g, p + "image_latent_std", trace.One("image_latent_std"), Encoder);
        SdTrace.Check(log, g, p + "image_latents", trace.One("image_latents"), Encoder);
        SdTrace.Check(log, g, p + "noise", trace.One("noise"), 0);
        SdTrace.Check(log, g, p + "initial_latents", trace.One("initial_latents"), Encoder);
        Assert.Equal(trace.Count("unet_output"), (int)g.Load(p + "timesteps").shape[0]);
        using (var x = trace.Stacked("unet_input")) SdTrace.Check(log, g, p + "unet_input", x, Trajectory);
        using (var x = trace.Stacked("unet_output")) SdTrace.Check(log, g, p + "unet_output", x, Trajectory);
        using (var x = trace.Stacked("latents_after_step")) SdTrace.Check(log, g, p + "latents_after_step", x, Trajectory);
        SdTrace.Check(log, g, p + "vae_decoded", trace.One("vae_decoded"), Trajectory);
        SdTrace.CheckImages(log, g, p + "images", result.Array!);
    }

    [Theory]
    [InlineData("pndm_default_strength1", 1.0)]
    [InlineData("pndm_default_strength0.75", 0.75)]
    public void InpaintRunMatchesDiffusers(string run, double strength)
    {
        using var folder = AssembleInpaintFolder();
        var logged = new List<string>();
        using var pipe = StableDiffusionInpaintPipeline.FromPretrained(folder.Path, new() { Log = logged.Add });
        Assert.Empty(logged);
        using var trace = new SdTrace(pipe);
        var init = Image.Load(Golden.Path("img2img-init.png"));
        var mask = Image.Load(Golden.Path("inpaint-mask.png"));
        using var result = pipe.Generate("a red ball", init, mask, strength: strength, guidanceScale: 7.5,
            numInferenceSteps: 5, seed: 0, outputType: OutputType.Np);
        using var g = new SafetensorsLike("tiny-sd-inpaint-expected.safetensors");
        string p = $"pipeline/{run}/";
        SdTrace.Check(log, g, p + "prompt_embeds", trace.One("prompt_embeds"), Component);
        SdTrace.Check(log, g, p + "negative_prompt_embeds", trace.One("negative_prompt_embeds"), Component);
        SdTrace.Check(log, g, p + "image_preprocessed", trace.One("image_preprocessed"), 0);
        SdTrace.Check(log, g, p + "mask_condition", trace.One("mask_condition"), 0);
        SdTrace.Check(log, g, p + "masked_image", trace.One("masked_image"), 0);
        SdTrace.Check(log, g, p + "mask_latent", trace.One("mask_latent"), 0);
        if (strength < 1)
        {
            SdTrace.Check(log, g, p + "image_latent_mean", trace.One("image_latent_mean"), Encoder);
            SdTrace.Check(log, g, p + "image_latents", trace.One("image_latents"), Encoder);
        }
        else Assert.False(trace.Has("image_latents"), "strength 1 with a 9-channel UNet must not encode the init image");
        SdTrace.Check(log, g, p + "noise", trace.One("noise"), 0);
        SdTrace.Check(log, g, p + "initial_latents", trace.One("initial_latents"), Encoder);
        SdTrace.Check(log, g, p + "masked_image_latent_mean", trace.One("masked_image_latent_mean"), Encoder);
        SdTrace.Check(log, g, p + "masked_image_latent_std", trace.One("masked_image_latent_std"), Encoder);
        SdTrace.Check(log, g, p + "masked_image_latents", trace.One("masked_image_latents"), Encoder);
        using (var x = trace.Stacked("unet_input")) SdTrace.Check(log, g, p + "unet_input", x, Trajectory);
        using (var x = trace.Stacked("unet_output")) SdTrace.Check(log, g, p + "unet_output", x, Trajectory);
        using (var x = trace.Stacked("latents_after_step")) SdTrace.Check(log, g, p + "latents_after_step", x, Trajectory);
        SdTrace.Check(log, g, p + "vae_decoded", trace.One("vae_decoded"), Trajectory);
        SdTrace.CheckImages(log, g, p + "images", result.Array!);
    }

    [Fact]
    public void InpaintUNetStepFromRecordedInputMatchesWithin1e5()
    {
        using var folder = AssembleInpaintFolder();
        using var pipe = StableDiffusionInpaintPipeline.FromPretrained(folder.Path);
        using var g = new SafetensorsLike("tiny-sd-inpaint-expected.safetensors");
        using var noGrad = torch.no_grad();
        string p = "pipeline/pndm_default_strength1/";
        using var states = torch.cat(new[] { g.Load(p + "negative_prompt_embeds"), g.Load(p + "prompt_embeds") });
        using var inputs = g.Load(p + "unet_input");
        using var ts = g.Load(p + "unet_timestep");
        using var outputs = g.Load(p + "unet_output");
        double worst = 0;
        for (int i = 0; i < inputs.shape[0]; i++)
        {
            using var scope = torch.NewDisposeScope();
            worst = Math.Max(worst, Tol.MaxAbsDiff(pipe.Unet.Forward(inputs[i], ts[i], states).Sample, outputs[i]));
        }
        log.WriteLine($"inpaint unet_output from recorded 9-channel unet_input, 6 calls: max abs error {worst:E3}");
        Assert.True(worst <= Component, $"max error {worst:E3}");
    }
}
