using DiffusersSharp.Schedulers;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// What the Stable Diffusion 1.x/2.x and SDXL pipeline bases (<see cref="StableDiffusionPipelineBase"/>,
/// <see cref="StableDiffusionXLPipelineBase"/>, so every SD, SDXL, ControlNet, T2I-Adapter, InstructPix2Pix and x4
/// upscaler pipeline) offer alike beyond their latents (<see cref="ILatentDiffusionPipeline"/>) and LoRAs
/// (<see cref="ILoraPipeline"/>): a scheduler to swap and FreeU on the UNet. Front ends (the CLI's <c>--scheduler</c>,
/// <c>--freeu</c>, <c>--lora</c> and previews) prepare a run with it without asking which family the model is.
/// </summary>
public interface IStableDiffusionFamilyPipeline : ILatentDiffusionPipeline, ILoraPipeline
{
    /// <summary>
    /// The scheduler; swap it like diffusers' <c>pipe.scheduler = X.from_config(pipe.scheduler.config)</c>. The pipeline
    /// disposes the one it holds; one that is replaced is left to the caller.
    /// </summary>
    IScheduler Scheduler { get; set; }

    /// <summary>diffusers' <c>enable_freeu(s1, s2, b1, b2)</c>: FreeU on the pipeline's UNet.</summary>
    void EnableFreeU(double s1, double s2, double b1, double b2);

    /// <summary>diffusers' <c>disable_freeu()</c>: FreeU off on the pipeline's UNet.</summary>
    void DisableFreeU();
}
