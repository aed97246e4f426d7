using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

public abstract partial class StableDiffusionXLPipelineBase
{
    /// <summary>
    /// diffusers' SDXL inpaint steps 6-7 (StableDiffusionXLInpaintPipeline and StableDiffusionXLControlNetInpaintPipeline):
    /// <c>prepare_latents</c> with <c>return_noise</c> (for a 4-channel UNet also the image latents; with
    /// <paramref name="denoisingStart"/> the loop starts from the image latents themselves: an alias of them, since the loop
    /// frees the latents it starts from and the 4-channel blend still reads the image latents), then the mask resized to the
    /// latents and the masked image latents (<paramref name="maskedImage"/> encoded, or taken as they are when
    /// <paramref name="maskedImageIsLatents"/>: the caller's <c>masked_image_latents</c>), repeated to the batch and doubled
    /// for guidance.
    /// </summary>
    private protected (Tensor? ImageLatents, Tensor Noise, Tensor Current, Tensor Mask, Tensor? MaskedImageLatents) InpaintLatentsAndMask(
        Tensor initImage, Tensor maskCondition, Tensor? maskedImage, Tensor? latents, double strength, double? denoisingStart,
        Tensor latentTimestep, int total, int h, int w, bool cfg, IReadOnlyList<Generator>? gens, ScalarType dtype, Device device,
        bool maskedImageIsLatents = false)
    {
        int vsf = VaeScaleFactor;
        string name = ClassName;
        int unetChannels = Unet.Config.InChannels;
        long[] shape = [total, Vae.LatentChannels, h / vsf, w / vsf];
        var imageLatents = initImage.shape[1] == 4
            ? PipelineSteps.RepeatToBatch(name, initImage.to(dtype, device), total, "images")
            : PipelineSteps.InpaintImageLatents(name, unetChannels, latents, strength, total,
                () => EncodeVaeImage(initImage.to(dtype, device), gens, "vae_encode_0"));
        var (noise, current) = denoisingStart is null
            ? PipelineSteps.InpaintLatents(name, Scheduler, latents, shape, imageLatents, strength == 1.0, latentTimestep, gens, dtype, device)
            : (Runtime.TorchUtils.RandnTensor(shape, gens, dtype, device),
               (imageLatents ?? throw new DiffusersException($"{name}: denoising_start needs the image latents; pass the base run's latents as image")).alias());
        Record("latent_noise", noise);

        var mask = torch.nn.functional.interpolate(maskCondition, new long[] { h / vsf, w / vsf }).to(dtype, device);
        mask = PipelineSteps.ForGuidance(PipelineSteps.RepeatToBatch(name, mask, total, "masks"), cfg);
        Tensor? maskedImageLatents = null;
        if (maskedImage is not null)
            maskedImageLatents = PipelineSteps.ForGuidance(PipelineSteps.RepeatToBatch(name, maskedImageIsLatents
                ? maskedImage.to(dtype, device)
                : EncodeVaeImage(maskedImage.to(dtype, device), gens, "vae_encode_1"), total, "images"), cfg);
        if (unetChannels == 9)
            PipelineSteps.CheckInpaintChannels(name, unetChannels, Vae.LatentChannels, mask, maskedImageLatents
                ?? throw new DiffusersException($"{name}: a 9-channel inpainting UNet needs the masked image; pass an image, not latents"));
        return (imageLatents, noise, current, mask, maskedImageLatents);
    }
}
