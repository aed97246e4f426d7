using System.CommandLine;
using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Pipelines;

namespace DiffusersSharp.Cli;

/// <summary>
/// The preview options of <c>diffusers generate</c> for Stable Diffusion 1.x/2.x and SDXL folders: <c>--preview-every N</c>
/// decodes the first image's latents with a tiny VAE (<see cref="TaesdPreview"/>) after every N-th step, through the
/// pipeline's step-end callback, and writes it as <c>&lt;output&gt;.step&lt;k&gt;.png</c> next to the output (with an SDXL
/// <c>--refiner</c>, its steps go on counting from the base's); <c>--preview-vae</c> names the tiny VAE (default: the
/// pipeline's own VAE when it is an <see cref="AutoencoderTiny"/>, e.g. with <c>--vae tiny</c>, else the one for the
/// pipeline's latent space, <see cref="VaeLoader.TaesdIdFor"/>: <c>madebyollin/taesd</c>, SDXL <c>madebyollin/taesdxl</c>).
/// </summary>
public sealed class PreviewOptions
{
    private readonly Option<int?> _every = new("--preview-every")
    {
        Description = "Write a tiny-VAE preview of the first image after every N steps (<output>.step<k>.png; Stable Diffusion and SDXL)",
    };
    private readonly Option<string?> _vae = new("--preview-vae")
    {
        Description = $"Tiny VAE (AutoencoderTiny folder or Hub id; org/name@rev: that revision) for --preview-every (default: the pipeline's tiny VAE, else {VaeLoader.TaesdId}, SDXL {VaeLoader.TaesdXlId})",
    };

    /// <summary>The parsed values.</summary>
    /// <param name="Every">Steps between previews; null = no previews.</param>
    /// <param name="Vae">The tiny VAE's folder or Hub id; null = the default.</param>
    public sealed record Values(int? Every = null, string? Vae = null)
    {
        /// <summary>The first option given, for messages (null when none).</summary>
        public string? FirstGiven => Every is not null ? "--preview-every" : Vae is not null ? "--preview-vae" : null;

        /// <summary>What can be checked before loading a model.</summary>
        public void CheckWithoutModel()
        {
            if (Every is < 1) throw new UserException($"--preview-every must be at least 1, got {Every}");
            if (Vae is not null && Every is null) throw new UserException("--preview-vae needs --preview-every");
            if (Vae is { Length: 0 }) throw new UserException("--preview-vae: give an AutoencoderTiny folder or a Hub id");
        }
    }

    /// <summary>The options, not yet added to a command.</summary>
    public static PreviewOptions Create() => new();

    /// <summary>Adds the options to <paramref name="cmd"/>.</summary>
    public void AddTo(Command cmd)
    {
        cmd.Options.Add(_every);
        cmd.Options.Add(_vae);
    }

    /// <summary>The values of a parse.</summary>
    public Values Read(ParseResult pr) => new(pr.GetValue(_every), pr.GetValue(_vae));

    /// <summary>The file a preview after step <paramref name="step"/> (1-based) is written to: <c>dir/name.step&lt;k&gt;.png</c>.</summary>
    public static string PreviewPath(string output, int step) =>
        Path.Combine(Path.GetDirectoryName(Path.GetFullPath(output)) ?? ".", $"{Path.GetFileNameWithoutExtension(output)}.step{step}.png");

    /// <summary>
    /// The step-end callback that writes the previews for <paramref name="pipe"/>, or null without <c>--preview-every</c>.
    /// <paramref name="owned"/> is the tiny VAE loaded for it (null when the pipeline's own is used); the caller disposes it.
    /// The callback numbers the steps it sees from 1, over every call it is handed to (an SDXL base, then its refiner).
    /// A Hub id's VAE is fetched into <paramref name="cacheDir"/> (null: the environment's cache).
    /// </summary>
    public static StepEndCallback? Callback(CliContext ctx, Values v, ILatentDiffusionPipeline pipe, string output, string? cacheDir, out IDisposable? owned)
    {
        owned = null;
        if (v.Every is not int every) return null;
        AutoencoderTiny? tiny = v.Vae is null ? pipe.Vae as AutoencoderTiny : null;
        string id = v.Vae ?? VaeLoader.TaesdIdFor(pipe.LatentSpace);
        if (tiny is null)
        {
            var (vaeId, revision) = WeightSource.Repository(id);
            // the default one is named as --preview-every's (no --preview-vae was given)
            string option = v.Vae is null ? "--preview-every: the preview VAE" : "--preview-vae";
            var loaded = WeightSource.Load(option, id,
                () => NativeFailures.During($"loading the preview VAE {id}", () => VaeLoader.FromPretrained(vaeId,
                    WeightSource.LoadOptionsFor(revision, cacheDir, ctx.Warn))));
            if (loaded is not AutoencoderTiny t)
            {
                loaded.Dispose();
                throw new UserException($"{option} {id}: holds an {loaded.ClassName}, not an AutoencoderTiny (previews need a tiny VAE)");
            }
            tiny = t;
            owned = t;
        }
        var preview = new TaesdPreview(tiny);
        ctx.Out.WriteLine($"previews: every {every} step(s) with {(owned is null ? "the pipeline's tiny VAE" : id)} → {PreviewPath(output, every)}, …");
        int done = 0;
        return (_, _, tensors) =>
        {
            if (++done % every == 0)
                preview.Preview(tensors[DenoisingContext.LatentsKey]).Save(PreviewPath(output, done));
        };
    }
}
