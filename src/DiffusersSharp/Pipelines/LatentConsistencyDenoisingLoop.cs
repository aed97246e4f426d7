using DiffusersSharp.Models;
using DiffusersSharp.Schedulers;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// The loop of diffusers' latent consistency pipelines (<see cref="LatentConsistencyModelPipeline"/>,
/// <see cref="LatentConsistencyModelImg2ImgPipeline"/>): no classifier-free-guidance batch ever, the UNet conditioned on
/// the named tensors <c>prompt_embeds</c> and <c>w_embedding</c> (the guidance embedding, its <c>timestep_cond</c>; both
/// read every step, so a step-end callback may replace them, as diffusers' <c>callback_on_step_end_tensor_inputs</c>
/// allow), no <c>scale_model_input</c>, and <see cref="LCMScheduler"/>'s step, whose consistency-model estimate is kept
/// as the named tensor <c>denoised</c>: that, not the latents, is what the pipelines decode.
/// </summary>
internal sealed class LatentConsistencyDenoisingLoop(UNet2DConditionModel unet, CrossAttentionOptions? crossAttentionKwargs) : DenoisingLoop
{
    /// <summary>The guidance embedding the UNet takes as <c>timestep_cond</c>.</summary>
    public const string WEmbeddingKey = "w_embedding";

    /// <summary>The last step's consistency-model estimate x0 (diffusers' <c>denoised</c>).</summary>
    public const string DenoisedKey = "denoised";

    protected override Tensor PredictNoise(DenoisingContext ctx, int step, Tensor timestep, Tensor latents)
    {
        ctx.Record("unet_input", step, latents);
        var pred = unet.Forward(latents, timestep, ctx.Get(GuidedDenoisingLoop.PromptEmbedsKey), timestepCond: ctx.Get(WEmbeddingKey),
            addedCondKwargs: GuidedDenoisingLoop.AddedConditioning(ctx), crossAttentionKwargs: crossAttentionKwargs).Sample;
        ctx.Record("unet_output", step, pred);
        return pred;
    }

    protected override Tensor StepLatents(DenoisingContext ctx, int step, Tensor timestep, Tensor latents)
    {
        var modelPred = PredictNoise(ctx, step, timestep, latents);
        // the step's two tensors are kept (its Dispose would free the estimate): latents and denoised, as diffusers' step returns them
        var output = ctx.Scheduler.Step(modelPred, ctx.TimestepValues[step], latents, ctx.StepOptions);
        var denoised = output.PredOriginalSample ?? throw new DiffusersException(
            $"{ctx.Pipeline}: {ctx.Scheduler.ClassName}'s step gave no denoised sample; the pipeline runs {LCMScheduler.Name} only");
        ctx.Record(DenoisedKey, step, denoised);
        if (ctx.Tensors.TryGetValue(DenoisedKey, out var old) && !ctx.Tensors.Any(kv => kv.Key != DenoisedKey && ReferenceEquals(kv.Value, old)))
            old.Dispose();
        ctx.Tensors[DenoisedKey] = denoised.MoveToOuterDisposeScope();
        return output.PrevSample;
    }

    /// <summary>
    /// The checks the two pipelines share before a call: the scheduler must be an <see cref="LCMScheduler"/> (diffusers 0.25.1
    /// passes <c>original_inference_steps</c> to <c>set_timesteps</c> and unpacks <c>(latents, denoised)</c> from
    /// <c>step</c>: another scheduler fails there), returned as one.
    /// </summary>
    internal static LCMScheduler RequireLcmScheduler(string cls, IScheduler scheduler) =>
        scheduler as LCMScheduler ?? throw new DiffusersException(
            $"{cls}: the scheduler is {scheduler.ClassName}, but {cls} runs {LCMScheduler.Name} only (diffusers 0.25.1 passes " +
            $"original_inference_steps to its set_timesteps and takes the denoised sample from its step); use {LCMScheduler.Name}.FromConfig(pipe.Scheduler.Config)");

    /// <summary>
    /// A latent consistency pipeline's UNet must have <c>time_cond_proj_dim</c>: diffusers 0.25.1 embeds the guidance scale
    /// with it as its width and fails (<c>None // 2</c>) on a UNet without (an LCM-LoRA runs on the Stable Diffusion pipelines).
    /// </summary>
    internal static void RequireGuidanceEmbedding(string cls, UNet2DConditionModel unet)
    {
        if (unet.Config.TimeCondProjDim is null)
            throw new ConfigException(
                $"{cls}: the UNet config has no time_cond_proj_dim (time_cond_proj_dim: null): a latent consistency model embeds the guidance " +
                $"scale with it; for an LCM-LoRA on a Stable Diffusion UNet use {StableDiffusionPipeline.Name} with {LCMScheduler.Name}")
            { Key = "time_cond_proj_dim" };
    }

    /// <summary>
    /// diffusers' <c>retrieve_timesteps(scheduler, num_inference_steps, device, timesteps, original_inference_steps=…,
    /// strength=…)</c> on the LCM scheduler: its schedule (custom <paramref name="timesteps"/> sliced by
    /// <paramref name="strength"/>, or <paramref name="numInferenceSteps"/> drawn from the original_inference_steps-sized
    /// schedule shortened by strength); the scheduler's refusals are prefixed with <paramref name="cls"/>. An empty
    /// schedule (custom timesteps that strength leaves none of) is refused: diffusers would decode a <c>denoised</c> no
    /// step made.
    /// </summary>
    internal static Tensor Timesteps(string cls, LCMScheduler scheduler, int numInferenceSteps, IReadOnlyList<long>? timesteps,
        int? originalInferenceSteps, double strength, Device device)
    {
        try
        {
            if (timesteps is null) scheduler.SetTimesteps(numInferenceSteps, device, originalInferenceSteps, strength);
            else scheduler.SetTimesteps(timesteps, device, originalInferenceSteps, strength);
        }
        catch (DiffusersException e) { throw new DiffusersException($"{cls}: {(timesteps is null ? "" : "timesteps: ")}{e.Message}", e); }
        if (scheduler.Timesteps.shape[0] == 0)
            throw new DiffusersException(
                $"{cls}: strength {strength} leaves none of the {timesteps!.Count} timesteps (int({timesteps.Count} * {strength}) = 0); raise strength");
        return scheduler.Timesteps;
    }
}
