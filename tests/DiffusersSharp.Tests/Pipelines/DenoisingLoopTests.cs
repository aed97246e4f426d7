using DiffusersSharp.Pipelines;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Pipelines;

/// <summary>
/// The shared denoising loop: diffusers' <c>callback_on_step_end</c> (what it sees, what replacing a tensor does) and
/// the non-finite check, on the tiny DDPM and Stable Diffusion pipelines.
/// </summary>
public class DenoisingLoopTests
{
    private static string Ddpm => Golden.Path("tiny-ddpm");
    private static string Sd => Golden.Path("tiny-sd");

    [Fact]
    public void CallbackSeesEveryStepAndMayReplaceTheLatents()
    {
        using var pipe = DDPMPipeline.FromPretrained(Ddpm);
        var seen = new List<(int, double)>();
        using var plain = pipe.Generate(numInferenceSteps: 3, seed: 0, outputType: OutputType.Pt);
        using var viewed = pipe.Generate(numInferenceSteps: 3, seed: 0, outputType: OutputType.Pt,
            callbackOnStepEnd: (step, t, tensors) =>
            {
                seen.Add((step, t));
                Assert.Equal(["latents"], tensors.Keys);
            });
        Assert.Equal([(0, 666.0), (1, 333.0), (2, 0.0)], seen);
        Assert.Equal(0, Tol.MaxAbsDiff(viewed.Tensor!, plain.Tensor!)); // looking changes nothing
        // replacing the final latents by zeros gives the mid-grey image (0 / 2 + 0.5)
        using var replaced = pipe.Generate(numInferenceSteps: 3, seed: 0, outputType: OutputType.Pt,
            callbackOnStepEnd: (step, _, tensors) => { if (step == 2) tensors["latents"] = torch.zeros_like(tensors["latents"]); });
        Assert.Equal(0, Tol.MaxAbsDiff(replaced.Tensor!, torch.full_like(plain.Tensor!, 0.5)));
    }

    [Fact]
    public void ReplacedLatentsAreWhatTheNextStepDenoises()
    {
        using var pipe = DDPMPipeline.FromPretrained(Ddpm);
        using var g = new Generator(5);
        using var start = torch.randn(new long[] { 1, 3, 32, 32 }, generator: g);
        // a two-step run whose first step's result is replaced by `start` ends where a one-step run from `start` at
        // the second timestep ends: DDPM's step at t = 0 draws no noise, so both are deterministic
        using var replaced = pipe.Generate(numInferenceSteps: 2, seed: 0, outputType: OutputType.Pt,
            callbackOnStepEnd: (step, _, tensors) => { if (step == 0) tensors["latents"] = start.clone(); });
        using var noGrad = torch.no_grad();
        pipe.Scheduler.SetTimesteps(2);
        Assert.Equal(new double[] { 500, 0 }, ((SchedulerBase)pipe.Scheduler).TimestepValues);
        using var t0 = torch.tensor(0L);
        using var eps = pipe.Unet.Forward(start, t0).Sample;
        using var x0 = pipe.Scheduler.Step(eps, 0, start).PrevSample;
        using var expected = (x0 / 2 + 0.5).clamp(0, 1);
        Assert.True(Tol.MaxAbsDiff(replaced.Tensor!, expected) <= 1e-6);
    }

    [Fact]
    public void StableDiffusionCallbackMayReplaceThePromptEmbeddings()
    {
        using var pipe = StableDiffusionPipeline.FromPretrained(Sd);
        using var a = pipe.Generate("a photo of a cat", "", numInferenceSteps: 3, seed: 0, outputType: OutputType.Latent);
        using var b = pipe.Generate("a photo of a dog", "", numInferenceSteps: 3, seed: 0, outputType: OutputType.Latent);
        // from step 1 on, the cat run sees the dog run's conditioning: the result lies between the two runs
        Tensor? dogEmbeds = null;
        using var probe = pipe.Generate("a photo of a dog", "", numInferenceSteps: 3, seed: 0, outputType: OutputType.Latent,
            callbackOnStepEnd: (step, _, tensors) => { if (step == 0) dogEmbeds = tensors["prompt_embeds"].clone().DetachFromDisposeScope(); });
        using var _ = dogEmbeds;
        Assert.Equal(new long[] { 2, 77, 32 }, dogEmbeds!.shape); // the [negative; prompt] batch, as diffusers passes it
        using var switched = pipe.Generate("a photo of a cat", "", numInferenceSteps: 3, seed: 0, outputType: OutputType.Latent,
            callbackOnStepEnd: (step, _, tensors) => { if (step == 0) tensors["prompt_embeds"] = dogEmbeds.clone(); });
        Assert.True(Tol.MaxAbsDiff(switched.Tensor!, a.Tensor!) > 1e-3, "the replaced embeddings must change the later steps");
        Assert.True(Tol.MaxAbsDiff(switched.Tensor!, b.Tensor!) > 1e-3, "the first step still used the cat prompt");
        var e = Assert.Throws<DiffusersException>(() => pipe.Generate("a", numInferenceSteps: 2, seed: 0,
            callbackOnStepEnd: (_, _, tensors) => tensors.Remove("latents")));
        Assert.Equal("StableDiffusionPipeline: the step-end callback removed \"latents\" at step 1; replace it instead", e.Message);
    }

