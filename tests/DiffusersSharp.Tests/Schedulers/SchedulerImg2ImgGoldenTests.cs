using System.Text.Json;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Schedulers;

/// <summary>
/// The img2img / inpaint pipelines' use of every registered scheduler class against golden
/// <c>scheduler-transcripts-img2img/</c> (a numpy transcription of diffusers 0.25.1, validated on golden B, D and E; see
/// its README): our pipeline code slices the timesteps (<see cref="PipelineSteps.Img2ImgTimesteps"/>), noises the image
/// latents to the first one (<see cref="PipelineSteps.NoiseToFirstTimestep"/> /
/// <see cref="PipelineSteps.InpaintStartLatents"/>), runs the shared <see cref="DenoisingLoop"/> from the middle of the
/// schedule with the fake model <c>0.1 · scale_model_input(x, t) + E</c>, and for inpainting blends the re-noised known
/// region back after every step (<see cref="InpaintDenoisingLoop.BlendKnownRegion"/>). Also SDXL's <c>denoising_start</c>
/// slice (the case's <c>strength</c> holds it) and LCM's own <c>set_timesteps(strength=...)</c>.
/// </summary>
[Collection(SchedulerGoldenCollection.Name)]
public class SchedulerImg2ImgGoldenTests
{
    private const string Folder = "scheduler-transcripts-img2img";
    private const string TensorFile = Folder + "/cases.safetensors";
    private static readonly Lazy<JsonDocument> Doc = new(() => Golden.Json(Folder + "/cases.json"));

    private static JsonElement Case(string name) => Doc.Value.RootElement.GetProperty("cases").GetProperty(name);

    private static Tensor T(string key) => Golden.Tensor(TensorFile, key);

    public static TheoryData<string> Cases()
    {
        var data = new TheoryData<string>();
        foreach (var c in Doc.Value.RootElement.GetProperty("cases").EnumerateObject()) data.Add(c.Name);
        return data;
    }

    /// <summary>
    /// The cases whose start latents are the image latents noised to the first timestep: img2img, and inpaint below
    /// strength 1 (at strength 1 inpainting starts from the noise alone; denoising-start and LCM's strength go on from
    /// the image latents).
    /// </summary>
    public static TheoryData<string> NoisedImageCases()
    {
        var data = new TheoryData<string>();
        foreach (var c in Doc.Value.RootElement.GetProperty("cases").EnumerateObject())
            if (NoisesTheImage(c.Value)) data.Add(c.Name);
        return data;
    }

    private static bool NoisesTheImage(JsonElement c) => c.GetProperty("mode").GetString() switch
    {
        "img2img" => true,
        "inpaint" => c.GetProperty("strength").GetDouble() != 1.0,
        _ => false,
    };

    /// <summary>Every class the factory registers that defines add_noise and denoises has img2img, inpaint and SDXL denoising_start cases.</summary>
    [Fact]
    public void EveryRegisteredClassIsCovered()
    {
        var covered = Doc.Value.RootElement.GetProperty("cases").EnumerateObject()
            .Select(c => (Cls: c.Value.GetProperty("class").GetString()!, Mode: c.Value.GetProperty("mode").GetString()!)).ToList();
        foreach (var cls in SchedulerFactory.KnownClasses)
        {
            using (var s = SchedulerFactory.FromJson($"{{\"_class_name\": \"{cls}\"}}"))
                if (!s.DefinesAddNoise) continue;   // no add_noise, no image to start from (diffusers' class has none either)
            // inversion runs from the image towards noise (no strength slicing); consistency models have no img2img pipeline
            // in diffusers 0.25.1 and no transcription here (CMStochasticIterativeSchedulerTests holds their add_noise)
            if (cls is DPMSolverMultistepInverseScheduler.Name or CMStochasticIterativeScheduler.Name) continue;
            Assert.Contains((cls, "img2img"), covered);
            Assert.Contains((cls, "inpaint"), covered);
            Assert.Contains((cls, "denoising-start"), covered);
        }
    }

