using DiffusersSharp.Schedulers;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Schedulers;

/// <summary>
/// <c>NonFiniteCause</c> of the multistep solvers on schedules whose sigmas coincide, run with golden B's fake model
/// (model_output = 0.1 · scaled input + E) until the sample stops being finite, as the denoising loop asks it then; and
/// healthy schedules, which name no cause. Where and why diffusers 0.25.1 goes NaN on these schedules is traced by
/// tests/golden/nonfinite-schedules/make.py (a numpy transcription validated against golden B): DPM++ 2M heun on Karras
/// sigmas at 20 steps at step 20 (h = 0: the final sigma repeats the last; the heun term (exp(−h) − 1) / h is 0 / 0),
/// "trailing" at 769 steps at step 770 (timesteps 0 and −1 both take σ(0) = 0x3ceef0c0, as does the final sigma; r0 =
/// 0 / 0), "linspace" at 1000 steps at step 501 (timestep 500 twice, 0x3fcf23c9; 1 / r0 infinite). SD betas, steps_offset 1.
/// </summary>
public class NonFiniteCauseTests
{
    private const string Sd = "\"beta_schedule\": \"scaled_linear\", \"beta_start\": 0.00085, \"beta_end\": 0.012, \"steps_offset\": 1";

    private static SchedulerBase Create(string cls, string keys) =>
        SchedulerFactory.FromJson($"{{\"_class_name\": \"{cls}\", {Sd}{(keys.Length > 0 ? ", " + keys : "")}}}");

    /// <summary>
    /// Runs <paramref name="steps"/> steps with golden B's fake model; returns the 1-based step whose sample is not finite
    /// and its timestep (null: finite to the end), calling <paramref name="afterFiniteStep"/> after each finite step.
    /// </summary>
    private static (int Step, double Timestep)? RunUntilNonFinite(SchedulerBase s, int steps, Action<int, double>? afterFiniteStep = null)
    {
        s.SetTimesteps(steps);
        using var g = new Generator(12);
        using var e = torch.randn([1, 4, 8, 8], generator: g);
        using var noise = new Generator(0);
        var sample = (torch.randn([1, 4, 8, 8], generator: g) * s.InitNoiseSigma).DetachFromDisposeScope();
        var ts = s.TimestepValues;
        try
        {
            for (int i = 0; i < ts.Length; i++)
            {
                using var scope = torch.NewDisposeScope();
                var modelOutput = s.ScaleModelInput(sample, ts[i]) * 0.1 + e;
                var prev = s.Step(modelOutput, ts[i], sample, new StepOptions { Generators = [noise] }).PrevSample;
                if (!torch.isfinite(prev).all().item<bool>()) return (i + 1, ts[i]);
                afterFiniteStep?.Invoke(i + 1, ts[i]);
                sample.Dispose();
                sample = prev.DetachFromDisposeScope();
            }
            return null;
        }
        finally { sample.Dispose(); }
    }

    private static int[] Bits(Tensor t) => t.data<float>().ToArray().Select(BitConverter.SingleToInt32Bits).ToArray();

    [Fact]
    public void DpmSolverHeunOnKarrasSigmasNamesTheRepeatedFinalSigma()
    {
        using var s = Create(DPMSolverMultistepScheduler.Name, "\"solver_type\": \"heun\", \"use_karras_sigmas\": true");
        Assert.Equal((20, 0.0), RunUntilNonFinite(s, 20));
        Assert.Equal(new[] { 0x3d9f757d, 0x3d4694f8, 0x3ceef0c0, 0x3ceef0c0 }, Bits(s.Sigmas!)[^4..]); // diffusers' table (make.py)
        Assert.Equal("sigmas[19] and sigmas[20] (timestep 0 and the final sigma) are both 0.029167533: the Karras / Lu schedule " +
            "repeats its last sigma as the final one (timestep_spacing \"linspace\", steps_offset 1, 20 inference steps of 1000 trained, " +
            "Karras / Lu sigmas). So h = lambda(t) - lambda(s0) is 0, and the second-order update's heun term (exp(-h) - 1) / h is NaN, " +
            "as in diffusers' DPMSolverMultistepScheduler.step; set euler_at_final true, which makes the last step first-order; " +
            "no step divides by zero at 14 inference steps", s.NonFiniteCause(0));
    }

