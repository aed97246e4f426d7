using DiffusersSharp.Models;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// The loop of the unconditional pipelines (DDPM, DDIM): the noise prediction is <c>unet(scale_model_input(latents, t),
/// t).sample</c>. diffusers' unconditional pipelines skip <c>scale_model_input</c>, which is the identity for DDPM and
/// DDIM; calling it lets sigma-based schedulers (Euler, LMS, ...) run here too. <c>classLabels</c> (the consistency
/// model pipeline's) go to every UNet call.
/// </summary>
internal sealed class UNet2DDenoisingLoop(UNet2DModel unet, Tensor? classLabels = null) : DenoisingLoop
{
    protected override Tensor PredictNoise(DenoisingContext ctx, int step, Tensor timestep, Tensor latents) =>
        unet.Forward(ctx.Scheduler.ScaleModelInput(latents, ctx.TimestepValues[step]), timestep, classLabels).Sample;
}