    [Theory, MemberData(nameof(Cases))]
    public void PipelineFlowMatchesDiffusers(string name)
    {
        using var scope = torch.NewDisposeScope();
        var c = Case(name);
        string mode = c.GetProperty("mode").GetString()!;
        int n = c.GetProperty("num_inference_steps").GetInt32();
        double strength = c.GetProperty("strength").GetDouble();
        using var s = SchedulerFactory.FromJson(c.GetProperty("config").GetRawText(), $"img2img golden case {name}");
        Assert.Equal(c.GetProperty("order").GetInt32(), s.Order);

        Tensor timesteps;
        if (mode == "lcm-strength")
        {
            ((LCMScheduler)s).SetTimesteps(n, null, null, strength);
            timesteps = s.Timesteps;
        }
        else
        {
            PipelineSteps.Timesteps(s, n, CPU);
            timesteps = mode == "denoising-start"
                ? PipelineSteps.Img2ImgTimesteps(name, s, n, strength: 0.3, denoisingStart: strength)
                : PipelineSteps.Img2ImgTimesteps(name, s, n, strength, needsInitStep: mode == "inpaint");
        }
        SchedulerGoldenTests.AssertExact(s.Timesteps, T($"{name}/timesteps_full"), $"{name} timesteps_full");
        SchedulerGoldenTests.AssertExact(timesteps, T($"{name}/timesteps"), $"{name} timesteps after strength");

        var image = T("inputs/image_latents");
        var noise = T("inputs/noise");
        var e = T("inputs/E");
        var mask = mode == "inpaint" ? T("inputs/mask") : null;
        var start = mode switch
        {
            "inpaint" => PipelineSteps.InpaintStartLatents(s, noise, image, addNoise: strength != 1.0, timesteps.narrow(0, 0, 1).repeat(1)),
            "denoising-start" => image, // SDXL: the base run's latents go on without add_noise
            _ => PipelineSteps.NoiseToFirstTimestep(s, image, noise, timesteps),
        };
        SchedulerGoldenTests.Rel(start, T($"{name}/start_latents"), $"{name} start latents");

        var stepNoise = c.GetProperty("noise_draws").GetInt32() > 0 ? T($"{name}/noise") : null;
        int draws = 0;
        var loop = new FakeModelLoop(name, e, image, noise, mask, T(mask is null ? $"{name}/prev_sample" : $"{name}/blended"));
        var ctx = new DenoisingContext(name, s, timesteps, start.clone())
        {
            StepOptions = new StepOptions
            {
                VarianceNoise = shape =>
                {
                    Assert.True(stepNoise is not null && draws < stepNoise.shape[0], $"{name}: draws more step noise than diffusers");
                    return stepNoise![draws++];
                },
            },
        };
        loop.Run(ctx);
        Assert.Equal(c.GetProperty("loop_steps").GetInt32(), loop.Steps);
        Assert.Equal(c.GetProperty("noise_draws").GetInt32(), draws);
    }

    /// <summary>
    /// A batch of two images: <c>timesteps[:1].repeat(batch)</c> noises each with the first timestep's σ / ᾱ (the
    /// schedulers look every entry up), so each row is the one-image case's start latents.
    /// </summary>
    [Theory, MemberData(nameof(NoisedImageCases))]
    public void StartLatentsOfABatchAreEachImages(string name)
    {
        using var scope = torch.NewDisposeScope();
        var c = Case(name);
        string mode = c.GetProperty("mode").GetString()!;
        Assert.True(NoisesTheImage(c), $"{name}: a {mode} case does not noise the image latents");
        int n = c.GetProperty("num_inference_steps").GetInt32();
        using var s = SchedulerFactory.FromJson(c.GetProperty("config").GetRawText(), $"img2img golden case {name}");
        PipelineSteps.Timesteps(s, n, CPU);
        var timesteps = PipelineSteps.Img2ImgTimesteps(name, s, n, c.GetProperty("strength").GetDouble());
        var image = T("inputs/image_latents").repeat(2, 1, 1, 1);
        var noise = T("inputs/noise").repeat(2, 1, 1, 1);
        var start = mode == "inpaint"
            ? PipelineSteps.InpaintStartLatents(s, noise, image, addNoise: true, timesteps.narrow(0, 0, 1).repeat(2))
            : PipelineSteps.NoiseToFirstTimestep(s, image, noise, timesteps);
        Assert.Equal([2L, 4, 8, 8], start.shape);
        var expected = T($"{name}/start_latents");
        for (int b = 0; b < 2; b++) SchedulerGoldenTests.Rel(start.narrow(0, b, 1), expected, $"{name} start latents of image {b}");
    }

    /// <summary>The shared loop with the golden recipe's model, checking each step's sample (inpaint: after the blend).</summary>
    private sealed class FakeModelLoop(string name, Tensor e, Tensor image, Tensor noise, Tensor? mask, Tensor expected) : DenoisingLoop
    {
        public int Steps { get; private set; }

        protected override Tensor PredictNoise(DenoisingContext ctx, int step, Tensor timestep, Tensor latents) =>
            0.1 * ctx.Scheduler.ScaleModelInput(latents, ctx.TimestepValues[step]) + e;

        protected override Tensor AfterStep(DenoisingContext ctx, int step, Tensor latents)
        {
            Steps = step + 1;
            if (mask is not null) latents = InpaintDenoisingLoop.BlendKnownRegion(ctx.Scheduler, ctx.Timesteps, step, image, noise, mask, latents);
            SchedulerGoldenTests.Rel(latents, expected[step], $"{name} step {step} {(mask is null ? "prev_sample" : "blended latents")}");
            return latents;
        }
    }
}
