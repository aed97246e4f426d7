using DiffusersSharp.Schedulers;
using TorchSharp;
using static TorchSharp.torch;
using K = DiffusersSharp.Tests.Schedulers.VpSolverKit;

namespace DiffusersSharp.Tests.Schedulers;

/// <summary>
/// Spaced schedules with a timestep outside [0, num_train_timesteps), which diffusers 0.25.1 builds without a word.
/// "trailing" is <c>np.round(np.arange(T, 0, -T/N)) - 1</c>; for T = 1000 and N = 61 numpy's arange has
/// ceil(1000 / (1000/61)) = ceil(61.00000000000001) = 62 values, 1000 − i·(1000/61) (computed as numpy does, start +
/// i·delta): 1000, 983.6, …, 16.39, 1.1e-13, so the schedule is [999, 983, 966, …, 15, −1]. "leading" with a
/// steps_offset can reach T. The sigma schedulers take σ of such a timestep from <c>np.interp</c>, which clamps to the
/// table's ends; diffusers' DDPM, DDIM and PNDM index alphas_cumprod with it.
/// </summary>
public class TimestepSpacingEdgeTests
{
    private const string Sd = "\"beta_schedule\": \"scaled_linear\", \"beta_start\": 0.00085, \"beta_end\": 0.012";

    private static SchedulerBase Create(string cls, string keys) =>
        SchedulerFactory.FromJson($"{{\"_class_name\": \"{cls}\", {Sd}, {keys}}}");

    /// <summary>
    /// DPM-Solver, UniPC and DEIS: diffusers keeps the 62nd timestep (−1), σ(−1) = σ(t=0) by np.interp, then sigma_last
    /// = σ(t=0) as always; num_inference_steps becomes 62 and the last step runs from σ(0) to σ(0). Was an
    /// IndexOutOfRangeException in SetTimesteps.
    /// </summary>
    [Theory]
    [InlineData("DPMSolverMultistepScheduler")]
    [InlineData("UniPCMultistepScheduler")]
    [InlineData("DEISMultistepScheduler")]
    public void VpSolversKeepTheTrailingOvershootWithTheFirstSigma(string cls)
    {
        using var s = Create(cls, "\"timestep_spacing\": \"trailing\"");
        s.SetTimesteps(61);
        var ts = K.Longs(s.Timesteps);
        Assert.Equal(62, ts.Length);
        Assert.Equal(62, s.NumInferenceSteps);
        Assert.Equal(new long[] { 999, 983, 966 }, ts[..3]);
        Assert.Equal(new long[] { 15, -1 }, ts[^2..]);
        var sig = s.Sigmas!.data<float>().ToArray();
        Assert.Equal(63, sig.Length);
        Assert.Equal(K.SigmaOfT(15), sig[60], 1e-6 * K.SigmaOfT(15));
        Assert.Equal(K.SigmaOfT(0), sig[61], 1e-6 * K.SigmaOfT(0));
        Assert.Equal(sig[61], sig[62]);

        // the whole loop runs (the model is called at t = -1, as in diffusers) and stays finite
        var x = K.Randn(1, 1, 4, 8, 8) * (float)s.InitNoiseSigma;
        foreach (var t in s.TimestepValues)
        {
            using var mo = s.ScaleModelInput(x, t) * 0.3f + 0.1f;
            x = s.Step(mo, t, x).PrevSample;
        }
        Assert.True(torch.isfinite(x).all().item<bool>(), $"{cls}: the loop over the overshooting schedule is not finite");

        // "leading" + steps_offset 1 at 999 steps: 1000 // 1000 = 1, [999, ..., 0] + 1 starts at 1000; np.interp clamps
        // it to σ(999)
        using var lead = Create(cls, "\"timestep_spacing\": \"leading\", \"steps_offset\": 1");
        lead.SetTimesteps(999);
        Assert.Equal(1000, K.Longs(lead.Timesteps)[0]);
        Assert.Equal(K.SigmaOfT(999), lead.Sigmas!.data<float>()[0], 1e-6 * K.SigmaOfT(999));
    }

