using DiffusersSharp.Pipelines;

namespace DiffusersSharp.Cli;

/// <summary>
/// The options every Stable Diffusion and SDXL route of <c>diffusers generate</c> applies to the pipeline it loaded
/// (<see cref="IStableDiffusionFamilyPipeline"/>), after its component options (<c>--vae</c>, <c>--embedding</c>) and
/// always in this order: the LoRAs (<see cref="LoraOptions.Apply"/>), <c>--freeu</c>, the scheduler swap
/// (<c>--scheduler</c>, <c>--scheduler-config</c>: <see cref="SchedulerSelection.Swap"/>), the check that the scheduler
/// reads <c>--eta</c>, and the previews (<see cref="PreviewOptions.Callback"/>).
/// </summary>
internal static class PipelineOptions
{
    /// <summary>
    /// Applies the options of <paramref name="r"/> to <paramref name="pipe"/> (above) and returns the step-end callback that
    /// writes the previews, with the tiny VAE loaded for it; the caller disposes the result after the run. Hub ids are
    /// fetched into <paramref name="cacheDir"/> (null: the environment's cache).
    /// </summary>
    public static PreparedRun Prepare(CliContext ctx, GenerateCommand.Request r, IStableDiffusionFamilyPipeline pipe, string? cacheDir)
    {
        LoraOptions.Apply(ctx, r.Lora, pipe, cacheDir);
        r.StableDiffusion.ApplyFreeU(pipe.EnableFreeU);
        SchedulerSelection.Swap(pipe.Scheduler, r.Scheduler, r.SchedulerConfig, s => pipe.Scheduler = s);
        SchedulerSelection.CheckReads(pipe.Scheduler, "eta", "--eta", r.Eta is not null);
        var onStepEnd = PreviewOptions.Callback(ctx, r.Preview, pipe, r.Output, cacheDir, out var previewVae);
        return new PreparedRun(onStepEnd, previewVae);
    }

    /// <summary>What <see cref="Prepare"/> gives a run: the step-end callback to pass the pipeline, and the preview VAE it owns.</summary>
    /// <param name="onStepEnd">The previews' step-end callback; null without <c>--preview-every</c>.</param>
    /// <param name="previewVae">The tiny VAE loaded for the previews (null when none was, or the pipeline's own is used); disposed with this.</param>
    internal sealed class PreparedRun(StepEndCallback? onStepEnd, IDisposable? previewVae) : IDisposable
    {
        /// <summary>The step-end callback that writes the previews, or null without <c>--preview-every</c>.</summary>
        public StepEndCallback? OnStepEnd { get; } = onStepEnd;

        /// <summary>Disposes the preview VAE, if one was loaded.</summary>
        public void Dispose() => previewVae?.Dispose();
    }
}