    [Fact]
    public void NonFiniteLatentsNameTheStepThatProducedThem()
    {
        // fixed_large_log makes diffusers' DDPM step add sqrt(log β) · noise: NaN from the first step with t > 0
        using var pipe = DDPMPipeline.FromPretrained(Ddpm);
        using (var old = pipe.Scheduler) pipe.Scheduler = new DDPMScheduler(((DDPMSchedulerConfig)old.Config) with { VarianceType = "fixed_large_log" });
        var e = Assert.Throws<NonFiniteLatentsException>(() => pipe.Generate(numInferenceSteps: 4, seed: 0));
        Assert.Equal("DDPMPipeline: step 1 of 4 (timestep 750) produced non-finite latents (3072 of 3072 values are NaN or ±Inf) with " +
            "DDPMScheduler; nothing was decoded. The scheduler's config: variance_type fixed_large_log: the step adds sqrt(log(beta_t)) * " +
            "noise, the square root of a negative number, as diffusers' DDPMScheduler.step does; use fixed_small or fixed_large", e.Message);
        // a guidance scale beyond float32 overflows the first step of Stable Diffusion: nothing in the scheduler's config
        using var sd = StableDiffusionPipeline.FromPretrained(Sd);
        var e2 = Assert.Throws<NonFiniteLatentsException>(() => sd.Generate("a cat", guidanceScale: 1e39, numInferenceSteps: 2, seed: 0));
        Assert.StartsWith("StableDiffusionPipeline: step 1 of 3 (timestep 501) produced non-finite latents", e2.Message);
        Assert.EndsWith("nothing was decoded. Lower-precision weights (fp16) overflow most often: try fp32 or bf16, or another scheduler", e2.Message);
        // SD 1.x's config (steps_offset 1, 'leading') at 1000 of 1000 steps starts at timestep 1000: LMS gets the last sigma
        // twice and its coefficients divide by their difference (diffusers' interp clamps the same way); it blamed fp16 before
        using (var old = sd.Scheduler) sd.Scheduler = SchedulerFactory.FromConfig(LMSDiscreteScheduler.Name, old.Config);
        var e4 = Assert.Throws<NonFiniteLatentsException>(() => sd.Generate("a cat", numInferenceSteps: 1000, seed: 0));
        Assert.StartsWith("StableDiffusionPipeline: step 2 of 1000 (timestep 999) produced non-finite latents", e4.Message);
        Assert.EndsWith("The scheduler's config: sigmas[0] and sigmas[1] (timesteps 1000 and 999) are both 14.614645: timestep 1000 lies " +
            "past the last trained timestep 999, and np.interp clamps it to that timestep's sigma (timestep_spacing \"leading\", " +
            "steps_offset 1, 1000 inference steps of 1000 trained). So the order-2 coefficients, integrals of the product of " +
            "(tau - sigma_k) / (sigma_j - sigma_k) over k != j, divide by sigma_j - sigma_k = 0, as in diffusers' LMSDiscreteScheduler.step; " +
            "no step divides by zero at 999 inference steps, or with timestep_spacing \"trailing\" or \"linspace\" at 1000", e4.Message);
        // zero terminal SNR with trailing spacing starts at an alphas_cumprod of 0, where x0 of an epsilon model divides by zero
        using (var old = sd.Scheduler) sd.Scheduler = new DDIMScheduler(new DDIMSchedulerConfig { RescaleBetasZeroSnr = true, TimestepSpacing = "trailing", ClipSample = false });
        var e3 = Assert.Throws<NonFiniteLatentsException>(() => sd.Generate("a cat", numInferenceSteps: 3, seed: 0));
        Assert.StartsWith("StableDiffusionPipeline: step 1 of 3 (timestep 999) produced non-finite latents", e3.Message);
        Assert.EndsWith("The scheduler's config: alphas_cumprod at timestep 999 is 0 (rescale_betas_zero_snr: zero terminal SNR), and x0 " +
            "from an epsilon prediction, (x - sqrt(1 - alpha_cumprod) * eps) / sqrt(alpha_cumprod), divides by it, as in diffusers: zero " +
            "terminal SNR is for v_prediction models (prediction_type=v_prediction), or leave rescale_betas_zero_snr off", e3.Message);
        // with v_prediction the same schedule runs
        using (var old = sd.Scheduler) sd.Scheduler = new DDIMScheduler(new DDIMSchedulerConfig { RescaleBetasZeroSnr = true, TimestepSpacing = "trailing", PredictionType = "v_prediction", ClipSample = false });
        using var fine = sd.Generate("a cat", numInferenceSteps: 3, seed: 0, outputType: OutputType.Latent);
        using var finite = torch.isfinite(fine.Tensor!).all();
        Assert.True(finite.item<bool>());
    }

