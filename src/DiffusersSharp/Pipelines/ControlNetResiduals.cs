using DiffusersSharp.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// The ControlNet part of one pipeline call, plugged into <see cref="GuidedDenoisingLoop"/>: at each step the nets run on
/// the scaled UNet input (in guess mode with guidance: only the conditional half, with the prompt embeddings alone) and
/// the prepared control images, each with <c>controlnet_conditioning_scale[k] · keep[i][k]</c>, where keep is 0 outside
/// the net's <c>[control_guidance_start, control_guidance_end]</c> window (the nets still run, as diffusers runs them);
/// in guess mode with guidance the UNet gets zeros for the unconditional half. The control images stay the caller's.
/// </summary>
internal sealed class ControlNetResiduals(MultiControlNetModel nets, IReadOnlyList<Tensor> images, IReadOnlyList<double> scales,
    IReadOnlyList<double> guidanceStart, IReadOnlyList<double> guidanceEnd, bool guessMode, bool doClassifierFreeGuidance)
{
    /// <summary>The conditioning scale of each net at step <paramref name="step"/> of <paramref name="steps"/> (diffusers' <c>cond_scale</c>).</summary>
    public double[] ScalesAt(int step, int steps)
    {
        var result = new double[scales.Count];
        for (int k = 0; k < scales.Count; k++)
        {
            bool outside = (double)step / steps < guidanceStart[k] || (double)(step + 1) / steps > guidanceEnd[k];
            result[k] = scales[k] * (1.0 - (outside ? 1.0 : 0.0));
        }
        return result;
    }

    /// <summary>
    /// The residuals for the UNet call of step <paramref name="step"/>: <paramref name="scaledInput"/> is the scaled UNet
    /// input before any extra channels (the guidance batch), <paramref name="latents"/> the loop's current latents.
    /// The tensors belong to the step's dispose scope.
    /// </summary>
    public ControlNetOutput Compute(DenoisingContext ctx, int step, Tensor timestep, Tensor latents, Tensor scaledInput,
        AddedCondKwargs? addedCondKwargs = null)
    {
        var promptEmbeds = ctx.Get(GuidedDenoisingLoop.PromptEmbedsKey);
        Tensor controlInput = scaledInput, controlEmbeds = promptEmbeds;
        bool condOnly = guessMode && doClassifierFreeGuidance;
        if (condOnly)
        {
            // infer the ControlNet only for the conditional batch
            controlInput = ctx.Scheduler.ScaleModelInput(latents, ctx.TimestepValues[step]);
            controlEmbeds = promptEmbeds.chunk(2)[1];
            if (addedCondKwargs is not null)
                addedCondKwargs = new AddedCondKwargs(addedCondKwargs.TextEmbeds?.chunk(2)[1], addedCondKwargs.TimeIds?.chunk(2)[1]);
        }
        var scale = ScalesAt(step, ctx.TimestepValues.Count);
        var output = nets.Forward(controlInput, timestep, controlEmbeds, images, scale, addedCondKwargs: addedCondKwargs, guessMode: guessMode);
        if (!condOnly) return output;
        var down = output.DownBlockResSamples.Select(d => torch.cat(new[] { torch.zeros_like(d), d })).ToList();
        var mid = torch.cat(new[] { torch.zeros_like(output.MidBlockResSample), output.MidBlockResSample });
        output.Dispose();
        return new ControlNetOutput(down, mid);
    }
}
