using DiffusersSharp.Models;
using DiffusersSharp.Schedulers;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// The MultiDiffusion loop of diffusers 0.25.1's <c>StableDiffusionPanoramaPipeline</c>: at each step, for every batch of
/// windows, the windows' latents (with circular padding, a window past the right edge continues from the left one) are
/// concatenated, stepped by that batch's own scheduler (<c>scale_model_input</c>, the UNet with guidance on
/// <c>repeat_interleave(2)</c> of them against <c>prompt_embeds</c> repeated per window, <c>uncond + g · (text − uncond)</c>
/// on the even and odd rows, <c>step</c>), and added into <c>value</c> and <c>count</c>; the new latents are
/// <c>where(count &gt; 0, value / count, value)</c>. Slices follow Python's: cut to the latents where a window reaches past them.
/// </summary>
internal sealed class PanoramaDenoisingLoop(UNet2DConditionModel unet, bool doClassifierFreeGuidance, double guidanceScale,
    CrossAttentionOptions? crossAttentionKwargs, IReadOnlyList<PanoramaView[]> viewBatches, IReadOnlyList<IScheduler> schedulers,
    bool circularPadding) : DenoisingLoop
{
    protected override Tensor StepLatents(DenoisingContext ctx, int step, Tensor timestep, Tensor latents)
    {
        long width = latents.shape[3];
        var value = torch.zeros_like(latents);
        var count = torch.zeros_like(latents);
        for (int j = 0; j < viewBatches.Count; j++)
        {
            using var scope = torch.NewDisposeScope();
            var batch = viewBatches[j];
            var scheduler = schedulers[j];
            var viewLatents = torch.cat(batch.Select(v => ViewLatents(latents, v, width)).ToArray());
            var noisePred = PredictViews(ctx, scheduler, step, timestep, viewLatents, batch.Length);
            Tensor denoised;
            using (var output = scheduler.Step(noisePred, ctx.TimestepValues[step], viewLatents, ctx.StepOptions))
                denoised = output.PrevSample;
            var chunks = denoised.chunk(batch.Length);
            for (int k = 0; k < batch.Length; k++)
            {
                var (v, d) = (batch[k], chunks[k]);
                if (circularPadding && v.WEnd > width)
                {
                    Region(value, v.HStart, v.HEnd, v.WStart, null).add_(Region(d, v.HStart, v.HEnd, null, width - v.WStart));
                    Region(value, v.HStart, v.HEnd, null, v.WEnd - width).add_(Region(d, v.HStart, v.HEnd, width - v.WStart, null));
                    Region(count, v.HStart, v.HEnd, v.WStart, null).add_(1);
                    Region(count, v.HStart, v.HEnd, null, v.WEnd - width).add_(1);
                }
                else
                {
                    Region(value, v.HStart, v.HEnd, v.WStart, v.WEnd).add_(d);
                    Region(count, v.HStart, v.HEnd, v.WStart, v.WEnd).add_(1);
                }
            }
        }
        return torch.where(count > 0, value / count, value);
    }

    /// <summary>A window over the whole latents with the context's scheduler (the loop itself goes through <see cref="StepLatents"/>).</summary>
    protected override Tensor PredictNoise(DenoisingContext ctx, int step, Tensor timestep, Tensor latents) =>
        PredictViews(ctx, ctx.Scheduler, step, timestep, latents, 1);

    /// <summary>The guided noise prediction for <paramref name="views"/> windows' latents, stacked, with their scheduler's input scaling.</summary>
    private Tensor PredictViews(DenoisingContext ctx, IScheduler scheduler, int step, Tensor timestep, Tensor viewLatents, int views)
    {
        var input = doClassifierFreeGuidance ? viewLatents.repeat_interleave(2, 0) : viewLatents;
        input = scheduler.ScaleModelInput(input, ctx.TimestepValues[step]);
        var promptEmbeds = ctx.Get(GuidedDenoisingLoop.PromptEmbedsKey);
        if (views > 1) promptEmbeds = torch.cat(Enumerable.Repeat(promptEmbeds, views).ToArray());
        var noisePred = unet.Forward(input, timestep, promptEmbeds, addedCondKwargs: GuidedDenoisingLoop.AddedConditioning(ctx),
            crossAttentionKwargs: crossAttentionKwargs).Sample;
        if (!doClassifierFreeGuidance) return noisePred;
        var uncond = noisePred[TensorIndex.Slice(0, null, 2)];
        var text = noisePred[TensorIndex.Slice(1, null, 2)];
        return uncond + guidanceScale * (text - uncond);
    }

    /// <summary>The latents of window <paramref name="v"/>; with circular padding one past the right edge continues from column 0.</summary>
    private Tensor ViewLatents(Tensor latents, PanoramaView v, long width)
    {
        if (circularPadding && v.WEnd > width)
            return torch.cat(new[] { Region(latents, v.HStart, v.HEnd, v.WStart, null), Region(latents, v.HStart, v.HEnd, null, v.WEnd - width) }, -1);
        return Region(latents, v.HStart, v.HEnd, v.WStart, v.WEnd);
    }

    /// <summary>Python's <c>t[:, :, h0:h1, w0:w1]</c> (null: open end; non-negative bounds cut to the size), a view of <paramref name="t"/>.</summary>
    private static Tensor Region(Tensor t, long? h0, long? h1, long? w0, long? w1) =>
        Cut(Cut(t, 2, h0, h1), 3, w0, w1);

    private static Tensor Cut(Tensor t, int dim, long? start, long? end)
    {
        long size = t.shape[dim];
        long s = Math.Clamp(start ?? 0, 0, size), e = Math.Clamp(end ?? size, 0, size);
        return t.narrow(dim, s, Math.Max(0, e - s));
    }
}
