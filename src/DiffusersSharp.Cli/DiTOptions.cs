using System.CommandLine;
using System.Globalization;
using DiffusersSharp.Loading;
using DiffusersSharp.Pipelines;

namespace DiffusersSharp.Cli;

/// <summary>
/// The DiT options of <c>diffusers generate</c> (<see cref="DiTPipeline"/>, e.g. facebook/DiT-XL-2-256):
/// <c>--class-label</c> (repeatable: a class id, or a label name of the model's id2label, one image each). Of the other
/// options DiT takes <c>--guidance</c> (default 4), <c>--steps</c> (default 50), <c>--seed</c> and <c>--scheduler</c>; the
/// prompt, image, component, ControlNet, T2I-Adapter, LoRA and preview options, <c>--eta</c> and <c>--batch</c> are refused.
/// </summary>
public sealed class DiTOptions
{
    private readonly Option<string[]> _classLabel = new("--class-label")
    {
        Description = $"Class to generate ({DiTPipeline.Name}, e.g. facebook/DiT-XL-2-256): an id or a label name such as \"white shark\"; repeatable, one image each",
        DefaultValueFactory = _ => [],
    };

    /// <summary>The parsed values.</summary>
    public sealed record Values(string[]? ClassLabels = null)
    {
        /// <summary>The first option given, for messages (null when none).</summary>
        public string? FirstGiven => ClassLabels is { Length: > 0 } ? "--class-label" : null;

        /// <summary>What can be checked before loading a model.</summary>
        public void CheckWithoutModel()
        {
            foreach (var label in ClassLabels ?? [])
                if (string.IsNullOrWhiteSpace(label)) throw new UserException("--class-label must be a class id or a label name, got an empty value");
        }
    }

    /// <summary>A new set of the options, to add to one command.</summary>
    public static DiTOptions Create() => new();

    /// <summary>Adds the options to <paramref name="cmd"/>.</summary>
    public void AddTo(Command cmd) => cmd.Options.Add(_classLabel);

    /// <summary>The values parsed for the options.</summary>
    public Values Read(ParseResult pr) => new(pr.GetValue(_classLabel));

    /// <summary>Whether <paramref name="className"/> is the DiT pipeline.</summary>
    public static bool IsDiT(string className) => className == DiTPipeline.Name;

    /// <summary>generate's route for DiT folders (class-conditional, not text-conditioned); <c>--class-label</c> is refused on classes other than DiT and ConsistencyModelPipeline.</summary>
    internal sealed class Route : IGenerateRoute
    {
        public bool Claims(string className) => IsDiT(className);
        public bool TextConditioned => false;

        public void RefuseElsewhere(GenerateCommand.Request r, string className)
        {
            // ConsistencyModelPipeline takes class ids too (ConsistencyModelGenerate)
            if (!Claims(className) && className != ConsistencyModelPipeline.Name && r.DiT.FirstGiven is { } ditOption)
                throw new UserException($"{ditOption} applies to class-conditional models ({DiTPipeline.Name}, {ConsistencyModelPipeline.Name}); {r.Model} is a {className}");
        }

        public ImagePipelineOutput Execute(GenerateRun g) => DiTOptions.Execute(g.Ctx, g.Request, g.Folder, g.ClassName, g.Options, g.OutputType);
    }

    /// <summary>Generates one image per <c>--class-label</c> with a DiTPipeline folder; the caller saves the result.</summary>
    public static ImagePipelineOutput Execute(CliContext ctx, GenerateCommand.Request r, string folder, string className,
        LoadOptions options, OutputType outputType)
    {
        var o = r.StableDiffusion;
        if ((o with { Guidance = null }).FirstGiven is { } sdOption)
            throw new UserException($"{className} takes no {sdOption}: it generates ImageNet classes (--class-label), not from a prompt or an image");
        string? other = r.Components.FirstGiven ?? r.ControlNet.FirstGiven ?? r.Adapter.FirstGiven ?? r.Lora.FirstGiven ?? r.Preview.FirstGiven
            ?? (r.Eta is not null ? "--eta" : r.Batch != 1 ? "--batch" : null);
        if (other is not null)
            throw new UserException($"{className} takes no {other}{(other == "--batch" ? ": it generates one image per --class-label" : other == "--eta" ? ": diffusers' DiTPipeline passes no eta to the scheduler" : "")}");
        if (r.DiT.ClassLabels is not { Length: > 0 } given)
            throw new UserException($"{className} needs --class-label (a class id or a label name; repeatable, one image each)");

        using var pipe = NativeFailures.During($"loading {folder}", () => DiTPipeline.FromPretrained(folder, options));
        var ids = new List<int>();
        foreach (var label in given)
        {
            if (int.TryParse(label, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int id)) ids.Add(id);
            else if (pipe.Labels.TryGetValue(label, out id)) ids.Add(id);
            else throw new UserException($"--class-label \"{label}\" is neither a class id nor a label of {folder}'s id2label ({pipe.Labels.Count} labels{(pipe.Labels.Count == 0 ? "" : ", e.g. \"" + string.Join("\", \"", pipe.Labels.Keys.Take(3)) + "\"")})");
        }
        foreach (int id in ids)
            if (id < 0 || id > pipe.Transformer.NumClasses)
                throw new UserException($"--class-label {id} is outside the model's classes 0 to {pipe.Transformer.NumClasses - 1} ({pipe.Transformer.NumClasses}: the null class)");
        SchedulerSelection.Swap(pipe.Scheduler, r.Scheduler, r.SchedulerConfig, s => pipe.Scheduler = s);
        int steps = r.Steps ?? 50;
        double guidance = o.Guidance ?? 4.0;
        ctx.Out.WriteLine($"{pipe.ClassName} · {pipe.Scheduler.ClassName} · {steps} steps · classes {string.Join(", ", ids)} · guidance {guidance.ToString(CultureInfo.InvariantCulture)} · seed {(r.Seed?.ToString(CultureInfo.InvariantCulture) ?? "random")} · {pipe.Transformer.DType}");
        return NativeFailures.During($"generating with {folder} ({ids.Count} classes, {steps} steps)", () =>
            ProgressDisplay.Run(ctx, steps, progress => pipe.Generate(ids, guidance, steps, r.Seed, outputType: outputType,
                progress: progress, cancellationToken: ctx.CancellationToken)));
    }
}
