using System.CommandLine;
using DiffusersSharp.Loading.SingleFile;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Pipelines.SingleFile;

namespace DiffusersSharp.Cli;

/// <summary>
/// <c>diffusers convert &lt;input&gt; --output &lt;path&gt;</c>: a single file in the original layout (A1111/CivitAI/CompVis
/// <c>.safetensors</c> or <c>.ckpt</c>) becomes a diffusers pipeline folder that Python diffusers loads; a diffusers folder
/// (or cached Hub id) becomes one original-layout <c>.safetensors</c> file (<c>--to-original</c>, implied by a folder input).
/// <c>--config</c> takes an original YAML or a diffusers folder/Hub id whose configs to use; <c>--half</c> writes float16.
/// The options that describe the folder to build (<c>--config</c>, <c>--image-size</c>, <c>--prediction-type</c>,
/// <c>--scheduler-type</c>, <c>--extract-ema</c>) are refused for a folder input: the original layout has no scheduler
/// and no config (diffusers' <c>convert_diffusers_to_original_stable_diffusion.py</c> takes only <c>--half</c>).
/// </summary>
public static class ConvertCommand
{
    /// <summary>Builds the command (options, arguments and handler) around <paramref name="ctx"/>.</summary>
    public static Command Create(CliContext ctx)
    {
        var input = new Argument<string>("input") { Description = "A single file (.safetensors/.ckpt), or a diffusers folder / Hub id with --to-original" };
        var output = new Option<string>("--output", "-o") { Description = "The diffusers folder to write, or the .safetensors file with --to-original", Required = true };
        var toOriginal = new Option<bool>("--to-original") { Description = "Write the original single-file layout (the input is a diffusers folder)" };
        var half = new Option<bool>("--half") { Description = "Save the weights in float16" };
        var config = new Option<string?>("--config") { Description = SingleFileConfig.Description };
        var imageSize = new Option<int?>("--image-size") { Description = "Image size the model was trained on (default: 512, SD 2.x 768, SDXL 1024)" };
        var prediction = new Option<string?>("--prediction-type") { Description = "epsilon or v_prediction (default: SD 2.x v_prediction, else epsilon)" };
        prediction.AcceptOnlyFromAmong("epsilon", "v_prediction");
        var scheduler = new Option<string?>("--scheduler-type")
        {
            Description = "diffusers' scheduler_type (default: pndm; a single-file input only): " + string.Join(", ", DiffusersConfigs.SchedulerTypes.Keys),
        };
        scheduler.AcceptOnlyFromAmong([.. DiffusersConfigs.SchedulerTypes.Keys]);
        var ema = new Option<bool>("--extract-ema") { Description = "Take the UNet's EMA weights (model_ema.*) of a training checkpoint" };
        var cmd = new Command("convert", "Convert a single-file checkpoint (A1111/CivitAI/CompVis) to a diffusers folder, or a diffusers folder to a single file")
        {
            input, output, toOriginal, half, config, imageSize, prediction, scheduler, ema,
        };
        cmd.SetAction(pr => Execute(ctx, new Request(pr.GetValue(input)!, pr.GetValue(output)!, pr.GetValue(toOriginal), pr.GetValue(half),
            pr.GetValue(config), pr.GetValue(imageSize), pr.GetValue(prediction), pr.GetValue(scheduler), pr.GetValue(ema))));
        return cmd;
    }

    /// <summary>The parsed options of one <c>convert</c> call; null options were not given.</summary>
    public sealed record Request(string Input, string Output, bool ToOriginal = false, bool Half = false, string? Config = null,
        int? ImageSize = null, string? PredictionType = null, string? SchedulerType = null, bool ExtractEma = false);

