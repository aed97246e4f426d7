using DiffusersSharp.Models;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// The loop of the unconditional pipelines (DDPM, DDIM): the noise prediction is <c>unet(scale_model_input(latents, t),
/// t).sample</c>. diffusers' unconditional pipelines skip <c>scale_model_input</c>, which is the identity for DDPM and
/// DDIM; calling it lets sigma-based schedulers (Euler, LMS, ...) run here too.
/// </summary>
internal sealed class UNet2DDenoisingLoop(UNet2DModel unet) : DenoisingLoop
{
    protected override Tensor PredictNoise(DenoisingContext ctx, int step, Tensor timestep, Tensor latents) =>
        unet.Forward(ctx.Scheduler.ScaleModelInput(latents, ctx.TimestepValues[step]), timestep).Sample;
}