    [Fact]
    public void DpmSolverOnATrailingScheduleThatOvershootsNamesTimestepMinusOne()
    {
        using var s = Create(DPMSolverMultistepScheduler.Name, "\"timestep_spacing\": \"trailing\"");
        Assert.Equal((770, -1.0), RunUntilNonFinite(s, 769));
        Assert.Equal(new[] { 0x3d4f964b, 0x3ceef0c0, 0x3ceef0c0, 0x3ceef0c0 }, Bits(s.Sigmas!)[^4..]);
        Assert.Equal("sigmas[768] to sigmas[770] (timestep 0, timestep -1 and the final sigma) are all 0.029167533: timestep -1 lies " +
            "before timestep 0, and np.interp clamps it to sigma(t = 0) (timestep_spacing \"trailing\", steps_offset 1, 769 inference steps " +
            "of 1000 trained). So h = lambda(t) - lambda(s0) and h0 = lambda(s0) - lambda(s1) are 0, and the second-order update's " +
            "r0 = h0 / h is NaN, as in diffusers' DPMSolverMultistepScheduler.step; set euler_at_final true, which makes the last step " +
            "first-order; no step divides by zero at 768 inference steps, or with timestep_spacing \"leading\" or \"linspace\" at 769",
            s.NonFiniteCause(-1));
    }

    [Fact]
    public void DpmSolverAtAsManyLinspaceStepsAsTrainedNamesTheRepeatedTimestep()
    {
        using var s = Create(DPMSolverMultistepScheduler.Name, "");
        Assert.Equal((501, 500.0), RunUntilNonFinite(s, 1000));
        Assert.Equal(new[] { 0x3fcf23c9, 0x3fcf23c9 }, Bits(s.Sigmas!)[499..501]);
        Assert.Equal("sigmas[499] and sigmas[500] (timesteps 500 and 500) are both 1.6182796: timestep 500 occurs 2 times in the " +
            "schedule (timestep_spacing \"linspace\", steps_offset 1, 1000 inference steps of 1000 trained). So h0 = lambda(s0) - " +
            "lambda(s1) is 0, and the second-order update's D1 = (m0 - m1) / r0 divides by r0 = h0 / h = 0, as in diffusers' " +
            "DPMSolverMultistepScheduler.step; no step divides by zero at 999 inference steps, or with timestep_spacing \"trailing\" at 1000",
            s.NonFiniteCause(500));
    }

    /// <summary>
    /// Schedules that run to the end give no cause at any step: SD 1.x's DPM++ 2M, DEIS, UniPC and LMS at 20 steps, DPM++
    /// 2M (midpoint) on Karras sigmas, whose last step has h = 0 without dividing by it, and KDPM2 ancestral on the
    /// cosine schedule at 10 "linspace" steps, where every σ_up stays below σ_to (at 2 to 9 it reaches σ_to).
    /// </summary>
    [Theory]
    [InlineData(DPMSolverMultistepScheduler.Name, "\"timestep_spacing\": \"leading\"")]
    [InlineData(DPMSolverMultistepScheduler.Name, "\"use_karras_sigmas\": true")]
    [InlineData(DPMSolverMultistepScheduler.Name, "\"algorithm_type\": \"sde-dpmsolver++\", \"timestep_spacing\": \"leading\"")]
    [InlineData(DEISMultistepScheduler.Name, "\"timestep_spacing\": \"leading\"")]
    [InlineData(UniPCMultistepScheduler.Name, "\"timestep_spacing\": \"leading\"")]
    [InlineData(LMSDiscreteScheduler.Name, "\"timestep_spacing\": \"leading\"")]
    [InlineData(KDPM2AncestralDiscreteScheduler.Name, "\"beta_schedule\": \"squaredcos_cap_v2\"")]
    public void HealthySchedulesNameNoCause(string cls, string keys)
    {
        using var s = cls == KDPM2AncestralDiscreteScheduler.Name
            ? SchedulerFactory.FromJson($"{{\"_class_name\": \"{cls}\", {keys}}}")
            : Create(cls, keys);
        int checkedSteps = 0;
        Assert.Null(RunUntilNonFinite(s, cls == KDPM2AncestralDiscreteScheduler.Name ? 10 : 20, (_, t) =>
        {
            Assert.Null(s.NonFiniteCause(t));
            checkedSteps++;
        }));
        Assert.Equal(s.TimestepValues.Length, checkedSteps);
    }
}
