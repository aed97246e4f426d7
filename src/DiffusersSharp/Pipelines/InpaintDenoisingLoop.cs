using DiffusersSharp.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// The inpainting loop: a 9-channel inpainting UNet sees <c>cat([scaled latents, mask, masked_image_latents], 1)</c>;
/// with an ordinary 4-channel UNet, the image latents noised to the next timestep are blended back outside the mask
/// after every step (<c>(1 − mask) · x_proper + mask · latents</c>). The mask and the masked image latents are the
/// named tensors <c>mask</c> and <c>masked_image_latents</c> (doubled for guidance, as diffusers keeps them).
/// </summary>
internal sealed class InpaintDenoisingLoop(UNet2DConditionModel unet, bool doClassifierFreeGuidance, double guidanceScale,
    Tensor? timestepCond, Tensor? imageLatents, Tensor noise, double guidanceRescale = 0.0)
    : GuidedDenoisingLoop(unet, doClassifierFreeGuidance, guidanceScale, guidanceRescale, timestepCond)
{
    public const string MaskKey = "mask";
    public const string MaskedImageLatentsKey = "masked_image_latents";

    private readonly bool _extraChannels = unet.Config.InChannels == 9;

    protected override Tensor ExtendModelInput(DenoisingContext ctx, Tensor scaledInput) =>
        _extraChannels ? torch.cat(new[] { scaledInput, ctx.Get(MaskKey), ctx.Get(MaskedImageLatentsKey) }, 1) : scaledInput;

    protected override Tensor AfterStep(DenoisingContext ctx, int step, Tensor latents)
    {
        if (_extraChannels) return latents;
        var mask = ctx.Get(MaskKey);
        var initMask = DoClassifierFreeGuidance ? mask.chunk(2)[0] : mask;
        var proper = imageLatents!;
        if (step < ctx.TimestepValues.Count - 1)
            proper = ctx.Scheduler.AddNoise(proper, noise, ctx.Timesteps.narrow(0, step + 1, 1));
        return (1 - initMask) * proper + initMask * latents;
    }
}
