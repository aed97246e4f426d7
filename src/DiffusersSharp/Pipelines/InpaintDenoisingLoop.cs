using DiffusersSharp.Models;
using DiffusersSharp.Schedulers;
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
    Tensor? timestepCond, Tensor? imageLatents, Tensor noise, double guidanceRescale = 0.0, CrossAttentionOptions? crossAttentionKwargs = null)
    : GuidedDenoisingLoop(unet, doClassifierFreeGuidance, guidanceScale, guidanceRescale, timestepCond, crossAttentionKwargs)
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
        return BlendKnownRegion(ctx.Scheduler, ctx.Timesteps, step, imageLatents!, noise, initMask, latents);
    }

    /// <summary>
    /// The 4-channel blend after loop step <paramref name="step"/> of <paramref name="timesteps"/>: <c>init_latents_proper
    /// = scheduler.add_noise(image_latents, noise, timesteps[step + 1])</c> (the image latents themselves after the last
    /// step), then <c>(1 − init_mask) · init_latents_proper + init_mask · latents</c>.
    /// </summary>
    internal static Tensor BlendKnownRegion(IScheduler scheduler, Tensor timesteps, int step, Tensor imageLatents, Tensor noise,
        Tensor initMask, Tensor latents)
    {
        var proper = imageLatents;
        if (step < timesteps.shape[0] - 1)
            proper = scheduler.AddNoise(proper, noise, timesteps.narrow(0, step + 1, 1));
        return (1 - initMask) * proper + initMask * latents;
    }
}
