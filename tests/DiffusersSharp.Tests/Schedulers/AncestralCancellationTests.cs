using DiffusersSharp.Schedulers;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Schedulers;

/// <summary>
/// The ancestral split σ_up = sqrt(σ_to²(σ_from² − σ_to²)/σ_from²), σ_down = sqrt(σ_to² − σ_up²) in float32, as diffusers
/// 0.25.1 computes it. On the cosine schedule (squaredcos_cap_v2, σ_max = 20291.3) with 4 linspace steps the first
/// quotient rounds to 1.7507232, one ulp above σ_to = 1.7507231, so diffusers' σ_down is sqrt(−2.4e-7) = NaN and its
/// latents are NaN. Expected values come from a numpy float32 transcription of diffusers' arithmetic (double-accumulated
/// cumprod as torch's CPU kernel, <c>np.interp</c>, float32 <c>**</c>), whose σ table is bit-identical to ours; among
/// 1-1000 steps it hits NaN only at linspace 4 and trailing 3.
/// </summary>
public class AncestralCancellationTests
{
    private static EulerAncestralDiscreteScheduler Cosine(string spacing) =>
        new(new EulerAncestralDiscreteSchedulerConfig { BetaSchedule = "squaredcos_cap_v2", TimestepSpacing = spacing });

    [Fact]
    public void SigmaTableMatchesDiffusersBitForBit()
    {
        using var s = Cosine("linspace");
        s.SetTimesteps(4);
        var bits = s.Sigmas!.data<float>().ToArray().Select(BitConverter.SingleToInt32Bits).ToArray();
        Assert.Equal(new[] { 0x469e869b, 0x3fe017b2, 0x3f16f711, 0x3bd29a7f, 0 }, bits);
    }

    /// <summary>
    /// σ_up is capped at σ_to as k-diffusion's get_ancestral_step does (<c>min(sigma_to, …)</c>): step 0 goes to σ_down = 0
    /// and adds noise of σ_to; later steps are diffusers' values (step 1: σ_up = 0.5552467703819275). With a zero sample and
    /// model output the step is exactly noise · σ_up. Was NaN.
    /// </summary>
    [Theory]
    [InlineData("linspace", 4)]
    [InlineData("trailing", 3)]
    public void EulerAncestralCapsSigmaUpAtSigmaTo(string spacing, int steps)
    {
        using var scope = torch.NewDisposeScope();
        using var s = Cosine(spacing);
        s.SetTimesteps(steps);
        var sigmas = s.Sigmas!.data<float>().ToArray();
        var x = torch.zeros(1, 4, 8, 8);
        var gen = new Generator(0);
        var replay = new Generator(0);
        var timesteps = s.Timesteps.data<float>().ToArray();
        for (int i = 0; i < timesteps.Length; i++)
        {
            var prev = s.Step(x, timesteps[i], x, new StepOptions { Generators = [gen] }).PrevSample;
            var noise = torch.randn([1, 4, 8, 8], generator: replay);
            if (i == 0)
                Assert.Equal((noise * sigmas[1]).data<float>().ToArray(), prev.data<float>().ToArray());
            Assert.False(prev.isnan().any().item<bool>(), $"step {i} is NaN");
            if (spacing == "linspace" && i == 1)
                Assert.Equal((noise * 0.5552467703819275f).data<float>().ToArray(), prev.data<float>().ToArray());
        }
    }
}
