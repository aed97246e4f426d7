using DiffusersSharp.Schedulers;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;
using K = DiffusersSharp.Tests.Schedulers.VpSolverKit;

namespace DiffusersSharp.Tests.Schedulers;

/// <summary>
/// KDPM2DiscreteScheduler and KDPM2AncestralDiscreteScheduler (no golden case), from k-diffusion's DPM-Solver-2:
/// the σ tables (log-midpoints ι_i = √(σ_i σ_{i−1}), σ_up / σ_down), the interleaved timesteps, and steps on a model
/// whose denoised prediction is a constant c, for which the probability-flow ODE dx/dσ = (x − c)/σ is solved
/// exactly by both half steps (x − c scales with σ); the ancestral variant adds σ_up z with z the second-half draw.
/// </summary>
public class KDPM2SchedulerTests
{
    private static KDPM2DiscreteSchedulerConfig Sd => new() { BetaSchedule = "scaled_linear", StepsOffset = 1 };
    private static KDPM2AncestralDiscreteSchedulerConfig SdA => new() { BetaSchedule = "scaled_linear", StepsOffset = 1 };

    // linspace(0, 999, 3)[::-1] = [999, 499.5, 0]: sigma interpolated halfway between t = 499 and 500
    private static readonly double[] S3 = [K.SigmaOfT(999), (K.SigmaOfT(499) + K.SigmaOfT(500)) / 2, K.SigmaOfT(0), 0];

    [Fact]
    public void SigmaTablesAndInterleavedTimesteps()
    {
        using var s = new KDPM2DiscreteScheduler(Sd);
        s.SetTimesteps(3);
        double[] expectedSigmas = [S3[0], S3[1], S3[1], S3[2], S3[2], 0, 0, 0];
        var sig = s.Sigmas!.data<float>().ToArray();
        Assert.Equal(expectedSigmas.Length, sig.Length);
        for (int i = 0; i < sig.Length; i++) Assert.Equal(expectedSigmas[i], sig[i], 2e-6 * Math.Max(1, expectedSigmas[i]));
        Assert.Equal(ScalarType.Float32, s.Timesteps.dtype);
        var ts = s.TimestepValues;
        double[] expectedTs = [999, K.TOfSigma(Math.Sqrt(S3[0] * S3[1])), 499.5, K.TOfSigma(Math.Sqrt(S3[1] * S3[2])), 0];
        Assert.Equal(expectedTs.Length, ts.Length);
        for (int i = 0; i < ts.Length; i++) Assert.Equal(expectedTs[i], ts[i], 2e-3);
        Assert.Equal(S3[0], s.InitNoiseSigma, 1e-5);
        Assert.Equal(2, s.Order);

        using var lead = new KDPM2DiscreteScheduler(Sd with { TimestepSpacing = "leading" });
        lead.SetTimesteps(4); // (arange(4) * 250)[::-1] + 1 = [751, 501, 251, 1]
        Assert.Equal(751, lead.TimestepValues[0]);
        Assert.Equal(1, lead.TimestepValues[^1]);
        Assert.Equal(Math.Sqrt(K.SigmaOfT(751) * K.SigmaOfT(751) + 1), lead.InitNoiseSigma, 1e-4);
    }

    [Fact]
    public void KarrasSigmasGiveFloat64RoundedTimesteps()
    {
        using var s = new KDPM2DiscreteScheduler(Sd with { UseKarrasSigmas = true });
        s.SetTimesteps(4);
        var expected = K.Karras(4);
        var sig = s.Sigmas!.data<float>().ToArray();
        Assert.Equal(expected[0], sig[0], 2e-6 * expected[0]);
        for (int i = 1; i < 4; i++)
        {
            Assert.Equal(expected[i], sig[2 * i - 1], 2e-6 * expected[i]);
            Assert.Equal(expected[i], sig[2 * i], 2e-6 * expected[i]);
        }
        Assert.Equal(ScalarType.Float64, s.Timesteps.dtype); // diffusers keeps np.round's float64 here
        var ts = s.TimestepValues;
        for (int i = 0; i < 4; i++) Assert.Equal(Math.Round(K.TOfSigma(expected[i])), ts[2 * i]);
        for (int i = 1; i < 4; i++) Assert.Equal(K.TOfSigma(Math.Sqrt(expected[i - 1] * expected[i])), ts[2 * i - 1], 2e-3);
    }

