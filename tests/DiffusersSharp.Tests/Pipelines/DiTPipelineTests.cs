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
/// <see cref="DiTPipeline"/> on tests/golden/tiny-dit against diffusers 0.25.1's DiTPipeline (tests/golden/dit: its README
/// says how the data was made): DDIM with and without guidance, two labels, DPM-Solver swapped in; labels by name; loading
/// and bad input.
/// </summary>
public class DiTPipelineTests(ITestOutputHelper log)
{
    private const string Expected = "dit/dit-expected.safetensors";
    // a whole trajectory (the transformer and the VAE decode, step after step), as the other pipelines' golden runs
    private const double Trajectory = 1e-4;
    // the tiny random transformer's eps is no real noise estimate, so DDIM's x0 = (x - sqrt(1-a) eps) / sqrt(a) grows the
    // latents to a few hundred: float32 rounding over the run is relative to that scale (measured: at most 4.4e-7 of it)
    private const double TrajectoryOfScale = 1e-5;

    internal static string Model => Golden.Path("tiny-dit");

    private static Tensor G(string key) => Golden.Tensor(Expected, key);

    private static JsonElement Index => Golden.Json("dit/dit-expected.json").RootElement;

    [Theory]
    [InlineData("ddim-cfg", null)]
    [InlineData("ddim-no-cfg", null)]
    [InlineData("ddim-two-labels-cfg-1.5", null)]
    [InlineData("dpm-cfg", DPMSolverMultistepScheduler.Name)]
    [InlineData("euler-cfg", EulerDiscreteScheduler.Name)]
    public void TheRunMatchesDiffusers(string run, string? scheduler)
    {
        var c = Index.GetProperty("cases").GetProperty(run);
        using var loaded = DiffusionPipeline.FromPretrained(Model);
        var pipe = Assert.IsType<DiTPipeline>(loaded);
        if (scheduler is not null)
        {
            using var own = pipe.Scheduler;
            pipe.Scheduler = SchedulerFactory.FromConfig(scheduler, own.Config);
        }
        var seen = new Dictionary<string, Tensor>();
        pipe.Trace = (name, t) => seen[name] = t.detach().clone().DetachFromDisposeScope();
        var labels = c.GetProperty("class_labels").EnumerateArray().Select(e => e.GetInt32()).ToList();
        using var result = pipe.Generate(labels, c.GetProperty("guidance_scale").GetDouble(), c.GetProperty("num_inference_steps").GetInt32(),
            seed: c.GetProperty("seed").GetInt64(), outputType: OutputType.Np);
        using (var ts = pipe.Scheduler.Timesteps.to(ScalarType.Float64))   // long for DDIM / DPM-Solver, float for Euler
            Assert.Equal(c.GetProperty("timesteps").EnumerateArray().Select(e => e.GetDouble()), ts.data<double>().ToArray());
        string p = run + "/";
        foreach (var name in new[] { "step1", "latents", "decode_input" })
        {
            double scale = Math.Max(1, G(p + name).abs().max().item<float>());
            log.WriteLine($"{name}: max diff {Tol.MaxAbsDiff(seen[name], G(p + name)):E3} of scale {scale:F1}");
            Tol.Close(seen[name], G(p + name), name == "step1" ? Tol.ModelAbs * scale : TrajectoryOfScale * scale, p + name);
        }
        log.WriteLine($"images: max diff {Tol.MaxAbsDiff(result.Array!, G(p + "images")):E3}");
        Tol.Close(result.Array!, G(p + "images"), Trajectory, p + "images");
        foreach (var t in seen.Values) t.Dispose();
    }

    [Fact]
    public void PilOutputIsTheRoundedNumpyOutput()
    {
        using var pipe = DiTPipeline.FromPretrained(Model);
        using var np = pipe.Generate([207, 1], numInferenceSteps: 3, seed: 0, outputType: OutputType.Np);
        using var pil = pipe.Generate([207, 1], numInferenceSteps: 3, seed: 0);
        Assert.Equal(2, pil.Images.Count);
        Assert.Equal((16, 16), (pil.Images[0].Width, pil.Images[0].Height));
        using var expected = (np.Array![1] * 255).round().to(ScalarType.Byte);
        using var actual = torch.tensor(pil.Images[1].Pixels, [16, 16, 3]);
        Assert.True(actual.equal(expected).all().item<bool>());
    }

