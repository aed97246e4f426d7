using System.Globalization;
using DiffusersSharp.Loading;
using DiffusersSharp.Pipelines;

namespace DiffusersSharp.Cli;

/// <summary>
/// <c>diffusers generate</c> on a <see cref="ConsistencyModelPipeline"/> folder (e.g. openai/diffusers-cd_imagenet64_l2):
/// <c>--steps</c> (default 1, diffusers' <c>num_inference_steps</c>) or <c>--timesteps</c> (diffusers' <c>timesteps</c>,
/// e.g. 22,0), <c>--class-label</c> (class ids, repeatable: one for every image or one per image; absent, the labels are
/// drawn from the generator as diffusers does), <c>--seed</c>, <c>--batch</c>, <c>--scheduler</c> /
/// <c>--scheduler-config</c>. The prompt, image and guidance options, <c>--eta</c> (diffusers' pipeline passes none),
/// the component, ControlNet, T2I-Adapter, LoRA and preview options are refused naming the class.
/// </summary>
internal static class ConsistencyModelGenerate
{
    /// <summary>The route: ConsistencyModelPipeline folders (class-conditional, not text-conditioned).</summary>
    internal sealed class Route : IGenerateRoute
    {
        public bool Claims(string className) => className == ConsistencyModelPipeline.Name;
        public bool TextConditioned => false;
        public ImagePipelineOutput Execute(GenerateRun g) => ConsistencyModelGenerate.Execute(g.Ctx, g.Request, g.Folder, g.ClassName, g.Options, g.OutputType);
    }

    /// <summary>Runs a ConsistencyModelPipeline folder; the caller saves the result.</summary>
    public static ImagePipelineOutput Execute(CliContext ctx, GenerateCommand.Request r, string folder, string className,
        LoadOptions options, OutputType outputType)
    {
        if ((r.StableDiffusion with { Timesteps = null }).FirstGiven is { } sdOption)
            throw new UserException($"{className} takes no {sdOption}: it generates classes (--class-label), not from a prompt or an image");
        string? other = r.Components.FirstGiven ?? r.ControlNet.FirstGiven ?? r.Adapter.FirstGiven ?? r.Lora.FirstGiven ?? r.Preview.FirstGiven;
        if (other is not null)
            throw new UserException($"{className} takes no {other}; it is for Stable Diffusion models");
        if (r.Eta is not null)
            throw new UserException($"{className} takes no --eta: diffusers' {className} passes no eta to the scheduler");
        long[]? timesteps = r.StableDiffusion.CustomTimesteps;
        long[]? labels = ParseLabels(r.DiT.ClassLabels);
        // one label for every image, or one per image (then the labels set the batch when --batch is not given)
        int batch = labels is null || labels.Length == 1 || labels.Length == r.Batch ? r.Batch
            : r.Batch == 1 ? labels.Length
            : throw new UserException($"--class-label is given {labels.Length} times for --batch {r.Batch}: give one label (for every image) or one per image");
        if (labels is { Length: 1 } && batch > 1) labels = [.. Enumerable.Repeat(labels[0], batch)];

        RunMemory.CheckUnconditional(folder, batch);
        using var pipe = NativeFailures.During($"loading {folder}", () => ConsistencyModelPipeline.FromPretrained(folder, options));
        if (labels is not null && pipe.Unet.Config.NumClassEmbeds is null)
            throw new UserException($"--class-label: {folder}'s UNet is not class-conditional (its config has no num_class_embeds)");
        SchedulerSelection.Swap(pipe.Scheduler, r.Scheduler, r.SchedulerConfig, s => pipe.Scheduler = s);
        int steps = timesteps?.Length ?? r.Steps ?? pipe.DefaultNumInferenceSteps;
        string classes = labels is not null ? string.Join(", ", labels) : pipe.Unet.Config.NumClassEmbeds is null ? "none"
            : r.Seed is null ? "drawn at random" : "drawn from the seed";
        ctx.Out.WriteLine($"{pipe.ClassName} · {pipe.Scheduler.ClassName} · {steps} steps{(timesteps is null ? "" : $" (timesteps {string.Join(", ", timesteps)})")} · batch {batch} · classes {classes} · seed {(r.Seed?.ToString(CultureInfo.InvariantCulture) ?? "random")} · {pipe.Unet.DType}");
        return NativeFailures.During($"generating with {folder} (--batch {batch}, {steps} steps)", () =>
            ProgressDisplay.Run(ctx, steps, progress => pipe.Generate(batch, labels, timesteps is null ? steps : null, timesteps,
                r.Seed, outputType: outputType, progress: progress, cancellationToken: ctx.CancellationToken)));
    }

    /// <summary>The <c>--class-label</c> values as class ids (null when none is given); a name is refused (the model has no id2label).</summary>
    private static long[]? ParseLabels(string[]? given)
    {
        if (given is not { Length: > 0 }) return null;
        var ids = new long[given.Length];
        for (int i = 0; i < given.Length; i++)
            if (!long.TryParse(given[i], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out ids[i]))
                throw new UserException($"--class-label \"{given[i]}\" is not a class id: {ConsistencyModelPipeline.Name} takes class ids (integers from 0), it has no id2label of names");
        return ids;
    }
}
