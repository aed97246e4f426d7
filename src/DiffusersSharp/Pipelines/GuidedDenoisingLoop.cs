using DiffusersSharp.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// The loop of the Stable Diffusion pipelines: the classifier-free-guidance batch <c>cat([latents] * 2)</c>,
/// <c>scale_model_input</c>, <see cref="ExtendModelInput"/> (inpainting adds channels), the UNet conditioned on the
/// named tensor <c>prompt_embeds</c> (read every step, so a step-end callback may replace it) and the call's
/// <c>cross_attention_kwargs</c> (the LoRA scale), then
/// <c>uncond + g · (text − uncond)</c> and diffusers' guidance rescale.
/// </summary>
internal class GuidedDenoisingLoop(UNet2DConditionModel unet, bool doClassifierFreeGuidance, double guidanceScale,
    double guidanceRescale, Tensor? timestepCond, CrossAttentionOptions? crossAttentionKwargs = null) : DenoisingLoop
{
    /// <summary>The named tensor the UNet's encoder hidden states are read from (with guidance: [negative; prompt]).</summary>
    public const string PromptEmbedsKey = "prompt_embeds";

    /// <summary>SDXL's pooled text embeddings for the UNet's <c>added_cond_kwargs["text_embeds"]</c> (with guidance: [negative; prompt]).</summary>
    public const string TextEmbedsKey = "add_text_embeds";

    /// <summary>SDXL's micro-conditioning rows for the UNet's <c>added_cond_kwargs["time_ids"]</c>, in the UNet's batch order.</summary>
    public const string TimeIdsKey = "add_time_ids";

    /// <summary>IP-Adapter's image embeds for the UNet's <c>added_cond_kwargs["image_embeds"]</c> (with guidance: [negative; positive]).</summary>
    public const string ImageEmbedsKey = "image_embeds";

    protected bool DoClassifierFreeGuidance => doClassifierFreeGuidance;

    /// <summary>ControlNet: computes the residuals the UNet adds at each step (null: none).</summary>
    public ControlNetResiduals? ControlNet { get; init; }

    /// <summary>T2I-Adapter: the states the UNet adds inside its down blocks (null: none).</summary>
    public T2IAdapterStates? Adapter { get; init; }

    protected override Tensor PredictNoise(DenoisingContext ctx, int step, Tensor timestep, Tensor latents)
    {
        var input = doClassifierFreeGuidance ? torch.cat(new[] { latents, latents }) : latents;
        input = ctx.Scheduler.ScaleModelInput(input, ctx.TimestepValues[step]);
        var added = AddedConditioning(ctx);
        var control = ControlNet?.Compute(ctx, step, timestep, latents, input, added);
        if (control is not null) RecordResiduals(ctx, step, control);
        input = ExtendModelInput(ctx, input);
        ctx.Record("unet_input", step, input);
        var noisePred = unet.Forward(input, timestep, ctx.Get(PromptEmbedsKey), classLabels: ClassLabels(ctx), timestepCond: timestepCond,
            addedCondKwargs: added,
            downBlockAdditionalResiduals: control?.DownBlockResSamples, midBlockAdditionalResidual: control?.MidBlockResSample,
            downIntrablockAdditionalResiduals: Adapter?.At(step),
            crossAttentionKwargs: crossAttentionKwargs).Sample;
        ctx.Record("unet_output", step, noisePred);
        if (!doClassifierFreeGuidance) return noisePred;
        var chunks = noisePred.chunk(2);
        var uncond = chunks[0];
        var text = chunks[1];
        noisePred = uncond + guidanceScale * (text - uncond);
        if (guidanceRescale > 0) noisePred = StableDiffusionPipelineBase.RescaleNoiseCfg(noisePred, text, guidanceRescale);
        return noisePred;
    }

    /// <summary>
    /// The UNet's <c>added_cond_kwargs</c>: the named tensors <c>add_text_embeds</c> and <c>add_time_ids</c> when the
    /// pipeline set them (SDXL; read every step, so a step-end callback may replace them) and <c>image_embeds</c> (IP-Adapter), else none.
    /// </summary>
    internal static AddedCondKwargs? AddedConditioning(DenoisingContext ctx)
    {
        var image = ctx.Tensors.TryGetValue(ImageEmbedsKey, out var embeds) ? embeds : null;
        return ctx.Tensors.TryGetValue(TextEmbedsKey, out var textEmbeds) && ctx.Tensors.TryGetValue(TimeIdsKey, out var timeIds)
            ? new AddedCondKwargs(textEmbeds, timeIds, image)
            : image is null ? null : new AddedCondKwargs(ImageEmbeds: image);
    }

    /// <summary>The UNet's <c>class_labels</c> (none here; the x4 upscaler's noise level).</summary>
    protected virtual Tensor? ClassLabels(DenoisingContext ctx) => null;

    /// <summary>Adds channels to the scaled UNet input (identity here).</summary>
    protected virtual Tensor ExtendModelInput(DenoisingContext ctx, Tensor scaledInput) => scaledInput;

    private static void RecordResiduals(DenoisingContext ctx, int step, ControlNetOutput control)
    {
        for (int j = 0; j < control.DownBlockResSamples.Count; j++)
            ctx.Record($"down_residual_{j}", step, control.DownBlockResSamples[j]);
        ctx.Record("mid_residual", step, control.MidBlockResSample);
    }
}
