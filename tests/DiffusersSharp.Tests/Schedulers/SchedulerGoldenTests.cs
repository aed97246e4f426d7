using System.Text.Json;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;
using C = DiffusersSharp.Tests.Schedulers.SchedulerGoldenCases;

namespace DiffusersSharp.Tests.Schedulers;

/// <summary>Every implemented case of golden/schedulers.json (README section B) and of the other SchedulerGoldenCases sources, generically.</summary>
[Collection(SchedulerGoldenCollection.Name)]
public class SchedulerGoldenTests
{
    public static TheoryData<string> Cases => C.Implemented();

    [Fact]
    public void EveryCaseMapsToAnImplementedOrListedClass()
    {
        foreach (var name in C.AllCaseNames)
        {
            string cls = C.ClassOf(name);
            bool registered = SchedulerFactory.KnownClasses.Contains(cls);
            Assert.True(registered != C.NotYetImplemented.Contains(cls),
                $"case {name}: class {cls} is {(registered ? "registered but still listed in NotYetImplemented" : "neither registered nor listed in NotYetImplemented")}");
        }
        Assert.NotEmpty(C.Implemented());
    }

    [Theory, MemberData(nameof(Cases))]
    public void BetasAndAlphasCumprodAreBitExact(string name)
    {
        using var s = C.Create(name);
        Assert.Equal(C.ClassOf(name), s.ClassName);
        using var betas = C.T(name, "betas");
        using var ac = C.T(name, "alphas_cumprod");
        AssertExact(s.Betas, betas, $"{name} betas");
        AssertExact(s.AlphasCumprod, ac, $"{name} alphas_cumprod");
    }

    [Theory, MemberData(nameof(Cases))]
    public void TimestepsSigmasAndInitNoiseSigma(string name)
    {
        using var s0 = C.Create(name);
        foreach (var set in C.Case(name).GetProperty("set_timesteps").EnumerateObject())
        {
            int n = int.Parse(set.Name);
            using var s = SchedulerFactory.FromConfig(s0.Config);
            Assert.Equal(s0.ClassName, s.ClassName);
            s.SetTimesteps(n);
            using var ts = C.T(name, $"timesteps_N{n}");
            Assert.Equal(ts.dtype, s.Timesteps.dtype);
            AssertExact(s.Timesteps, ts, $"{name} timesteps_N{n}");
            Assert.Equal(set.Value.GetProperty("num_timesteps").GetInt32(), (int)s.Timesteps.shape[0]);
            double sigma = set.Value.GetProperty("init_noise_sigma").GetDouble();
            Assert.True(Math.Abs(s.InitNoiseSigma - sigma) <= 1e-6 * Math.Max(1, sigma), $"{name} N={n}: init_noise_sigma {s.InitNoiseSigma} != {sigma}");
            if (C.Has(name, $"sigmas_N{n}"))
            {
                Assert.NotNull(s.Sigmas);
                using var sig = C.T(name, $"sigmas_N{n}");
                Tol.RelClose(s.Sigmas!, sig, Tol.SchedulerRel, $"{name} sigmas_N{n}", floor: 1e-6);
            }
            else Assert.Null(s.Sigmas);
        }
    }

    /// <summary>The loop with the recorded noise fed back (no generator).</summary>
    [Theory, MemberData(nameof(Cases))]
    public void LoopWithRecordedNoise(string name)
    {
        using var noise = C.Has(name, "loop/noise") ? C.T(name, "loop/noise") : null;
        using var noiseIdx = C.Has(name, "loop/noise_step_index") ? C.T(name, "loop/noise_step_index") : null;
        var stepIdx = noiseIdx is null ? [] : noiseIdx.data<long>().ToArray();
        int draws = 0, currentStep = -1;
        var replay = new StepOptions
        {
            VarianceNoise = shape =>
            {
                Assert.True(noise is not null && draws < noise.shape[0], $"{name}: step {currentStep} draws more noise than recorded");
                Assert.Equal(stepIdx[draws], currentStep);
                return noise![draws++];
            },
        };
        RunLoop(name, replay, i => currentStep = i);
        Assert.Equal(C.Case(name).GetProperty("noise_draws").GetInt32(), draws);
    }

    /// <summary>The loop with a real torch generator of the case's seed: the same draws in diffusers' order.</summary>
    [Theory, MemberData(nameof(Cases))]
    public void LoopWithGenerator(string name)
    {
        ulong? seed = C.GeneratorSeed(name);
        using var g = seed is null ? null : new Generator(seed.Value);
        RunLoop(name, g, _ => { });
    }

