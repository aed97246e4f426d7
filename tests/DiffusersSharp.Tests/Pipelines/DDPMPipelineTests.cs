using DiffusersSharp.Imaging;
using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Pipelines;

/// <summary>The tiny-ddpm pipeline against diffusers' recorded run (golden README section A).</summary>
public class DDPMPipelineTests(ITestOutputHelper log)
{
    private const string Expected = "tiny-ddpm-expected.safetensors";
    private static string Model => Golden.Path("tiny-ddpm");

    [Fact]
    public void FullPipelineSeed0TenStepsMatchesDiffusers()
    {
        using var pipe = DDPMPipeline.FromPretrained(Model);
        using var result = pipe.Generate(numInferenceSteps: 10, seed: 0, outputType: OutputType.Np);
        using var expected = Golden.Tensor(Expected, "pipeline/images");
        var images = result.Array!;
        Assert.Equal(new long[] { 1, 32, 32, 3 }, images.shape);
        double maxErr = Tol.MaxAbsDiff(images, expected);
        using var within = ((images - expected).abs() <= 1.0 / 255).to(ScalarType.Float64).mean();
        double fraction = within.item<double>();
        log.WriteLine($"pipeline/images: max abs error {maxErr:E3}, within 1/255: {fraction:P3}");
        Assert.True(fraction >= 0.999, $"only {fraction:P3} of values within 1/255 (max error {maxErr:E3})");
        Assert.True(maxErr < 1e-4, $"max error {maxErr:E3}");
    }

    [Fact]
    public void Bf16PipelineStaysCloseToDiffusersFloat32()
    {
        // torch draws bfloat16 normals with another kernel than float32 ones, so a bf16 run is compared with
        // the recorded float32 noise fed in (the injected replay), which isolates the arithmetic precision.
        using var pipe = DiffusionPipeline.FromPretrained(Model, new LoadOptions { Dtype = ScalarType.BFloat16 });
        var ddpm = Assert.IsType<DDPMPipeline>(pipe);
        Assert.Equal(ScalarType.BFloat16, ddpm.Unet.DType);
        using var golden = Golden.Open(Expected);
        using var initial = golden.Load("pipeline/initial_noise");
        using var noise = golden.Load("loop/variance_noise");
        int next = 0;
        ddpm.ReplayNoise = _ => noise[next++].clone();
        using var result = ddpm.Generate(numInferenceSteps: 10, latents: initial, outputType: OutputType.Np);
        Assert.Equal(ScalarType.Float32, result.Array!.dtype);
        using var expected = golden.Load("injected/final_image");
        double maxErr = Tol.MaxAbsDiff(result.Array, expected);
        using var meanT = (result.Array - expected).abs().mean();
        double mean = meanT.item<float>();
        log.WriteLine($"bf16 vs diffusers fp32 (same noise): max abs {maxErr:E3}, mean abs {mean:E3}");
        Assert.True(mean < 0.02, $"mean error {mean:E3}");
        Assert.True(maxErr < 0.2, $"max error {maxErr:E3}");
    }

    [Fact]
    public void DiffusionPipelinePicksTheClassFromModelIndexAndReturnsImages()
    {
        using var pipe = DiffusionPipeline.FromPretrained(Model);
        var ddpm = Assert.IsType<DDPMPipeline>(pipe);
        Assert.Equal("DDPMScheduler", ddpm.Scheduler.ClassName);
        var reports = new List<PipelineProgress>();
        using var result = ddpm.Generate(numInferenceSteps: 10, seed: 0, progress: new SyncProgress(reports.Add));
        var img = Assert.Single(result.Images);
        Assert.Equal((32, 32, 3), (img.Width, img.Height, img.Channels));
        Assert.Equal(Enumerable.Range(1, 10), reports.Select(r => r.Step));
        Assert.Equal(new double[] { 900, 800, 700, 600, 500, 400, 300, 200, 100, 0 }, reports.Select(r => r.Timestep));
        // bytes: diffusers' numpy_to_pil of the golden float image; off by at most one level where floats differ
        using var expected = Golden.Tensor(Expected, "pipeline/images");
        var golden = ImageProcessor.NumpyToImages(expected).Single();
        int maxDiff = img.Pixels.Zip(golden.Pixels, (a, b) => Math.Abs(a - b)).Max();
        int equal = img.Pixels.Zip(golden.Pixels, (a, b) => a == b ? 1 : 0).Sum();
        log.WriteLine($"PNG bytes equal to diffusers': {equal}/{img.Pixels.Length}, max diff {maxDiff}");
        Assert.True(maxDiff <= 1);
        Assert.True(equal >= img.Pixels.Length * 0.999);
    }

