using DiffusersSharp.Pipelines;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Tests.Cli;
using static DiffusersSharp.Tests.Fuzz.FuzzCommands;

namespace DiffusersSharp.Tests.Fuzz;

/// <summary>
/// The exact messages of the defects <see cref="NewModelFuzzTests"/> found in the newest model folders (the fuzz suite
/// checks the shape of every message; these pin the words).
/// </summary>
public class NewModelMessageTests
{
    private static string Error(string[] args)
    {
        var (code, _, stderr) = CliRun.Run(args);
        Assert.Equal(1, code);
        var lines = stderr.TrimEnd().Split('\n').Where(l => !l.StartsWith("warning: ", StringComparison.Ordinal)).ToList();
        Assert.Single(lines);
        return lines[0];
    }

    /// <summary>num_res_blocks 100000 built 200000 resnet blocks for minutes before any weight was read (the fuzz case's 30 s limit).</summary>
    [Fact]
    public void AnAdapterConfigOfTooManyResBlocksIsRefusedBeforeBuilding()
    {
        using var w = new FuzzWorkspace("tiny-t2i-adapter");
        w.SetJson("sd-full/config.json", "num_res_blocks", "100000");
        var e = Assert.Throws<ConfigException>(() => DiffusersSharp.Models.T2IAdapter.FromPretrained(w.File("sd-full")));
        Assert.Equal($"{w.File("sd-full", "config.json")}: config key 'num_res_blocks': must be between 0 and 64, got 100000", e.Message);
        Assert.Equal("num_res_blocks", e.Key);
        w.SetJson("sd-full/config.json", ("num_res_blocks", "2"), ("downscale_factor", "100000"));
        e = Assert.Throws<ConfigException>(() => DiffusersSharp.Models.T2IAdapter.FromPretrained(w.File("sd-full")));
        Assert.Equal($"{w.File("sd-full", "config.json")}: config key 'downscale_factor': must be between 1 and 64, got 100000", e.Message);
    }

    /// <summary>Before: "StableDiffusionUpscalePipeline: incorrect configuration settings! …" at the first call, naming no file or key.</summary>
    [Fact]
    public void TheUpscalerRefusesAUNetOfOtherInputChannelsAtLoadNamingItsConfig()
    {
        using var w = new FuzzWorkspace("tiny-sd-upscale");
        Directory.Delete(w.File("unet"), recursive: true);
        Directory.CreateDirectory(w.File("unet"));
        foreach (var f in Directory.GetFiles(Support.Golden.Path("tiny-sd-instruct-pix2pix", "unet"))) File.Copy(f, w.File("unet", Path.GetFileName(f)));
        Assert.Equal($"error: {w.File("unet", "config.json")}: config key 'in_channels': incorrect configuration settings! The UNet's in_channels is 8, " +
            "but StableDiffusionUpscalePipeline feeds it num_channels_latents 4 + num_channels_image 3 = 7 (the latents and the RGB low-resolution image, " +
            "concatenated). Please verify the config of the UNet (an x4 upscaler UNet, such as stabilityai/stable-diffusion-x4-upscaler's, takes 7).",
            Error(Upscale(w)));
    }

    /// <summary>Before: exit 2, "unexpected error: ArgumentException: UNet2DConditionModel: class_labels were given but the model has no class embedding".</summary>
    [Fact]
    public void TheUpscalerRefusesAUNetWithoutAClassEmbedding()
    {
        using var w = new FuzzWorkspace("tiny-sd-upscale");
        w.SetJson("unet/config.json", "num_class_embeds", "null");
        Assert.Equal($"error: {w.File("unet", "config.json")}: config key 'num_class_embeds': StableDiffusionUpscalePipeline passes noise_level to the " +
            "UNet as its class label, but this UNet has no class embedding (num_class_embeds and class_embed_type are null): it would ignore the noise " +
            "level. An x4 upscaler UNet, such as stabilityai/stable-diffusion-x4-upscaler's, has num_class_embeds 1000", Error(Upscale(w)));
    }

    /// <summary>Before: "DDPMScheduler: timestep 5000 is not an integer timestep in [0, 1000)" (nor noise_level nor the scheduler named).</summary>
    [Fact]
    public void ANoiseLevelBeyondTheLowResSchedulerOrTheClassEmbeddingIsRefusedNamingIt()
    {
        using var w = new FuzzWorkspace("tiny-sd-upscale");
        w.SetJson("model_index.json", "max_noise_level", "5000");
        Assert.Equal("error: StableDiffusionUpscalePipeline: noise_level 5000 is not a timestep of the low_res_scheduler (DDPMScheduler, " +
            "num_train_timesteps 1000): it must be below 1000 (max_noise_level 5000 allows more)", Error(Upscale(w, ("--noise-level", "5000"))));
        // a UNet of 10 class rows: the default noise level 20 has none
        w.SetJson("model_index.json", "max_noise_level", "350");
        w.SetJson("unet/config.json", "num_class_embeds", "10");
        string st = w.File("unet", "diffusion_pytorch_model.safetensors");
        Dictionary<string, TorchSharp.torch.Tensor> weights;
        using (var f = DiffusersSharp.Loading.SafetensorsFile.Open(st)) weights = f.LoadAll();
        weights["class_embedding.weight"] = weights["class_embedding.weight"].narrow(0, 0, 10).contiguous();
        DiffusersSharp.Loading.SafetensorsFile.Save(st, weights, new Dictionary<string, string> { ["format"] = "pt" });
        Assert.Equal("error: StableDiffusionUpscalePipeline: noise_level 20 is the UNet's class label, but its class embedding has num_class_embeds 10 rows: " +
            "it must be below 10 (max_noise_level 350 allows more)", Error(Upscale(w)));
    }

    /// <summary>Before: "CMStochasticIterativeScheduler: timestep NaN is not in the scheduler's timesteps" at the first step.</summary>
    [Fact]
    public void ATinyRhoOfTheConsistencySchedulerIsRefusedNamingTheKeyAndTheFile()
    {
        using var w = new FuzzWorkspace("tiny-consistency");
        w.SetJson("scheduler/scheduler_config.json", "rho", "1e-30");
        var e = Assert.Throws<ConfigException>(() => ConsistencyModelPipeline.FromPretrained(w.Model));
        string file = w.File("scheduler", "scheduler_config.json");
        Assert.Equal($"{file}: CMStochasticIterativeScheduler: config key 'rho': rho 1E-30 gives Karras sigmas that are not finite positive numbers " +
            "(σ^(1/ρ) of sigma_min 0.002 and sigma_max 80 overflows, sigma 0 is NaN); diffusers' models use rho 7", e.Message);
        Assert.Equal(("rho", file), (e.Key, e.FilePath));
    }

    /// <summary>Before: unknown scheduler class "\0-Infinity" (the loader's internal marker of a bare number, a NUL character, in the message).</summary>
    [Fact]
    public void ANumberAsTheSchedulerClassNameIsSaidToBeANumber()
    {
        using var w = new FuzzWorkspace("tiny-consistency");
        w.SetJson("scheduler/scheduler_config.json", "_class_name", "-Infinity");
        var e = Assert.Throws<ConfigException>(() => SchedulerFactory.FromPretrained(w.Model, "scheduler"));
        Assert.Equal($"{w.File("scheduler", "scheduler_config.json")}: config key '_class_name' must be a string, not the number -Infinity", e.Message);
    }
}
