using DiffusersSharp.Loading;
using DiffusersSharp.Pipelines;

namespace DiffusersSharp.Cli;

/// <summary>
/// <c>diffusers generate</c> on an unconditional folder (<see cref="DDPMPipeline"/>, <see cref="DDIMPipeline"/>) with the
/// chosen scheduler; the last route of <see cref="GenerateRoutes.All"/>, which claims every class no other route does (a
/// class it cannot run is refused when loaded).
/// </summary>
internal static class UnconditionalGenerate
{
    /// <summary>The route: every class, no prompt (<see cref="IGenerateRoute"/>).</summary>
    internal sealed class Route : IGenerateRoute
    {
        public bool Claims(string className) => true;
        public bool TextConditioned => false;
        public ImagePipelineOutput Execute(GenerateRun g) => UnconditionalGenerate.Execute(g.Ctx, g.Request, g.Folder, g.ClassName, g.Options, g.OutputType);
    }

    /// <summary>An unconditional pipeline (DDPMPipeline, DDIMPipeline) with the chosen scheduler; the caller saves the result.</summary>
    public static ImagePipelineOutput Execute(CliContext ctx, GenerateCommand.Request r, string folder, string className,
        LoadOptions options, OutputType outputType)
    {
        // a class the library has but no route of 'generate' runs (every other route has claimed its classes by now): said
        // first, so that the options below are not refused as if the folder were an unconditional model
        if (className is not (DDPMPipeline.Name or DDIMPipeline.Name) && DiffusionPipeline.KnownClasses.Contains(className))
            throw new UserException($"'generate' does not run {className} folders yet; the library loads and runs them ({className}.FromPretrained, DiffusionPipeline.FromPretrained)");
        // diffusers 0.25.1's DDPMPipeline and DDIMPipeline call set_timesteps(num_inference_steps) and have no timesteps argument
        StableDiffusionOptions.RefuseTimesteps(r.StableDiffusion, className);
        if (r.StableDiffusion.Any)
            throw new UserException($"{className} takes no prompt, image or guidance options ({r.StableDiffusion.FirstGiven}); they are for Stable Diffusion models");
        if (r.Components.FirstGiven is { } component)
            throw new UserException($"{className} takes no {component}; it is for Stable Diffusion models");
        if (r.ControlNet.FirstGiven is { } control)
            throw new UserException($"{className} takes no {control}: ControlNet guides text-conditioned (Stable Diffusion) models, and {className} is unconditional");
        if (r.Adapter.FirstGiven is { } adapterOption)
            throw new UserException($"{className} takes no {adapterOption}: T2I-Adapters guide text-conditioned (Stable Diffusion) models, and {className} is unconditional");
        if (r.Lora.FirstGiven is { } loraOption)
            throw new UserException($"{className} takes no {loraOption}; LoRAs are for Stable Diffusion models");
        if (r.Preview.FirstGiven is { } preview)
            throw new UserException($"{className} takes no {preview}; it is for Stable Diffusion models");

        RunMemory.CheckUnconditional(folder, r.Batch);

        using var pipeline = NativeFailures.During($"loading {folder}", () => DiffusionPipeline.FromPretrained(folder, options));
        // only the two classes this route runs as they are (ConsistencyModelPipeline has its own route, ConsistencyModelGenerate)
        if (pipeline.ClassName is not (DDPMPipeline.Name or DDIMPipeline.Name) || pipeline is not UnconditionalImagePipeline uncond)
            throw new UserException($"{pipeline.ClassName} is not supported by 'generate' yet (supported: {DDPMPipeline.Name}, {DDIMPipeline.Name})");
        var chosen = SchedulerSelection.Build(uncond.Scheduler, r.Scheduler, r.SchedulerConfig);
        // a scheduler built here is this method's; the folder's own is disposed with `pipeline`
        using var built = ReferenceEquals(chosen, uncond.Scheduler) ? null : chosen;
        SchedulerSelection.CheckReads(chosen, "eta", "--eta", r.Eta is not null);

        // The unconditional pipeline that passes what the scheduler's step reads: DDIMPipeline passes eta (and turns any
        // scheduler into DDIM, as diffusers does), DDPMPipeline passes the generator and runs any scheduler. The folder's
        // pipeline runs when it is that class and keeps its scheduler; otherwise a second pipeline around the folder's UNet
        // (disposed with `pipeline`, so the second one is not disposed) runs the chosen scheduler.
        bool takesEta = chosen.StepArguments.Contains("eta");
        UnconditionalImagePipeline run = built is null && (takesEta ? uncond is DDIMPipeline : uncond is DDPMPipeline) ? uncond
            : takesEta ? new DDIMPipeline(uncond.Unet, chosen)
            : new DDPMPipeline(uncond.Unet, chosen);

        int steps = r.Steps ?? run.DefaultNumInferenceSteps;
        ctx.Out.WriteLine($"{run.ClassName} · {run.Scheduler.ClassName} · {steps} steps · batch {r.Batch} · seed {(r.Seed?.ToString() ?? "random")} · {run.Unet.DType}");
        return NativeFailures.During($"generating with {folder} (--batch {r.Batch}, {steps} steps)", () =>
            ProgressDisplay.Run(ctx, steps, progress => run switch
        {
            DDIMPipeline d => d.Generate(r.Batch, steps, r.Eta ?? 0.0, null, r.Seed, null, outputType, null, progress, ctx.CancellationToken),
            DDPMPipeline p => p.Generate(r.Batch, steps, r.Seed, null, outputType, null, progress, ctx.CancellationToken),
            _ => throw new UserException($"{run.ClassName} is not supported by 'generate'"),
        }));
    }
}