    [Fact]
    public void HandWrittenLoopMatchesRecordedSteps()
    {
        using var unet = UNet2DModel.FromPretrained(Model, subfolder: "unet");
        using var scheduler = DDPMScheduler.FromPretrained(Model, subfolder: "scheduler");
        scheduler.SetTimesteps(10);
        using var expectedTimesteps = Golden.Tensor(Expected, "pipeline/timesteps");
        Assert.Equal(expectedTimesteps.data<long>().ToArray(), scheduler.Timesteps.data<long>().ToArray());

        using var golden = Golden.Open(Expected);
        using var modelOutputs = golden.Load("loop/model_output");
        using var samplesAfter = golden.Load("loop/sample_after_step");
        using var noGrad = torch.no_grad();
        using var g = new Generator(0);
        var sample = torch.randn(new long[] { 1, 3, 32, 32 }, generator: g);
        using (var initial = golden.Load("pipeline/initial_noise")) Tol.Close(sample, initial, 0, "initial noise");

        double worstOut = 0, worstSample = 0;
        for (int i = 0; i < 10; i++)
        {
            using var scope = torch.NewDisposeScope();
            var t = scheduler.Timesteps[i];
            var modelOutput = unet.Forward(sample, t).Sample;
            worstOut = Math.Max(worstOut, Tol.MaxAbsDiff(modelOutput, modelOutputs[i]));
            var next = scheduler.Step(modelOutput, t, sample, g).PrevSample;
            worstSample = Math.Max(worstSample, Tol.MaxAbsDiff(next, samplesAfter[i]));
            sample.Dispose();
            sample = next.DetachFromDisposeScope();
        }
        using var image = ImageProcessor.PtToNumpy(ImageProcessor.Denormalize(sample));
        using var finalImage = golden.Load("loop/final_image");
        double finalErr = Tol.MaxAbsDiff(image, finalImage);
        log.WriteLine($"loop: model_output max err {worstOut:E3}, sample_after_step max err {worstSample:E3}, final image {finalErr:E3}");
        sample.Dispose();
        Assert.True(worstOut < 1e-4, $"model output error {worstOut:E3}");
        Assert.True(worstSample < 1e-4, $"sample error {worstSample:E3}");
        Assert.True(finalErr < 1e-4, $"final image error {finalErr:E3}");
    }

    [Fact]
    public void EachStepFromTheRecordedInputMatchesToModelTolerance()
    {
        // Feeds step i the recorded sample of step i-1 (and the recorded noise), so errors cannot accumulate:
        // each UNet call within 1e-5, each scheduler step within 1e-5 relative.
        using var unet = UNet2DModel.FromPretrained(Model, subfolder: "unet");
        using var scheduler = DDPMScheduler.FromPretrained(Model, subfolder: "scheduler");
        scheduler.SetTimesteps(10);
        using var golden = Golden.Open(Expected);
        using var modelOutputs = golden.Load("loop/model_output");
        using var samplesAfter = golden.Load("loop/sample_after_step");
        using var noise = golden.Load("loop/variance_noise");
        using var noiseIndex = golden.Load("loop/variance_noise_step_index");
        var stepOfNoise = noiseIndex.data<long>().ToArray();
        using var noGrad = torch.no_grad();
        double worst = 0;
        for (int i = 0; i < 10; i++)
        {
            using var scope = torch.NewDisposeScope();
            var input = i == 0 ? golden.Load("pipeline/initial_noise") : samplesAfter[i - 1];
            var t = scheduler.Timesteps[i];
            var modelOutput = unet.Forward(input, t).Sample;
            double err = Tol.MaxAbsDiff(modelOutput, modelOutputs[i]);
            worst = Math.Max(worst, err);
            int k = Array.IndexOf(stepOfNoise, (long)i);
            var replay = new StepOptions
            {
                VarianceNoise = k >= 0 ? _ => noise[k].clone() : _ => throw new InvalidOperationException($"no noise drawn at step {i} in diffusers"),
            };
            var next = scheduler.Step(modelOutputs[i], t, input, replay).PrevSample;
            Tol.RelClose(next, samplesAfter[i], Tol.SchedulerRel, $"step {i}");
        }
        log.WriteLine($"per-step UNet max abs error {worst:E3}");
        Assert.True(worst <= Tol.ModelAbs, $"UNet error {worst:E3} > {Tol.ModelAbs:E1}");
    }

    [Fact]
    public void InjectedNoiseReplayMatchesDiffusers()
    {
        using var pipe = DDPMPipeline.FromPretrained(Model);
        using var golden = Golden.Open(Expected);
        using var initial = golden.Load("pipeline/initial_noise");
        using var noise = golden.Load("loop/variance_noise");
        int next = 0;
        pipe.ReplayNoise = shape => noise[next++].clone();
        using var result = pipe.Generate(numInferenceSteps: 10, latents: initial, outputType: OutputType.Np);
        Assert.Equal(9, next); // one draw per step with t > 0, as diffusers
        using var expected = golden.Load("injected/final_image");
        double err = Tol.MaxAbsDiff(result.Array!, expected);
        log.WriteLine($"injected/final_image max abs error {err:E3}");
        Assert.True(err < 1e-4, $"error {err:E3}");
    }

