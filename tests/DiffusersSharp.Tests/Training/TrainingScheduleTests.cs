using DiffusersSharp.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Training;

/// <summary>EMA decay and LR schedules against diffusers' formulas written out here.</summary>
public class TrainingScheduleTests
{
    // diffusers training_utils.EMAModel.get_decay, written out.
    private static double DiffusersDecay(long optimizationStep, int updateAfterStep, bool warmup, double invGamma, double power, double maxDecay, double minDecay)
    {
        long step = Math.Max(0, optimizationStep - updateAfterStep - 1);
        if (step <= 0) return 0.0;
        double d = warmup ? 1 - Math.Pow(1 + step / invGamma, -power) : (1 + step) / (10.0 + step);
        return Math.Max(Math.Min(d, maxDecay), minDecay);
    }

    [Fact]
    public void EmaDecayFollowsTheWarmupFormula()
    {
        using var p = new TorchSharp.Modules.Parameter(torch.zeros(2));
        using var ema = new EMAModel([p], decay: 0.9999, useEmaWarmup: true, invGamma: 1.0, power: 0.75);
        Assert.Equal(0.0, ema.GetDecay(0));
        Assert.Equal(0.0, ema.GetDecay(1));
        Assert.Equal(1 - Math.Pow(2, -0.75), ema.GetDecay(2), 15); // 0.40539644...
        Assert.Equal(0.4053964424986395, ema.GetDecay(2), 12);
        foreach (long s in new long[] { 3, 10, 100, 1000, 10_000, 100_000, 1_000_000, 10_000_000 })
            Assert.Equal(DiffusersDecay(s, 0, true, 1.0, 0.75, 0.9999, 0.0), ema.GetDecay(s), 15);
        Assert.Equal(0.9999, ema.GetDecay(100_000_000)); // clamped to max_decay
    }

    [Fact]
    public void EmaDecayWithoutWarmupAndUpdateAfterStep()
    {
        using var p = new TorchSharp.Modules.Parameter(torch.zeros(2));
        using var ema = new EMAModel([p], decay: 0.99, minDecay: 0.2, updateAfterStep: 5, useEmaWarmup: false);
        Assert.Equal(0.0, ema.GetDecay(6));
        Assert.Equal(Math.Max(2.0 / 11.0, 0.2), ema.GetDecay(7));
        Assert.Equal(0.2, ema.GetDecay(7)); // min_decay wins over 2/11
        Assert.Equal(21.0 / 30.0, ema.GetDecay(26), 15);
        Assert.Equal(0.99, ema.GetDecay(10_000));
        foreach (long s in new long[] { 8, 50, 500 })
            Assert.Equal(DiffusersDecay(s, 5, false, 1.0, 2.0 / 3.0, 0.99, 0.2), ema.GetDecay(s), 15);
    }

    [Fact]
    public void EmaStepUpdatesShadowAndCopiesBack()
    {
        using var p = new TorchSharp.Modules.Parameter(torch.tensor(new float[] { 0f, 10f }));
        using var ema = new EMAModel([p], useEmaWarmup: true, invGamma: 1.0, power: 0.75);
        using (torch.no_grad()) p.copy_(torch.tensor(new float[] { 1f, 20f }));
        ema.Step([p]); // decay 0: shadow = param
        Assert.Equal(new float[] { 1f, 20f }, ema.ShadowParams[0].data<float>().ToArray());
        using (torch.no_grad()) p.copy_(torch.tensor(new float[] { 3f, 0f }));
        ema.Step([p]); // decay d: s -= (1 - d) (s - p)
        double d = 1 - Math.Pow(2, -0.75);
        Assert.Equal(d, ema.CurDecayValue, 15);
        var s = ema.ShadowParams[0].data<float>().ToArray();
        Assert.Equal((float)(1 - (1 - d) * (1 - 3)), s[0], 5);
        Assert.Equal((float)(20 - (1 - d) * 20), s[1], 5);
        using var q = new TorchSharp.Modules.Parameter(torch.zeros(2));
        ema.CopyTo([q]);
        Assert.Equal(s, q.data<float>().ToArray());
        Assert.Equal(2, ema.OptimizationStep);
    }

    [Fact]
    public void LrSchedulesMatchGetSchedulerFormulas()
    {
        // get_scheduler(name, num_warmup_steps=10, num_training_steps=110)
        const int w = 10, n = 110;
        for (int s = 0; s <= 120; s += 5)
        {
            double warm = (double)s / w;
            double progress = (double)(s - w) / (n - w);
            Assert.Equal(1.0, LRSchedules.Multiplier("constant", s, w, n));
            Assert.Equal(s < w ? warm : 1.0, LRSchedules.Multiplier("constant_with_warmup", s, w, n), 15);
            Assert.Equal(s < w ? warm : Math.Max(0.0, (double)(n - s) / (n - w)), LRSchedules.Multiplier("linear", s, w, n), 15);
            Assert.Equal(s < w ? warm : Math.Max(0.0, 0.5 * (1 + Math.Cos(Math.PI * 0.5 * 2 * progress))), LRSchedules.Multiplier("cosine", s, w, n), 15);
        }
        Assert.Equal(0.0, LRSchedules.Multiplier("cosine", 0, w, n));
        Assert.Equal(0.5, LRSchedules.Multiplier("cosine", 5, w, n));
        Assert.Equal(0.5, LRSchedules.Multiplier("cosine", 60, w, n), 12); // halfway: cos(pi/2)
        Assert.Equal(0.5, LRSchedules.Multiplier("linear", 60, w, n), 15);
        Assert.Equal(0.0, LRSchedules.Multiplier("linear", 110, w, n));
        Assert.Equal(1.0, LRSchedules.Multiplier("cosine", 0, 0, n)); // no warm-up
        var e = Assert.Throws<DiffusersException>(() => LRSchedules.Multiplier("polynomial", 1, w, n));
        Assert.Equal("lr scheduler 'polynomial' is not supported; choose one of constant, constant_with_warmup, linear, cosine", e.Message);
    }
}