    [Theory]
    [InlineData("epsilon")]
    [InlineData("v_prediction")]
    public void StepsFollowTheExactFlowForAConstantDenoiser(string prediction)
    {
        using var s = new KDPM2DiscreteScheduler(Sd with { PredictionType = prediction });
        s.SetTimesteps(3);
        using var c = K.Randn(1, 1, 4, 8, 8);
        var x = K.Randn(2, 1, 4, 8, 8) * (float)S3[0];
        using var xStart = x.clone();
        var ts = s.TimestepValues;
        for (int i = 0; i < ts.Length; i++)
        {
            int step = i / 2;
            bool firstHalf = i % 2 == 0;
            // sigma the scheduler denoises at: sigma_i in the first half, the log-midpoint with the next one in the second
            double sigmaIn = firstHalf ? S3[step] : Math.Sqrt(S3[step] * S3[step + 1]);
            using var scaled = s.ScaleModelInput(x, ts[i]);
            K.RelMax(scaled, K.D(x) / Math.Sqrt(sigmaIn * sigmaIn + 1), 1e-5, $"scale_model_input {i}");
            Tensor mo = prediction == "epsilon"
                ? (x - c) / (float)sigmaIn
                : (x / (float)(sigmaIn * sigmaIn + 1) - c) * (float)(Math.Sqrt(sigmaIn * sigmaIn + 1) / sigmaIn);
            x = s.Step(mo, ts[i], x).PrevSample;
            // after a first half: sigma = midpoint of (step, step+1); after a second half: sigma_{step+1}
            double sigmaNow = firstHalf ? Math.Sqrt(S3[step] * S3[step + 1]) : S3[step + 1];
            K.RelMax(x, K.D(c) + (K.D(xStart) - K.D(c)) * (sigmaNow / S3[0]), 2e-5, $"{prediction} call {i}");
        }
        K.RelMax(x, c, 1e-5, "final sample = the denoised value");
    }

    [Fact]
    public void AncestralTablesSplitTheNextSigmaIntoUpAndDown()
    {
        using var s = new KDPM2AncestralDiscreteScheduler(SdA);
        s.SetTimesteps(3);
        // up_i = σ_{i+1} √(σ_i² − σ_{i+1}²) / σ_i, down_i = √(σ_{i+1}² − up_i²); doubled like the sigmas
        for (int i = 0; i < 3; i++)
        {
            double up = S3[i + 1] * Math.Sqrt(S3[i] * S3[i] - S3[i + 1] * S3[i + 1]) / S3[i];
            double down = Math.Sqrt(S3[i + 1] * S3[i + 1] - up * up);
            int j = i == 0 ? 0 : 2 * i - 1;
            Assert.Equal(up, s.SigmasUp[j], 2e-6 * Math.Max(1, up));
            Assert.Equal(down, s.SigmasDown[j], 2e-6 * Math.Max(1, down));
            Assert.Equal(S3[i + 1] * S3[i + 1], down * down + up * up, 1e-6 * Math.Max(1, S3[i + 1] * S3[i + 1]));
        }
        // timesteps: [t0, t(ι_0), t1, t(ι_1), t2] with ι_i = √(σ_i down_i)
        var ts = s.TimestepValues;
        Assert.Equal(5, ts.Length);
        Assert.Equal(499.5, ts[2]);
        double up0 = S3[1] * Math.Sqrt(S3[0] * S3[0] - S3[1] * S3[1]) / S3[0];
        Assert.Equal(K.TOfSigma(Math.Sqrt(S3[0] * Math.Sqrt(S3[1] * S3[1] - up0 * up0))), ts[1], 2e-3);
    }