    /// <summary>A Generator(seed) reproduces the recorded step noise (draws of the sample's shape, in order).</summary>
    [Theory, MemberData(nameof(Cases))]
    public void GeneratorReproducesRecordedNoise(string name)
    {
        ulong? seed = C.GeneratorSeed(name);
        int draws = C.Case(name).GetProperty("noise_draws").GetInt32();
        if (draws == 0) { Assert.False(C.Has(name, "loop/noise")); return; }
        Assert.NotNull(seed);
        using var noise = C.T(name, "loop/noise");
        using var g = new Generator(seed!.Value);
        for (int i = 0; i < draws; i++)
        {
            using var e = noise[i];
            using var n = torch.randn(e.shape, generator: g);
            Tol.Close(n, e, 1e-6, $"{name} noise draw {i}");
        }
    }

    [Theory, MemberData(nameof(Cases))]
    public void AddNoiseAndVelocity(string name)
    {
        using var s = C.Create(name);
        C.SetLoopTimesteps(name, s);
        using var original = C.T(name, "add_noise/original");
        using var noise = C.T(name, "add_noise/noise");
        using var ts = C.T(name, "add_noise/timesteps");
        using var noisy = C.T(name, "add_noise/noisy");
        using var actual = s.AddNoise(original, noise, ts);
        Rel(actual, noisy, $"{name} add_noise");
        if (C.Has(name, "get_velocity/velocity"))
        {
            using var v = C.T(name, "get_velocity/velocity");
            using var av = s.GetVelocity(original, noise, ts);
            Rel(av, v, $"{name} get_velocity");
        }
    }

    private static void RunLoop(string name, StepOptions options, Action<int> onStep)
    {
        using var scope = torch.NewDisposeScope();
        using var s = C.Create(name);
        // the step arguments diffusers passes in this case are ones the class says it reads
        foreach (var kw in C.Case(name).GetProperty("step_kwargs").EnumerateObject()) Assert.Contains(kw.Name, s.StepArguments);
        if (C.Case(name).GetProperty("noise_draws").GetInt32() > 0) Assert.Contains("generator", s.StepArguments);
        C.SetLoopTimesteps(name, s);
        var expectedTs = C.T(name, "loop/timesteps");
        AssertExact(s.Timesteps, expectedTs, $"{name} loop/timesteps");
        double sigma = C.Case(name).GetProperty("loop_init_noise_sigma").GetDouble();
        Assert.True(Math.Abs(s.InitNoiseSigma - sigma) <= 1e-6 * Math.Max(1, sigma));
        var init = C.T(name, "loop/init_randn");
        var e = C.T(name, "loop/E");
        var v = C.Has(name, "loop/V") ? C.T(name, "loop/V") : null;
        var sample = init * s.InitNoiseSigma;
        Rel(sample, C.T(name, "loop/x_T"), $"{name} x_T");
        var scaledExp = C.T(name, "loop/scaled_model_input");
        var outExp = C.T(name, "loop/model_output");
        var prevExp = C.T(name, "loop/prev_sample");
        var ts = s.TimestepValues;
        Assert.Equal(prevExp.shape[0], ts.Length);
        for (int i = 0; i < ts.Length; i++)
        {
            onStep(i);
            var scaled = s.ScaleModelInput(sample, ts[i]);
            Rel(scaled, scaledExp[i], $"{name} step {i} scaled_model_input");
            var modelOutput = 0.1 * scaled + e;
            if (v is not null) modelOutput = torch.cat([modelOutput, v], 1);
            Rel(modelOutput, outExp[i], $"{name} step {i} model_output");
            var output = s.Step(modelOutput, ts[i], sample, C.StepOptionsOf(name, options));
            sample = output.PrevSample;
            Rel(sample, prevExp[i], $"{name} step {i} prev_sample");
        }
    }

    /// <summary>
    /// ≤ 1e-5 relative error (Tol.SchedulerRel), relative to the tensor's magnitude: max|a-e| / max|e|. (Per-element
    /// ratios blow up on entries that are near zero by cancellation, where 1-ulp differences of exp/log between
    /// torch 1.13's and libtorch 2.10's vector kernels are all that differs.)
    /// </summary>
    internal static void Rel(Tensor actual, Tensor expected, string what)
    {
        using var mx = expected.abs().max().to(ScalarType.Float64);
        Tol.RelClose(actual, expected, Tol.SchedulerRel, what, floor: Math.Max(mx.item<double>(), 1e-12));
    }

    internal static void AssertExact(Tensor actual, Tensor expected, string what)
    {
        Assert.Equal(expected.shape, actual.shape);
        Assert.Equal(expected.dtype, actual.dtype);
        using var eq = actual.cpu().eq(expected);
        long mismatches = eq.logical_not().sum().item<long>();
        if (mismatches > 0)
        {
            double diff = Tol.MaxAbsDiff(actual.cpu(), expected);
            Assert.Fail($"{what}: {mismatches} of {expected.numel()} values differ (max |diff| {diff:E3}); expected bit-exact");
        }
    }
}