    [Fact]
    public void BatchOfTwoDrawsOneNoiseTensorAndGivesTwoImages()
    {
        // diffusers draws randn_tensor((2, 3, 32, 32), generator) once. torch's CPU normals come out of the generator in
        // order (in blocks of 16), so that draw is the recorded batch-1 run's first two: its initial noise, then its first
        // variance noise. (There is no recorded batch-2 run; and the output is clamped to [0, 1], so a range check would
        // only catch NaN.)
        using var pipe = DDPMPipeline.FromPretrained(Model);
        using var golden = Golden.Open(Expected);
        using var initial = golden.Load("pipeline/initial_noise");
        using var noise = golden.Load("loop/variance_noise");
        using var drawn = torch.cat([initial, noise[0]]);

        // one step (t = 0) draws no step noise: the run's only draw is the initial one, which took 6144 values (the
        // generator's next draw is the recorded run's third, values 6144-9215) and is the recorded pair
        using var g = new Generator(0);
        using var seeded = pipe.Generate(batchSize: 2, numInferenceSteps: 1, generator: g, outputType: OutputType.Pt);
        using (var next = torch.randn(new long[] { 1, 3, 32, 32 }, generator: g))
            Tol.Close(next, noise[1], 0, "the generator's draw after the pipeline's");
        using (var given = pipe.Generate(batchSize: 2, numInferenceSteps: 1, latents: drawn, outputType: OutputType.Pt))
            Assert.Equal(0.0, Tol.MaxAbsDiff(seeded.Tensor!, given.Tensor!));

        // ten steps from that noise, the step noise replayed (image 0's: the recorded one): image 0 is diffusers' batch-1
        // image, so the images of a batch are computed apart; image 1 is another image
        int draws = 0;
        pipe.ReplayNoise = shape =>
        {
            Assert.Equal(new long[] { 2, 3, 32, 32 }, shape);
            int k = draws++;
            return torch.cat([noise[k], noise[8 - k]]);
        };
        using var replayed = pipe.Generate(batchSize: 2, numInferenceSteps: 10, latents: drawn, outputType: OutputType.Np);
        pipe.ReplayNoise = null;
        Assert.Equal(9, draws);
        Assert.Equal(new long[] { 2, 32, 32, 3 }, replayed.Array!.shape);
        using var expected = golden.Load("injected/final_image");
        double err = Tol.MaxAbsDiff(replayed.Array[..1], expected);
        log.WriteLine($"batch of 2, image 0 vs diffusers' batch-1 image: max abs error {err:E3}");
        Assert.True(err < 1e-4, $"image 0 error {err:E3}");
        Assert.True(Tol.MaxAbsDiff(replayed.Array[1], replayed.Array[0]) > 0.1, "image 1 is image 0");

        using var result = pipe.Generate(batchSize: 2, numInferenceSteps: 2, seed: 0, outputType: OutputType.Pt);
        Assert.Equal(new long[] { 2, 3, 32, 32 }, result.Tensor!.shape);
        // the same seed twice gives the same images; another seed does not
        using var again = pipe.Generate(batchSize: 2, numInferenceSteps: 2, seed: 0, outputType: OutputType.Pt);
        Assert.Equal(0.0, Tol.MaxAbsDiff(again.Tensor!, result.Tensor));
        using var other = pipe.Generate(batchSize: 2, numInferenceSteps: 2, seed: 1, outputType: OutputType.Pt);
        Assert.True(Tol.MaxAbsDiff(other.Tensor!, result.Tensor) > 0.01);
    }

    [Theory]
    [InlineData(1, 0, "DDPMPipeline: num_inference_steps must be between 1 and num_train_timesteps = 1000 of the DDPMScheduler, got 0")]
    [InlineData(1, -5, "DDPMPipeline: num_inference_steps must be between 1 and num_train_timesteps = 1000 of the DDPMScheduler, got -5")]
    [InlineData(1, 1001, "DDPMPipeline: num_inference_steps must be between 1 and num_train_timesteps = 1000 of the DDPMScheduler, got 1001")]
    [InlineData(0, 10, "DDPMPipeline: batch size must be at least 1, got 0")]
    [InlineData(-2, 10, "DDPMPipeline: batch size must be at least 1, got -2")]
    public void BadArgumentsAreRejectedWithTheValue(int batch, int steps, string message)
    {
        using var pipe = DDPMPipeline.FromPretrained(Model);
        var e = Assert.Throws<DiffusersException>(() => pipe.Generate(batchSize: batch, numInferenceSteps: steps, seed: 0));
        Assert.Equal(message, e.Message);
    }