    /// <summary>Runs one conversion as <paramref name="r"/> asks; returns the exit code.</summary>
    public static int Execute(CliContext ctx, Request r)
    {
        bool file = File.Exists(r.Input);
        // a path that does not exist (a typo) is reported as such, not as a Hub id with a wrong --output
        if (!file && !Directory.Exists(r.Input) && LooksLikeAPath(r.Input))
            throw new UserException($"input '{r.Input}' not found: no such file or folder");
        if (file && r.ToOriginal)
            throw new UserException($"--to-original converts a diffusers folder; {r.Input} is a file (without --to-original it becomes a diffusers folder)");
        if (file && !OriginalCheckpoint.IsSingleFile(r.Input))
            throw new UserException($"{r.Input}: not a single-file checkpoint (expected {string.Join(", ", OriginalCheckpoint.Extensions)})");
        if (!file)
        {
            // they describe the folder to build; the original layout has no config and no scheduler
            var given = new (string Name, bool Given)[]
            {
                ("--config", r.Config is not null), ("--image-size", r.ImageSize is not null), ("--prediction-type", r.PredictionType is not null),
                ("--scheduler-type", r.SchedulerType is not null), ("--extract-ema", r.ExtractEma),
            }.Where(o => o.Given).Select(o => o.Name).ToList();
            if (given.Count > 0)
                throw new UserException($"{string.Join(", ", given)} appl{(given.Count == 1 ? "ies" : "y")} only when converting a single file into a folder; "
                                        + $"{r.Input} is a diffusers folder or Hub id, converted to the original layout");
            if (!r.Output.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
                throw new UserException($"--output '{r.Output}': the original layout is written as a .safetensors file");
            CheckOriginalOutput(r.Input, r.Output);
            int n = SingleFileConverter.ToOriginal(r.Input, r.Output, r.Half, ctx.CancellationToken);
            ctx.Out.WriteLine($"wrote {r.Output} ({n} tensors, original layout{(r.Half ? ", float16" : "")})");
            return CliApp.Ok;
        }
        if (r.ImageSize is int size && (size <= 0 || size % 8 != 0)) throw new UserException($"--image-size must be a positive multiple of 8, got {r.ImageSize}");
        var options = SingleFileConfig.Apply(new SingleFileOptions
        {
            ImageSize = r.ImageSize,
            PredictionType = r.PredictionType,
            ExtractEma = r.ExtractEma,
            Dtype = r.Half ? TorchSharp.torch.ScalarType.Float16 : null,
            Log = ctx.Warn,
        }, r.Config);
        if (options.Config is not null)
        {
            // a config folder's own configs and scheduler are used whole: these would be ignored
            var ignored = new (string Name, bool Given)[]
            {
                ("--image-size", r.ImageSize is not null), ("--prediction-type", r.PredictionType is not null), ("--scheduler-type", r.SchedulerType is not null),
            }.Where(o => o.Given).Select(o => o.Name).ToList();
            if (ignored.Count > 0)
                throw new UserException($"{string.Join(", ", ignored)} cannot be combined with --config {r.Config}: the configs and scheduler of that diffusers "
                                        + "folder are used as they are (change them there, or pass an original YAML as --config)");
        }
        if (r.SchedulerType is not null) options = options with { SchedulerType = r.SchedulerType };
        string className = SingleFileConverter.ToDiffusers(r.Input, r.Output, options, ctx.CancellationToken);
        ctx.Out.WriteLine($"wrote {r.Output} ({className}{(r.Half ? ", float16" : "")})");
        return CliApp.Ok;
    }

    /// <summary>A checkpoint's extension, or a path separator in what is not a Hub id ('org/name').</summary>
    private static bool LooksLikeAPath(string input) =>
        OriginalCheckpoint.Extensions.Contains(Path.GetExtension(input), StringComparer.OrdinalIgnoreCase)
        || ((input.Contains('/') || input.Contains(Path.DirectorySeparatorChar)) && !DiffusersSharp.Loading.PretrainedLocator.IsValidRepoId(input));

    /// <summary>
    /// Refuses, before anything is loaded, an <c>--output</c> of <c>--to-original</c> that would replace something on disk:
    /// an existing file or folder, or a path inside the input folder (which could be the pipeline's own weights).
    /// </summary>
    private static void CheckOriginalOutput(string input, string output)
    {
        if (Directory.Exists(output))
            throw new UserException($"--output '{output}' is an existing folder; give the .safetensors file to write");
        if (File.Exists(output))
            throw new UserException($"--output '{output}' already exists; remove it or choose another --output");
        if (Directory.Exists(input) && DiffusersSharp.Loading.LocalPaths.IsInside(output, input))
            throw new UserException($"--output '{output}' is inside the input folder {input}; write the single file elsewhere");
    }
}