    [Fact]
    public void LabelsAreReadFromId2LabelAsDiffusersDoes()
    {
        using var pipe = DiTPipeline.FromPretrained(Model);
        var expected = Index.GetProperty("labels").EnumerateObject().Select(p => (p.Name, p.Value.GetInt32())).ToList();
        Assert.Equal(expected, pipe.Labels.Select(l => (l.Key, l.Value)).ToList());
        var ids = Index.GetProperty("get_label_ids");
        Assert.Equal(ids.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()),
            pipe.GetLabelIds(ids.GetProperty("names").EnumerateArray().Select(e => e.GetString()!)));
    }

    [Fact]
    public void AnUnknownLabelIsRefusedNamingIt()
    {
        using var pipe = DiTPipeline.FromPretrained(Model);
        var e = Assert.Throws<DiffusersException>(() => pipe.GetLabelIds(["umbrella", "unicorn"]));
        Assert.StartsWith(Index.GetProperty("unknown_label_error_starts").GetString() + "\n {'Ailurus fulgens': 387, ", e.Message);
        Assert.EndsWith("'white shark': 2}.", e.Message);
    }

    [Fact]
    public void LoadingGivesTheThreeComponentsAndTheTransformerConfig()
    {
        using var pipe = DiTPipeline.FromPretrained(Model);
        Assert.Equal(["transformer", "vae", "scheduler"], pipe.Components.Keys);
        Assert.IsType<DDIMScheduler>(pipe.Scheduler);
        Assert.Equal((1000, 8), (pipe.Transformer.NumClasses, pipe.Transformer.SampleSize));
        Assert.Equal(0.18215, pipe.Vae.ScalingFactor);
    }

    [Fact]
    public void ABadId2LabelIsAnErrorNamingTheFileAndKey()
    {
        using var dir = PipelineLoadOptionsTests.Copy(Model);
        string index = Path.Combine(dir.Path, "model_index.json");
        File.WriteAllText(index, File.ReadAllText(index).Replace("\"879\": \"umbrella\"", "\"umbrella\": \"879\""));
        var e = Assert.Throws<ConfigException>(() => DiTPipeline.FromPretrained(dir.Path));
        Assert.Equal($"{index}: config key 'id2label': key \"umbrella\" is not an integer class id", e.Message);
    }

    [Theory]
    [InlineData(new int[0], 4.0, 5, "DiTPipeline: class_labels is empty; give at least one class id")]
    [InlineData(new[] { 1, 1001 }, 4.0, 5, "DiTPipeline: class_labels[1] is 1001, outside the transformer's classes 0 to 999 (1000: the null class)")]
    [InlineData(new[] { -1 }, 4.0, 5, "DiTPipeline: class_labels[0] is -1, outside the transformer's classes 0 to 999 (1000: the null class)")]
    [InlineData(new[] { 1 }, double.NaN, 5, "DiTPipeline: guidance_scale must be a finite number, got NaN")]
    [InlineData(new[] { 1 }, 4.0, 0, "DiTPipeline: num_inference_steps must be between 1 and num_train_timesteps = 1000 of the DDIMScheduler, got 0")]
    public void BadInputIsRefusedNamingTheParameter(int[] labels, double guidance, int steps, string message)
    {
        using var pipe = DiTPipeline.FromPretrained(Model);
        var e = Assert.Throws<DiffusersException>(() => pipe.Generate(labels, guidance, steps, seed: 0));
        Assert.Equal(message, e.Message);
    }

    [Fact]
    public void AnotherPipelinesFolderIsRefusedByDiTPipelineFromPretrained()
    {
        var e = Assert.Throws<ConfigException>(() => DiTPipeline.FromPretrained(Golden.Path("tiny-ddpm")));
        Assert.StartsWith($"{Golden.Path("tiny-ddpm", "model_index.json")}: _class_name is \"DDPMPipeline\", but DiTPipeline.FromPretrained needs a DiTPipeline folder", e.Message);
    }
}
