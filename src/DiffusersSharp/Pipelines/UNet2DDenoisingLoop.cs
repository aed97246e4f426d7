using DiffusersSharp.Models;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>The loop of the unconditional pipelines (DDPM, DDIM): the noise prediction is <c>unet(latents, t).sample</c>.</summary>
internal sealed class UNet2DDenoisingLoop(UNet2DModel unet) : DenoisingLoop
{
    protected override Tensor PredictNoise(DenoisingContext ctx, int step, Tensor timestep, Tensor latents) =>
        unet.Forward(latents, timestep).Sample;
}
