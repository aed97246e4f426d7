using System.CommandLine;
using System.Globalization;
using DiffusersSharp.Models.Lora;
using DiffusersSharp.Pipelines;

namespace DiffusersSharp.Cli;

/// <summary>
/// The LoRA options of <c>diffusers generate</c> for Stable Diffusion and SDXL folders: <c>--lora source[:scale]</c>
/// (repeatable; each an adapter of its own, their updates added with their scales; the source a file, a folder, a Hugging
/// Face Hub id such as <c>latent-consistency/lcm-lora-sdv1-5</c> whose file is chosen and downloaded as diffusers'
/// <c>load_lora_weights</c> does, or one file of a Hub repository, <c>org/name/file.safetensors</c>, either at a revision
/// after the id, <c>org/name@rev</c>, as <c>load_lora_weights(revision=)</c> takes it: <see cref="WeightSource"/>),
/// <c>--fuse-lora</c> (fold them into the weights before the run: the steps then cost what they cost without LoRA) and
/// <c>--lora-ignore-unknown</c> (leave out keys no layer takes, with a warning, instead of refusing the file). LCM-LoRA:
/// <c>--scheduler LCMScheduler --guidance 1 --steps 4 --lora latent-consistency/lcm-lora-sdv1-5</c>.
/// </summary>
public sealed class LoraOptions
{
    private readonly Option<string[]> _lora = new("--lora")
    {
        Description = "LoRA to apply: source[:scale], the source a .safetensors/.bin file (diffusers, PEFT or kohya/A1111 layout), a folder, "
                      + "a Hub id (org/name) or a file in one (org/name/file.safetensors), at a revision with @rev after the id "
                      + "(org/name@v1.0, org/name@v1.0/file.safetensors; default main); repeatable",
        DefaultValueFactory = _ => [],
    };
    private readonly Option<bool> _fuse = new("--fuse-lora") { Description = "Fuse the LoRAs into the weights before generating (same images, faster steps)" };
    private readonly Option<bool> _ignoreUnknown = new("--lora-ignore-unknown")
    {
        Description = "Leave out LoRA keys no layer of the model takes (a warning) instead of refusing the file",
    };

    /// <summary>The parsed values.</summary>
    public sealed record Values(string[]? Loras = null, bool Fuse = false, bool IgnoreUnknown = false)
    {
        /// <summary>The --lora arguments as given.</summary>
        public IReadOnlyList<string> LoraArgs => Loras ?? [];

        /// <summary>The first option given, for messages (null when none).</summary>
        public string? FirstGiven => LoraArgs.Count > 0 ? "--lora" : Fuse ? "--fuse-lora" : IgnoreUnknown ? "--lora-ignore-unknown" : null;

        /// <summary>The --lora arguments as (source, scale); a source that names nothing or a bad scale is a <see cref="UserException"/>.</summary>
        public IReadOnlyList<(string Path, double Scale)> Parse() => LoraArgs.Select(ParseLora).ToList();

        /// <summary>What can be checked before loading a model.</summary>
        public void CheckWithoutModel()
        {
            _ = Parse();
            if (LoraArgs.Count == 0 && FirstGiven is { } option) throw new UserException($"{option} needs --lora");
        }
    }

    /// <summary>A new set of the options.</summary>
    public static LoraOptions Create() => new();

    /// <summary>Adds the options to <paramref name="cmd"/>.</summary>
    public void AddTo(Command cmd)
    {
        cmd.Options.Add(_lora);
        cmd.Options.Add(_fuse);
        cmd.Options.Add(_ignoreUnknown);
    }

    /// <summary>The values of one parse.</summary>
    public Values Read(ParseResult pr) => new(pr.GetValue(_lora), pr.GetValue(_fuse), pr.GetValue(_ignoreUnknown));

    /// <summary>
    /// <c>source</c> or <c>source:scale</c>: the whole argument when it names an existing file or folder, else split at the
    /// last ':' where the part before names a source (so Windows drive letters work), else the whole argument when it is
    /// a Hub id or a file in one (<see cref="WeightSource"/>): <c>org/name/file.safetensors:0.5</c> is that file at scale
    /// 0.5, not a file named <c>file.safetensors:0.5</c>. The scale is a finite number (default 1).
    /// </summary>
    public static (string Path, double Scale) ParseLora(string arg)
    {
        if (WeightSource.SplitSuffix(arg) is not { } split)
            throw new UserException($"--lora '{arg}': file not found, and not a Hugging Face Hub id (expected {WeightSource.Forms}, each optionally followed by :scale)");
        var (path, s) = split;
        if (s is null) return (path, 1.0);
        if (!double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double scale) || !double.IsFinite(scale))
            throw new UserException($"--lora '{arg}': the scale '{s}' is not a number");
        return (path, scale);
    }

    /// <summary>
    /// Loads the LoRAs into <paramref name="pipe"/> (and fuses them when asked), reporting what was done; a Hub id is
    /// fetched at its <c>@revision</c> into <paramref name="cacheDir"/> (null: the environment's cache).
    /// </summary>
    public static void Apply(CliContext ctx, Values v, ILoraPipeline pipe, string? cacheDir)
    {
        var loras = v.Parse();
        for (int i = 0; i < loras.Count; i++)
        {
            var (path, scale) = loras[i];
            var (source, weightName, revision) = WeightSource.Of(path);
            LoraLoadResult r;
            try
            {
                r = pipe.LoadLoraWeights(source, new LoraLoadOptions
                {
                    AdapterName = loras.Count == 1 ? null : $"lora{i + 1}",
                    Scale = scale,
                    IgnoreUnknownKeys = v.IgnoreUnknown,
                    Log = ctx.Warn,
                    WeightName = weightName,
                    Source = WeightSource.LoadOptionsFor(revision, cacheDir),
                });
            }
            catch (DiffusersException e) when (e.Key == "weight_name" && weightName is null && !File.Exists(path))
            {
                // a file at the revision asked: ORG/NAME/FILE would be main's file
                string form = Directory.Exists(path) ? "FOLDER/FILE" : revision is null ? "ORG/NAME/FILE" : "ORG/NAME@REV/FILE";
                throw new UserException($"--lora {path}: {e.Message} (on the command line: --lora {form}[:scale])");
            }
            catch (DiffusersException e)
            {
                throw new UserException($"--lora {path}: {e.Message}");
            }
            string read = r.File is { } file && file != Path.GetFullPath(path) ? $"{file}, " : "";
            ctx.Out.WriteLine($"lora: {path} ({read}scale {scale.ToString(CultureInfo.InvariantCulture)}): " +
                string.Join(", ", r.LayersPatched.Where(kv => kv.Value > 0).Select(kv => $"{kv.Value} {kv.Key} layers")));
        }
        if (v.Fuse && loras.Count > 0)
            ctx.Out.WriteLine($"lora: fused into {pipe.FuseLora(1.0)} layers");
    }
}