    /// <summary>
    /// KDPM2 (and its ancestral variant) size the interpolated tables and the interleaved timesteps by the spaced
    /// timesteps, as diffusers does by the arrays: 62 of them give 2·62 − 1 = 123 model calls, the last a first half
    /// from σ(−1) = σ(0) straight to σ = 0. They were sized by the 61 steps asked for: 121 calls, the loop ending
    /// half-way to σ(0) with noise left in the sample.
    /// </summary>
    [Fact]
    public void Kdpm2KeepsEveryTrailingTimestepAndEndsAtSigmaZero()
    {
        using var anc = (KDPM2AncestralDiscreteScheduler)Create("KDPM2AncestralDiscreteScheduler", "\"timestep_spacing\": \"trailing\"");
        anc.SetTimesteps(61);
        var ta = anc.TimestepValues;
        Assert.Equal(123, ta.Length);
        Assert.Equal(-1, ta[^1]);
        Assert.Equal(15, ta[^3]);
        Assert.Equal(126, anc.SigmasUp.Count);

        using var s = Create("KDPM2DiscreteScheduler", "\"timestep_spacing\": \"trailing\"");
        s.SetTimesteps(61);
        var ts = s.TimestepValues;
        Assert.Equal(123, ts.Length);
        Assert.Equal(999, ts[0]);
        Assert.Equal(15, ts[^3]);
        Assert.Equal(-1, ts[^1]);
        // σ_k at the integer timesteps (σ(−1) = σ(0)), then 0; doubled as cat([s[:1], s[1:].repeat_interleave(2), s[-1:]])
        var sk = Enumerable.Range(0, 62).Select(k => K.SigmaOfT(Math.Max((long)ts[2 * k], 0))).Append(0.0).ToArray();
        var table = s.Sigmas!.data<float>().ToArray();
        Assert.Equal(126, table.Length);
        Assert.Equal(sk[61], table[^4], 1e-6 * sk[61]);
        Assert.Equal(new float[] { 0, 0, 0 }, table[^3..]);

        // a model whose denoised prediction is the constant c: each half step is exact, and the last one lands on c
        using var c = K.Randn(1, 1, 4, 8, 8);
        var x = K.Randn(2, 1, 4, 8, 8) * (float)sk[0];
        for (int i = 0; i < ts.Length; i++)
        {
            int step = (i + 1) / 2;
            double sigmaIn = i % 2 == 0 ? sk[step] : Math.Sqrt(sk[step - 1] * sk[step]);
            using var mo = (x - c) / (float)sigmaIn;
            x = s.Step(mo, ts[i], x).PrevSample;
        }
        K.RelMax(x, c, 1e-5, "the last call reaches sigma 0: the sample is the denoised value");
    }

    /// <summary>
    /// DDPM, DDIM and PNDM index alphas_cumprod by the timestep: at −1 diffusers reads the table's last entry (ᾱ of
    /// t = 999) and returns a wrong sample, at T it fails with an IndexError. Refused in SetTimesteps, before any model
    /// call, naming the spacing and the step count; the schedule in place stays.
    /// </summary>
    [Theory]
    [InlineData("DDPMScheduler")]
    [InlineData("DDIMScheduler")]
    [InlineData("PNDMScheduler")]
    public void AlphaIndexedSchedulersRefuseATimestepOutsideTheTable(string cls)
    {
        using var s = Create(cls, "\"timestep_spacing\": \"trailing\", \"skip_prk_steps\": true");
        s.SetTimesteps(60);
        var before = s.TimestepValues;
        var e = Assert.Throws<DiffusersException>(() => s.SetTimesteps(61));
        Assert.Equal($"{cls}: timestep_spacing \"trailing\" with num_inference_steps 61 gives timestep -1, outside [0, 1000): " +
            "np.arange(1000, 0, -1000/61) holds 62 values, the last rounding to 0, and diffusers' step at -1 reads " +
            "alphas_cumprod[-1], the last entry, and returns a wrong sample; use another number of steps", e.Message);
        Assert.Equal(before, s.TimestepValues);
        Assert.Equal(60, s.NumInferenceSteps);

        using var lead = Create(cls, "\"timestep_spacing\": \"leading\", \"steps_offset\": 1, \"skip_prk_steps\": true");
        Assert.Equal($"{cls}: timestep_spacing \"leading\" with num_inference_steps 1000 gives timestep 1000, outside [0, 1000): " +
            "steps_offset 1 moves the first timestep past the last training step, where diffusers' step fails; use another number of steps",
            Assert.Throws<DiffusersException>(() => lead.SetTimesteps(1000)).Message);
    }
}