    [Fact]
    public void AncestralStepsDrawEveryCallAndAddTheSecondHalfNoise()
    {
        using var s = new KDPM2AncestralDiscreteScheduler(SdA);
        s.SetTimesteps(3);
        using var g = new Generator(99);
        using var replay = new Generator(99);
        using var c = K.Randn(1, 1, 4, 8, 8);
        var x = K.Randn(2, 1, 4, 8, 8) * (float)S3[0];
        var ts = s.TimestepValues;
        Tensor? stepStart = null;
        for (int i = 0; i < ts.Length; i++)
        {
            int step = i / 2;
            bool firstHalf = i % 2 == 0;
            double up = S3[step + 1] * Math.Sqrt(S3[step] * S3[step] - S3[step + 1] * S3[step + 1]) / S3[step];
            double down = Math.Sqrt(S3[step + 1] * S3[step + 1] - up * up);
            double mid = Math.Sqrt(S3[step] * down);
            double sigmaIn = firstHalf ? S3[step] : mid;
            using var mo = (x - c) / (float)sigmaIn;
            using var z = torch.randn([1, 4, 8, 8], generator: replay); // drawn at every call
            if (firstHalf) stepStart = x;
            x = s.Step(mo, ts[i], x, g).PrevSample;
            Tensor expected = firstHalf
                ? K.D(c) + (K.D(stepStart!) - K.D(c)) * (mid / S3[step])
                : K.D(c) + (K.D(stepStart!) - K.D(c)) * (down / S3[step]) + K.D(z) * up;
            // σ_down = √(σ_{i+1}² − σ_up²) cancels in float32 (as in diffusers) when σ_{i+1} ≪ σ_i: 1e-4
            K.RelMax(x, expected, 1e-4, $"call {i}");
        }
        using var next = torch.randn([16], generator: g);
        using var nextReplay = torch.randn([16], generator: replay);
        Tol.Close(next, nextReplay, 0, "one draw per call");
    }

    [Fact]
    public void BadInput()
    {
        Assert.Contains("prediction_type \"sample\" is not implemented for KDPM2DiscreteScheduler",
            Assert.Throws<ConfigException>(() => new KDPM2DiscreteScheduler(new() { PredictionType = "sample" })).Message);
        Assert.Contains("prediction_type \"sample\" is not implemented for KDPM2AncestralDiscreteScheduler",
            Assert.Throws<ConfigException>(() => SchedulerFactory.FromJson("{\"_class_name\": \"KDPM2AncestralDiscreteScheduler\", \"prediction_type\": \"sample\"}")).Message);
        Assert.Contains("timestep_spacing \"random\" is not supported",
            Assert.Throws<ConfigException>(() => new KDPM2DiscreteScheduler(new() { TimestepSpacing = "random" })).Message);
        using var s = new KDPM2DiscreteScheduler(Sd);
        s.SetTimesteps(3);
        using var x = torch.zeros(1, 4, 8, 8);
        Assert.Contains("is not in the scheduler's timesteps", Assert.Throws<DiffusersException>(() => s.Step(x, 500, x)).Message);
        foreach (var t in s.TimestepValues) s.Step(x, t, x).PrevSample.Dispose();
        Assert.Contains("Step called more times than there are timesteps", Assert.Throws<DiffusersException>(() => s.Step(x, 0, x)).Message);
    }

    [Fact]
    public void AddNoiseUsesTheStepSigmas()
    {
        using var s = new KDPM2DiscreteScheduler(Sd);
        s.SetTimesteps(3);
        using var x0 = K.Randn(1, 2, 4, 8, 8);
        using var n = K.Randn(2, 2, 4, 8, 8);
        using var t = torch.tensor(new float[] { 999f, 499.5f });
        using var noisy = s.AddNoise(x0, n, t);
        K.RelMax(noisy[0], K.D(x0[0]) + K.D(n[0]) * S3[0], 1e-6, "t=999");
        K.RelMax(noisy[1], K.D(x0[1]) + K.D(n[1]) * S3[1], 1e-6, "t=499.5");
    }
}
