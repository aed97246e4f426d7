using System.Text.Json;
using DiffusersSharp.Models;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Pipelines;

/// <summary>
/// <see cref="LDMPipeline"/> on tests/golden/ldm/tiny-ldm (CompVis/ldm-celebahq-256's layout: VQModel, UNet2DModel,
/// DDIMScheduler) against diffusers 0.25.1's LDMPipeline (tests/golden/ldm: its README says how the data was made): DDIM
/// with eta 0 (batch 2) and eta 1 (the variance noise drawn after the initial noise from the same generator); loading
/// through DiffusionPipeline.FromPretrained and bad input.
/// </summary>
public class LDMPipelineTests(ITestOutputHelper log)
{
    private const string Expected = "ldm/ldm-expected.safetensors";
    // a whole run, as the other pipelines' golden runs
    private const double Trajectory = 1e-4;

    internal static string Model => Golden.Path("ldm", "tiny-ldm");

    private static Tensor G(string key) => Golden.Tensor(Expected, key);

    private static JsonElement Case(string name) =>
        Golden.Json("ldm/ldm-expected.json").RootElement.GetProperty("cases").GetProperty(name);

    [Theory]
    [InlineData("ldm-eta0")]
    [InlineData("ldm-eta1")]
    public void TheRunMatchesDiffusers(string run)
    {
        var c = Case(run);
        using var loaded = DiffusionPipeline.FromPretrained(Model);
        var pipe = Assert.IsType<LDMPipeline>(loaded);
        var seen = new List<Tensor>();
        using var result = pipe.Generate(c.GetProperty("batch_size").GetInt32(), c.GetProperty("num_inference_steps").GetInt32(),
            c.GetProperty("eta").GetDouble(), seed: c.GetProperty("seed").GetInt64(), outputType: OutputType.Np,
            callbackOnStepEnd: (_, _, tensors) => seen.Add(tensors["latents"].detach().clone().DetachFromDisposeScope()));
        using (var ts = pipe.Scheduler.Timesteps.to(ScalarType.Int64))
            Assert.Equal(c.GetProperty("timesteps").EnumerateArray().Select(e => e.GetInt64()), ts.data<long>().ToArray());
        string p = run + "/";
        foreach (var (name, actual) in new[] { ("step1", seen[0]), ("latents", seen[^1]) })
        {
            log.WriteLine($"{name}: max diff {Tol.MaxAbsDiff(actual, G(p + name)):E3}");
            Tol.Close(actual, G(p + name), Trajectory, p + name);
        }
        log.WriteLine($"images: max diff {Tol.MaxAbsDiff(result.Array!, G(p + "images")):E3}");
        Tol.Close(result.Array!, G(p + "images"), Trajectory, p + "images");
        foreach (var t in seen) t.Dispose();
    }

    [Fact]
    public void TheLatentsAreDividedByTheScalingFactorAndQuantizedBeforeDecoding()
    {
        // diffusers decodes vqvae.decode(latents / scaling_factor) with the VQModel's default quantization
        using var pipe = LDMPipeline.FromPretrained(Model);
        using var noGrad = torch.no_grad();
        Tol.Close(G("ldm-eta0/latents") / 0.18215, G("ldm-eta0/decode_input"), Tol.ModelAbs, "decode input");
        using var decoded = pipe.Vqvae.Decode(G("ldm-eta0/decode_input")).Sample;
        using var images = (decoded / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1);
        Tol.Close(images, G("ldm-eta0/images"), Tol.ModelAbs, "images");
    }

    [Fact]
    public void LoadingGivesTheVqvaeTheUNetAndTheScheduler()
    {
        using var pipe = LDMPipeline.FromPretrained(Model);
        Assert.Equal(["unet", "scheduler", "vqvae"], pipe.Components.Keys);
        Assert.IsType<DDIMScheduler>(pipe.Scheduler);
        Assert.Equal((3, 16, 0.18215), (pipe.Vqvae.Config.LatentChannels, pipe.Vqvae.Config.NumVqEmbeddings, pipe.Vqvae.ScalingFactor));
        Assert.Equal(50, pipe.DefaultNumInferenceSteps);
    }

    [Fact]
    public void BadInputIsRefused()
    {
        using var pipe = LDMPipeline.FromPretrained(Model);
        var eta = Assert.Throws<DiffusersException>(() => pipe.Generate(eta: -1, seed: 0));
        Assert.Equal("LDMPipeline: eta must be a number ≥ 0 (0 = DDIM, 1 = DDPM-like), got -1", eta.Message);
        var batch = Assert.Throws<DiffusersException>(() => pipe.Generate(batchSize: 0, seed: 0));
        Assert.Equal("LDMPipeline: batch size must be at least 1, got 0", batch.Message);
    }

    [Fact]
    public void AUNetOfOtherChannelsThanTheCodebookIsRefused()
    {
        // tests/golden/ldm/vqmodel has vq_embed_dim 4; the tiny LDM UNet makes 3-channel latents
        using var vqvae = VQModel.FromPretrained(Golden.Path("ldm", "vqmodel"));
        using var unet = UNet2DModel.FromPretrained(Model, "unet");
        using var scheduler = SchedulerFactory.FromPretrained(Model, "scheduler");
        var e = Assert.Throws<ConfigException>(() => new LDMPipeline(vqvae, unet, scheduler));
        Assert.Equal("LDMPipeline: the UNet's latents have 3 channels and its prediction 3, but the VQ-VAE decodes latents of vq_embed_dim 4 channels (its codebook vectors): the UNet does not belong to this VQ-VAE", e.Message);
    }
}
