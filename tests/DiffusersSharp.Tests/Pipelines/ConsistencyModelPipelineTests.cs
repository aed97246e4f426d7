using System.Text.Json;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Pipelines;

/// <summary>
/// <see cref="ConsistencyModelPipeline"/> on tests/golden/tiny-consistency against diffusers 0.25.1's
/// ConsistencyModelPipeline (tests/golden/consistency-models: its README says how the data was made): one step, the
/// docs' timesteps [22, 0], evenly spaced steps, class labels given and drawn from the generator; loading and bad input.
/// </summary>
public class ConsistencyModelPipelineTests(ITestOutputHelper log)
{
    private const string Expected = "consistency-models/consistency-expected.safetensors";
    // a whole run, as the other pipelines' golden runs
    private const double Trajectory = 1e-4;
    // the samples between steps carry noise of sigma up to 80: float32 rounding is relative to that scale
    private const double TrajectoryOfScale = 1e-5;

    internal static string Model => Golden.Path("tiny-consistency");

    private static Tensor G(string key) => Golden.Tensor(Expected, key);

    private static JsonElement Index => Golden.Json("consistency-models/consistency-expected.json").RootElement;

    private static long[]? Longs(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Null => null,
        JsonValueKind.Number => [e.GetInt64()],
        _ => e.EnumerateArray().Select(x => x.GetInt64()).ToArray(),
    };

    [Theory]
    [InlineData("one-step")]
    [InlineData("timesteps-22-0")]
    [InlineData("three-steps")]
    [InlineData("random-labels")]
    public void TheRunMatchesDiffusers(string run)
    {
        var c = Index.GetProperty("cases").GetProperty(run);
        using var loaded = DiffusionPipeline.FromPretrained(Model);
        var pipe = Assert.IsType<ConsistencyModelPipeline>(loaded);
        var seen = new List<Tensor>();
        var timesteps = Longs(c.GetProperty("timesteps_arg"));
        using var result = pipe.Generate(c.GetProperty("batch_size").GetInt32(), Longs(c.GetProperty("class_labels")),
            timesteps is null ? c.GetProperty("num_inference_steps").GetInt32() : null, timesteps,
            seed: c.GetProperty("seed").GetInt64(), outputType: OutputType.Np,
            callbackOnStepEnd: (_, _, tensors) => seen.Add(tensors["latents"].detach().clone().DetachFromDisposeScope()));
        // 250·log(sigma) in float64: numpy's log and .NET's may differ in the last bit
        var expectedTimesteps = c.GetProperty("timesteps").EnumerateArray().Select(e => e.GetDouble()).ToArray();
        using (var ts = pipe.Scheduler.Timesteps.to(ScalarType.Float64))
            Assert.Equal(expectedTimesteps, ts.data<double>().ToArray(), (a, b) => Math.Abs(a - b) <= 1e-12 * Math.Abs(a));
        string p = run + "/";
        foreach (var (name, actual) in new[] { ("step1", seen[0]), ("sample", seen[^1]) })
        {
            double scale = Math.Max(1, G(p + name).abs().max().item<float>());
            log.WriteLine($"{name}: max diff {Tol.MaxAbsDiff(actual, G(p + name)):E3} of scale {scale:F1}");
            Tol.Close(actual, G(p + name), TrajectoryOfScale * scale, p + name);
        }
        log.WriteLine($"images: max diff {Tol.MaxAbsDiff(result.Array!, G(p + "images")):E3}");
        Tol.Close(result.Array!, G(p + "images"), Trajectory, p + "images");
        foreach (var t in seen) t.Dispose();
    }

    [Fact]
    public void LabelsDrawnFromTheGeneratorAreDiffusersRandint()
    {
        // diffusers' torch.randint(0, num_class_embeds, (B,)) after the initial randn, from the generator torch.manual_seed
        // returns: the same draw from a generator of the seed after randn of the sample's shape
        var c = Index.GetProperty("cases").GetProperty("random-labels");
        using var gen = new Generator((ulong)c.GetProperty("seed").GetInt64());
        using var noise = torch.randn([3, 3, 8, 8], generator: gen);
        using var labels = torch.randint(0, 10, [3], ScalarType.Int64, generator: gen);
        Assert.Equal(Longs(c.GetProperty("unet_class_labels")), labels.data<long>().ToArray());
    }

    [Fact]
    public void LoadingGivesTheUNetAndTheConsistencyScheduler()
    {
        using var pipe = ConsistencyModelPipeline.FromPretrained(Model);
        Assert.Equal(["unet", "scheduler"], pipe.Components.Keys);
        var scheduler = Assert.IsType<CMStochasticIterativeScheduler>(pipe.Scheduler);
        Assert.Equal((40, 80.0), (scheduler.NumTrainTimesteps, scheduler.InitNoiseSigma));
        Assert.Equal((10, "scale_shift"), (pipe.Unet.Config.NumClassEmbeds, pipe.Unet.Config.ResnetTimeScaleShift));
    }

    [Fact]
    public void BothNumInferenceStepsAndTimestepsAreRefused()
    {
        using var pipe = ConsistencyModelPipeline.FromPretrained(Model);
        var e = Assert.Throws<DiffusersException>(() => pipe.Generate(classLabels: [1], numInferenceSteps: 2, timesteps: [22, 0], seed: 0));
        Assert.Equal("ConsistencyModelPipeline: both num_inference_steps (2) and timesteps ([22, 0]) are supplied; pass exactly one of them (diffusers warns and uses timesteps)", e.Message);
    }

    [Fact]
    public void ClassLabelsMustBeOnePerImageAndInRange()
    {
        using var pipe = ConsistencyModelPipeline.FromPretrained(Model);
        var count = Assert.Throws<DiffusersException>(() => pipe.Generate(batchSize: 2, classLabels: [1], seed: 0));
        Assert.Equal("ConsistencyModelPipeline: class_labels has 1 label, expected one per image (batch size 2)", count.Message);
        var range = Assert.Throws<DiffusersException>(() => pipe.Generate(classLabels: [10], seed: 0));
        Assert.Equal("ConsistencyModelPipeline: class label 10 is out of range: the UNet has num_class_embeds 10 (labels 0 to 9)", range.Message);
    }

    [Fact]
    public void BadTimestepsAndOutputTypeAreRefused()
    {
        using var pipe = ConsistencyModelPipeline.FromPretrained(Model);
        var empty = Assert.Throws<DiffusersException>(() => pipe.Generate(classLabels: [1], timesteps: [], seed: 0));
        Assert.Equal("ConsistencyModelPipeline: timesteps is empty; pass at least one timestep or num_inference_steps", empty.Message);
        var latent = Assert.Throws<DiffusersException>(() => pipe.Generate(classLabels: [1], seed: 0, outputType: OutputType.Latent));
        Assert.Equal("ConsistencyModelPipeline: output_type=Latent is not supported. Make sure to choose one of ['pt', 'np', or 'pil']", latent.Message);
    }
}
