using System.CommandLine;
using System.Globalization;
using DiffusersSharp.Models.Lora;
using DiffusersSharp.Pipelines;

namespace DiffusersSharp.Cli;

/// <summary>
/// The LoRA options of <c>diffusers generate</c> for Stable Diffusion and SDXL folders: <c>--lora file[:scale]</c> (repeatable; each
/// file an adapter of its own, their updates added with their scales), <c>--fuse-lora</c> (fold them into the weights
/// before the run: the steps then cost what they cost without LoRA) and <c>--lora-ignore-unknown</c> (leave out keys no
/// layer takes, with a warning, instead of refusing the file). LCM-LoRA: <c>--scheduler LCMScheduler --guidance 1
/// --steps 4 --lora lcm-lora.safetensors</c>.
/// </summary>
public sealed class LoraOptions
{
    private readonly Option<string[]> _lora = new("--lora")
    {
        Description = "LoRA to apply: file[:scale] (.safetensors/.bin in diffusers, PEFT or kohya/A1111 layout, or a folder; repeatable)",
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

        /// <summary>The --lora arguments as (path, scale); a missing file or a bad scale is a <see cref="UserException"/>.</summary>
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
    /// <c>path</c> or <c>path:scale</c>: the whole argument when it names an existing file or folder, else split at the last
    /// ':' (so Windows drive letters work); the scale is a finite number (default 1).
    /// </summary>
    public static (string Path, double Scale) ParseLora(string arg)
    {
        if (File.Exists(arg) || Directory.Exists(arg)) return (arg, 1.0);
        int colon = arg.LastIndexOf(':');
        if (colon > 0 && colon < arg.Length - 1)
        {
            string path = arg[..colon], s = arg[(colon + 1)..];
            if (File.Exists(path) || Directory.Exists(path))
            {
                if (!double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double scale) || !double.IsFinite(scale))
                    throw new UserException($"--lora '{arg}': the scale '{s}' is not a number");
                return (path, scale);
            }
        }
        throw new UserException($"--lora '{arg}': file not found (expected file or file:scale)");
    }

    /// <summary>Loads the LoRAs into <paramref name="pipe"/> (and fuses them when asked), reporting what was done.</summary>
    public static void Apply(CliContext ctx, Values v, ILoraPipeline pipe)
    {
        var loras = v.Parse();
        for (int i = 0; i < loras.Count; i++)
        {
            var (path, scale) = loras[i];
            LoraLoadResult r;
            try
            {
                r = pipe.LoadLoraWeights(path, new LoraLoadOptions
                {
                    AdapterName = loras.Count == 1 ? null : $"lora{i + 1}",
                    Scale = scale,
                    IgnoreUnknownKeys = v.IgnoreUnknown,
                    Log = m => ctx.Error.WriteLine("warning: " + m),
                });
            }
            catch (DiffusersException e)
            {
                throw new UserException($"--lora {path}: {e.Message}");
            }
            ctx.Out.WriteLine($"lora: {path} (scale {scale.ToString(CultureInfo.InvariantCulture)}): " +
                string.Join(", ", r.LayersPatched.Where(kv => kv.Value > 0).Select(kv => $"{kv.Value} {kv.Key} layers")));
        }
        if (v.Fuse && loras.Count > 0)
            ctx.Out.WriteLine($"lora: fused into {pipe.FuseLora(1.0)} layers");
    }
}
