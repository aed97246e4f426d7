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
        pipe.Scheduler = new DDPMScheduler(((DDPMSchedulerConfig)pipe.Scheduler.Config) with { VarianceType = "fixed_large_log" });
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
        sd.Scheduler = SchedulerFactory.FromConfig(LMSDiscreteScheduler.Name, sd.Scheduler.Config);
        var e4 = Assert.Throws<NonFiniteLatentsException>(() => sd.Generate("a cat", numInferenceSteps: 1000, seed: 0));
        Assert.StartsWith("StableDiffusionPipeline: step 2 of 1000 (timestep 999) produced non-finite latents", e4.Message);
        Assert.EndsWith("The scheduler's config: the timesteps reach 1000, past the last trained timestep 999 (steps_offset added to " +
            "'leading' spacing does this at as many inference steps as num_train_timesteps): such a timestep takes the last sigma, so two " +
            "steps share one sigma, and a solver that divides by their difference divides by zero, as diffusers' does; use fewer " +
            "inference steps or timestep_spacing 'trailing'", e4.Message);
        // zero terminal SNR with trailing spacing starts at an alphas_cumprod of 0, where x0 of an epsilon model divides by zero
        sd.Scheduler = new DDIMScheduler(new DDIMSchedulerConfig { RescaleBetasZeroSnr = true, TimestepSpacing = "trailing", ClipSample = false });
        var e3 = Assert.Throws<NonFiniteLatentsException>(() => sd.Generate("a cat", numInferenceSteps: 3, seed: 0));
        Assert.StartsWith("StableDiffusionPipeline: step 1 of 3 (timestep 999) produced non-finite latents", e3.Message);
        Assert.EndsWith("The scheduler's config: alphas_cumprod at timestep 999 is 0 (rescale_betas_zero_snr: zero terminal SNR), and x0 " +
            "from an epsilon prediction, (x - sqrt(1 - alpha_cumprod) * eps) / sqrt(alpha_cumprod), divides by it, as in diffusers: zero " +
            "terminal SNR is for v_prediction models (prediction_type=v_prediction), or leave rescale_betas_zero_snr off", e3.Message);
        // with v_prediction the same schedule runs
        sd.Scheduler = new DDIMScheduler(new DDIMSchedulerConfig { RescaleBetasZeroSnr = true, TimestepSpacing = "trailing", PredictionType = "v_prediction", ClipSample = false });
        using var fine = sd.Generate("a cat", numInferenceSteps: 3, seed: 0, outputType: OutputType.Latent);
        using var finite = torch.isfinite(fine.Tensor!).all();
        Assert.True(finite.item<bool>());
    }
}