    /// <summary>
    /// SD 1.x's scheduler config ("leading" spacing, steps_offset 1) at 1000 and 999 of 1000 steps gives DPM-Solver
    /// multistep, DEIS and UniPC coinciding sigmas, and their second step divides by the zero λ difference, as diffusers
    /// 0.25.1 does (traced by tests/golden/nonfinite-schedules/make.py, a numpy transcription validated against golden B):
    /// at 1000 the step ratio 1000 // 1001 is 0 and every timestep is 1 (σ = 0x3d29395f), and diffusers' first step index
    /// is 1 (the second match), so step 2 reads three equal sigmas, 0 / 0; at 999 the first timestep is 1000, which
    /// np.interp clamps to timestep 999's σ (0x4169d596), so step 2 divides by h0 = 0. The schedules are diffusers'
    /// bit for bit. The message blamed fp16 overflow before (at 999, a sentence for LMS's case that named 1000 steps only).
    /// </summary>
    [Theory]
    [InlineData("dpm++2m", 1000)]
    [InlineData("dpm++2m", 999)]
    [InlineData("dpm++2m-sde", 1000)]
    [InlineData("dpm++2m-sde", 999)]
    [InlineData("deis", 1000)]
    [InlineData("deis", 999)]
    [InlineData("unipc", 1000)]
    [InlineData("unipc", 999)]
    public void MultistepSolversNameTheCoincidingSigmasOfSd1xScheduleAtAsManyStepsAsTrained(string alias, int steps)
    {
        using var sd = StableDiffusionPipeline.FromPretrained(Sd);
        using (var old = sd.Scheduler) sd.Scheduler = SchedulerAliases.Build(alias, old.Config);
        var e = Assert.Throws<NonFiniteLatentsException>(() => sd.Generate("a cat", numInferenceSteps: steps, seed: 0));
        var s = (SchedulerBase)sd.Scheduler;
        var sigmaBits = s.Sigmas!.data<float>().ToArray()[..4].Select(BitConverter.SingleToInt32Bits).ToArray();
        bool all = steps == 1000;
        Assert.Equal(all ? new long[] { 1, 1, 1, 1 } : [1000, 999, 998, 997], s.TimestepValues[..4].Select(t => (long)t));
        Assert.Equal(all ? [0x3d29395f, 0x3d29395f, 0x3d29395f, 0x3d29395f] : new[] { 0x4169d596, 0x4169d596, 0x41686ba4, 0x41670465 }, sigmaBits);
        string cls = sd.Scheduler.ClassName;
        Assert.StartsWith($"StableDiffusionPipeline: step 2 of {steps} (timestep {(all ? 1 : 999)}) produced non-finite latents", e.Message);
        string equal = all
            ? "sigmas[1] to sigmas[3] (timesteps 1, 1 and 1) are all 0.04131448: timestep 1 occurs 1000 times in the schedule " +
              "(timestep_spacing \"leading\", steps_offset 1, 1000 inference steps of 1000 trained)"
            : "sigmas[0] and sigmas[1] (timesteps 1000 and 999) are both 14.614645: timestep 1000 lies past the last trained timestep 999, " +
              "and np.interp clamps it to that timestep's sigma (timestep_spacing \"leading\", steps_offset 1, 999 inference steps of 1000 trained)";
        string arithmetic = (cls, all) switch
        {
            (DPMSolverMultistepScheduler.Name, true) =>
                "h = lambda(t) - lambda(s0) and h0 = lambda(s0) - lambda(s1) are 0, and the second-order update's r0 = h0 / h is NaN",
            (DPMSolverMultistepScheduler.Name, false) =>
                "h0 = lambda(s0) - lambda(s1) is 0, and the second-order update's D1 = (m0 - m1) / r0 divides by r0 = h0 / h = 0",
            (DEISMultistepScheduler.Name, _) =>
                "log(rho_s0) - log(rho_s1) (rho = sigma / alpha) is 0, and the second-order update's Lagrange coefficients divide by " +
                "that difference: coef1 is NaN",
            (UniPCMultistepScheduler.Name, true) =>
                "h = lambda(t) - lambda(s0) and lambda(s1) - lambda(s0) are 0, and the predictor's r1 = (lambda(s1) - lambda(s0)) / h is NaN",
            _ => "lambda(s1) - lambda(s0) is 0, and the predictor's 1 / r1 in D1 = (m1 - m0) / r1 is infinite",
        };
        string remedy = all
            ? "no step divides by zero at 998 inference steps, or with timestep_spacing \"trailing\" at 1000"
            : "no step divides by zero at 998 inference steps, or with timestep_spacing \"trailing\" or \"linspace\" at 999";
        Assert.EndsWith($"The scheduler's config: {equal}. So {arithmetic}, as in diffusers' {cls}.step; {remedy}", e.Message);
    }