    [Fact]
    public void CancellationStopsTheLoop()
    {
        using var pipe = DDPMPipeline.FromPretrained(Model);
        using var cts = new CancellationTokenSource();
        int steps = 0;
        var progress = new SyncProgress(p => { steps = p.Step; if (p.Step == 2) cts.Cancel(); });
        var e = Assert.ThrowsAny<OperationCanceledException>(() =>
            pipe.Generate(numInferenceSteps: 10, seed: 0, progress: progress, cancellationToken: cts.Token));
        Assert.Equal(cts.Token, e.CancellationToken);   // stopped by the caller's token
        Assert.Equal(2, steps);
    }

    [Fact]
    public void MemoryStaysFlatOverManySteps()
    {
        // TorchSharp counts the tensors created and disposed on this thread
        // (DisposeScopeManager.Statistics.ThreadTotalLiveCount): the live count after step 20 must equal the
        // count after the last step: no step leaves a tensor behind. (RSS is not asserted here: xunit runs other
        // test classes in this process at the same time, so the process RSS measures them too. The RSS check,
        // < 5% growth from step 100 to step 1000, runs in its own process: `bench -- memory`.)
        using var pipe = DDPMPipeline.FromPretrained(Model);
        var live = new Dictionary<int, long>();
        const int steps = 120;
        var progress = new SyncProgress(p =>
        {
            if (p.Step is 20 or steps)
            {
                live[p.Step] = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
            }
        });
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        using (var result = pipe.Generate(numInferenceSteps: steps, seed: 0, outputType: OutputType.Pt, progress: progress))
        {
            // the output tensor only: the scheduler's new timesteps replaced (and freed) the ones it held
            Assert.Equal(1, DisposeScopeManager.Statistics.ThreadTotalLiveCount - before);
        }
        long after = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        log.WriteLine($"live tensors: step 20 {live[20]}, step {steps} {live[steps]}, before {before}, after {after}");
        Assert.Equal(live[20], live[steps]);
        Assert.Equal(before, after);
    }

    [Fact]
    public void UnknownPipelineClassListsTheKnownOnes()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("model_index.json"), """{"_class_name": "FancyPipeline", "unet": ["diffusers", "UNet2DModel"]}""");
        var e = Assert.Throws<ConfigException>(() => DiffusionPipeline.FromPretrained(dir.Path));
        Assert.Equal($"{dir.File("model_index.json")}: unknown pipeline class \"FancyPipeline\" (_class_name); known pipeline classes: " +
                     string.Join(", ", DiffusionPipeline.KnownClasses), e.Message);
        Assert.Contains("DDPMPipeline", e.Message);
    }

    [Fact]
    public void MissingFolderOrModelIndexIsAClearError()
    {
        using var dir = new TempDir();
        var e = Assert.Throws<ConfigException>(() => DiffusionPipeline.FromPretrained(dir.Path));
        Assert.Equal($"{dir.Path} is not a diffusers pipeline folder: {dir.File("model_index.json")} not found", e.Message);
        File.WriteAllText(dir.File("model_index.json"), "{\"_class_name\": \"DDPMPipeline\",\n  \"unet\": [\"diffusers\" \"UNet2DModel\"]}");
        var bad = Assert.Throws<ConfigException>(() => DiffusionPipeline.FromPretrained(dir.Path));
        Assert.StartsWith($"{dir.File("model_index.json")}: invalid JSON (line 2, column", bad.Message);
        string missing = Path.Combine(dir.Path, "nope");
        var m = Assert.Throws<DiffusersException>(() => DiffusionPipeline.FromPretrained(missing));
        Assert.StartsWith($"'{missing}' is neither an existing folder nor a valid Hugging Face Hub id", m.Message);
    }

    [Fact]
    public void MissingComponentFolderIsNamed()
    {
        using var dir = new TempDir();
        File.Copy(Path.Combine(Model, "model_index.json"), dir.File("model_index.json"));
        var e = Assert.Throws<ConfigException>(() => DiffusionPipeline.FromPretrained(dir.Path));
        Assert.Equal($"{dir.Path}: the pipeline's 'unet' folder is missing ({Path.Combine(dir.Path, "unet")})", e.Message);
    }
}

/// <summary>An IProgress that reports synchronously (Progress&lt;T&gt; posts to the thread pool).</summary>
internal sealed class SyncProgress(Action<PipelineProgress> report) : IProgress<PipelineProgress>
{
    public void Report(PipelineProgress value) => report(value);
}
