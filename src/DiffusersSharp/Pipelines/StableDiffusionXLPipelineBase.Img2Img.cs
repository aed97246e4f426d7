using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

public abstract partial class StableDiffusionXLPipelineBase
{
    /// <summary>
    /// diffusers' SDXL img2img / inpaint <c>get_timesteps</c> (the scheduler's timesteps already set): without
    /// <paramref name="denoisingStart"/>, the last <c>int(n · strength)</c> steps; with it, the timesteps
    /// <c>t &lt; int(round(T − d · T))</c> (one more for second-order schedulers when that count is even).
    /// </summary>
    protected Tensor Img2ImgTimesteps(int numInferenceSteps, double strength, double? denoisingStart) =>
        PipelineSteps.Img2ImgTimesteps(ClassName, Scheduler, numInferenceSteps, strength, denoisingStart);

    /// <summary>
    /// The txt2img time ids for the UNet (the ControlNet pipeline's too): the row <c>[original, crop, target]</c>, the
    /// negative row from the negative values only when both negative sizes are given (else the same row), and with guidance
    /// the [negative; positive] pair repeated per image (so the rows alternate, as diffusers repeats them).
    /// </summary>
    private protected (Tensor UnetTimeIds, Tensor NegativeRow) Txt2ImgTimeIds(int total, bool cfg, ScalarType dtype,
        (int Height, int Width) original, (int Top, int Left) crop, (int Height, int Width) target,
        (int Height, int Width)? negativeOriginalSize, (int Top, int Left) negativeCrop, (int Height, int Width)? negativeTargetSize)
    {
        var row = TimeIdsRow([original.Height, original.Width, crop.Top, crop.Left, target.Height, target.Width], dtype);
        var negativeRow = negativeOriginalSize is { } no && negativeTargetSize is { } nt
            ? TimeIdsRow([no.Height, no.Width, negativeCrop.Top, negativeCrop.Left, nt.Height, nt.Width], dtype)
            : row;
        return ((cfg ? torch.cat(new[] { negativeRow, row }) : row).to(Unet.Device).repeat(total, 1), negativeRow);
    }

    /// <summary>
    /// The img2img / inpaint time ids for the UNet, <c>[negative × batch; positive × batch]</c> with guidance, and the
    /// negative row. Sizes default to the latents' size × vae_scale_factor, the negative sizes to the positive ones. Rows:
    /// <c>[original, crop, target]</c> and <c>[negative original, crop (the positive one, as diffusers), negative
    /// target]</c>; with <see cref="RequiresAestheticsScore"/> <c>[original, crop, aesthetic_score]</c> and <c>[negative
    /// original, negative crop, negative_aesthetic_score]</c>.
    /// </summary>
    protected (Tensor UnetTimeIds, Tensor NegativeRow) Img2ImgTimeIds(Tensor latents, int total, bool cfg,
        (int Height, int Width)? originalSize, (int Top, int Left) crop, (int Height, int Width)? targetSize,
        (int Height, int Width)? negativeOriginalSize, (int Top, int Left) negativeCrop, (int Height, int Width)? negativeTargetSize,
        double aestheticScore, double negativeAestheticScore)
    {
        if (!double.IsFinite(aestheticScore) || !double.IsFinite(negativeAestheticScore))
            throw new DiffusersException($"{ClassName}: aesthetic_score and negative_aesthetic_score must be finite, got {aestheticScore} and {negativeAestheticScore}");
        var dtype = latents.dtype;
        int h = (int)latents.shape[2] * VaeScaleFactor, w = (int)latents.shape[3] * VaeScaleFactor;
        var original = originalSize ?? (h, w);
        var target = targetSize ?? (h, w);
        var negOriginal = negativeOriginalSize ?? original;
        var negTarget = negativeTargetSize ?? target;
        CheckMicroConditioning(original, crop, target, negOriginal, negativeCrop, negTarget);
        var (row, negativeRow) = RequiresAestheticsScore
            ? (TimeIdsRow([original.Height, original.Width, crop.Top, crop.Left, aestheticScore], dtype),
               TimeIdsRow([negOriginal.Height, negOriginal.Width, negativeCrop.Top, negativeCrop.Left, negativeAestheticScore], dtype))
            : (TimeIdsRow([original.Height, original.Width, crop.Top, crop.Left, target.Height, target.Width], dtype),
               TimeIdsRow([negOriginal.Height, negOriginal.Width, crop.Top, crop.Left, negTarget.Height, negTarget.Width], dtype));
        var ids = cfg ? torch.cat(new[] { negativeRow.repeat(total, 1), row.repeat(total, 1) }) : row.repeat(total, 1);
        return (ids.to(latents.device), negativeRow);
    }
}
