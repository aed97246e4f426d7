using DiffusersSharp.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// The InstructPix2Pix loop (diffusers 0.25.1's <c>StableDiffusionInstructPix2PixPipeline</c>): with guidance the batch
/// <c>cat([latents] * 3)</c> in the order [text, image, unconditional], <c>scale_model_input</c>, then the image latents
/// (the named tensor <c>image_latents</c>, tripled as [image, image, zeros]) concatenated along the channels, the UNet
/// on <c>prompt_embeds</c> ([prompt, negative, negative]; with an IP-Adapter the named tensor <c>image_embeds</c>, in the
/// same order, as <c>added_cond_kwargs["image_embeds"]</c>; for SDXL (<c>StableDiffusionXLInstructPix2PixPipeline</c>) the named
/// tensors <c>add_text_embeds</c> and <c>add_time_ids</c>, in the same order, as <c>text_embeds</c> / <c>time_ids</c>) and
/// <c>uncond + g · (text − image) + g_img · (image − uncond)</c>, then (SDXL's <c>guidance_rescale</c> &gt; 0, with
/// guidance) diffusers' <c>rescale_noise_cfg</c> against the text row.
/// For a scheduler with a sigma table (diffusers' <c>hasattr(scheduler, "sigmas")</c>) the guidance is applied, as
/// diffusers does, to <c>latent_model_input − σ · noise_pred</c> and turned back into a noise prediction with
/// <c>(· − latents) / −σ</c> (σ of the first index of the step's timestep in the schedule).
/// </summary>
internal sealed class InstructPix2PixDenoisingLoop(UNet2DConditionModel unet, bool doClassifierFreeGuidance, double guidanceScale,
    double imageGuidanceScale, double guidanceRescale = 0.0) : DenoisingLoop
{
    /// <summary>The image latents the UNet input is extended with (diffusers' callback name).</summary>
    public const string ImageLatentsKey = "image_latents";

    protected override Tensor PredictNoise(DenoisingContext ctx, int step, Tensor timestep, Tensor latents)
    {
        var latentModelInput = doClassifierFreeGuidance ? torch.cat(new[] { latents, latents, latents }) : latents;
        var scaled = ctx.Scheduler.ScaleModelInput(latentModelInput, ctx.TimestepValues[step]);
        var input = torch.cat(new[] { scaled, ctx.Get(ImageLatentsKey) }, 1);
        ctx.Record("unet_input", step, input);
        var noisePred = unet.Forward(input, timestep, ctx.Get(GuidedDenoisingLoop.PromptEmbedsKey),
            addedCondKwargs: GuidedDenoisingLoop.AddedConditioning(ctx)).Sample;
        ctx.Record("unet_output", step, noisePred);

        var sigma = SigmaOf(ctx, step);
        if (sigma is not null) noisePred = latentModelInput - sigma * noisePred;
        if (doClassifierFreeGuidance)
        {
            var chunks = noisePred.chunk(3);
            Tensor text = chunks[0], image = chunks[1], uncond = chunks[2];
            noisePred = uncond + guidanceScale * (text - image) + imageGuidanceScale * (image - uncond);
            if (guidanceRescale > 0) noisePred = StableDiffusionPipelineBase.RescaleNoiseCfg(noisePred, text, guidanceRescale);
        }
        if (sigma is not null) noisePred = (noisePred - latents) / (-sigma);
        return noisePred;
    }

    /// <summary>
    /// diffusers' <c>scheduler.sigmas[(scheduler.timesteps == t).nonzero()[0]]</c> (a 0-dim float32 tensor on the
    /// latents' device), or null when the scheduler has no sigma table.
    /// </summary>
    private static Tensor? SigmaOf(DenoisingContext ctx, int step)
    {
        if (ctx.Scheduler.Sigmas is not { } sigmas) return null;
        var all = ctx.Scheduler.Timesteps;
        var first = (all == ctx.Timesteps[step].to(all.device)).nonzero();
        if (first.shape[0] == 0)
            throw new DiffusersException($"{ctx.Pipeline}: timestep {ctx.TimestepValues[step]} of step {step + 1} is not in the scheduler's timesteps");
        long index = first[0, 0].item<long>();
        return sigmas[index].to(ctx.Latents.device);
    }
}