    /// <summary>
    /// KDPM2 ancestral on the cosine schedule (squaredcos_cap_v2, σ_max = 20291.3): at 4 "linspace" and 3 "trailing" steps
    /// diffusers' σ_up of the first step rounds one ulp above σ_to (0x3fe017b3 against 0x3fe017b2), σ_down is NaN, and so
    /// is the interpolated σ the first half steps to; at 5 "linspace" steps σ_up equals σ_to, σ_down is 0 and torch.lerp
    /// of its log (−inf) at weight 0.5 is NaN all the same (tests/golden/nonfinite-schedules/make.py). Blamed fp16 before.
    /// </summary>
    [Theory]
    [InlineData("linspace", 4)]
    [InlineData("trailing", 3)]
    [InlineData("linspace", 5)]
    public void Kdpm2AncestralNamesTheSigmaUpThatReachesSigmaToOnTheCosineSchedule(string spacing, int steps)
    {
        using var sd = StableDiffusionPipeline.FromPretrained(Sd);
        var scheduler = new KDPM2AncestralDiscreteScheduler(new KDPM2AncestralDiscreteSchedulerConfig
        { BetaSchedule = "squaredcos_cap_v2", TimestepSpacing = spacing });
        using var loaded = sd.Scheduler;
        sd.Scheduler = scheduler;
        var e = Assert.Throws<NonFiniteLatentsException>(() => sd.Generate("a cat", numInferenceSteps: steps, seed: 0));
        Assert.StartsWith($"StableDiffusionPipeline: step 1 of {2 * steps - 1} (timestep 999) produced non-finite latents", e.Message);
        var sigmaBits = scheduler.Sigmas!.data<float>().ToArray()[..2].Select(BitConverter.SingleToInt32Bits).ToArray();
        bool above = steps != 5;
        Assert.Equal(above ? new[] { 0x469e869b, 0x3fe017b2 } : [0x469e869b, 0x401c0a98], sigmaBits);
        Assert.Equal(above ? 0x3fe017b3 : 0x401c0a98, BitConverter.SingleToInt32Bits(scheduler.SigmasUp[0]));
        Assert.Equal(above ? float.NaN : 0f, scheduler.SigmasDown[0]);
        string to = above ? "1.7507231" : "2.4381466";
        string split = above
            ? "1.7507232, 1 ulp above sigma_to. So sigma_down = sqrt(sigma_to^2 - sigma_up^2) is the square root of a negative number, " +
              "NaN, and so is the interpolated sigma the step's first half steps to, exp(lerp(log sigma, log sigma_down, 0.5))"
            : $"{to}, equal to sigma_to. So sigma_down = sqrt(sigma_to^2 - sigma_up^2) is 0, and the interpolated sigma the step's first " +
              "half steps to, exp(lerp(log sigma, log sigma_down, 0.5)), is NaN: log 0 is -inf, and torch.lerp at weight 0.5 computes " +
              "end - (end - start) * 0.5, -inf + inf";
        string next = steps switch { 4 => "666", 3 => "666", _ => "749.25" };
        Assert.EndsWith($"The scheduler's config: sigma_up of the step from sigma 20291.303 to {to} (timesteps 999 to {next}), sqrt(sigma_to^2 " +
            $"(sigma_from^2 - sigma_to^2) / sigma_from^2) in float32, is {split} (beta_schedule \"squaredcos_cap_v2\", timestep_spacing " +
            $"\"{spacing}\", {steps} inference steps), as in diffusers' KDPM2AncestralDiscreteScheduler.set_timesteps; the interpolated " +
            $"sigmas are finite at {(spacing == "linspace" ? 10 : 6)} inference steps, or with timestep_spacing \"leading\" at {steps}, or use " +
            "EulerAncestralDiscreteScheduler, which caps sigma_up at sigma_to", e.Message);
    }
}
