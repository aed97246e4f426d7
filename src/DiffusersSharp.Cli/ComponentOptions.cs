using System.CommandLine;
using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Pipelines;

namespace DiffusersSharp.Cli;

/// <summary>
/// The component options of <c>diffusers generate</c> for Stable Diffusion folders: <c>--vae tiny|&lt;folder|id[@rev]&gt;</c>
/// replaces the pipeline's VAE (<c>tiny</c> = <see cref="VaeLoader.TaesdIdFor"/>: <c>madebyollin/taesd</c>, SDXL <c>madebyollin/taesdxl</c>; <see cref="WeightSource.Repository"/>), and <c>--embedding source[:token]</c> (repeatable;
/// a file, a folder, a Hugging Face Hub id such as <c>sd-concepts-library/cat-toy</c> or a file in one, either at a
/// revision after the id, <c>org/name@rev</c>: <see cref="WeightSource"/>) loads textual-inversion embeddings before the run.
/// </summary>
public sealed class ComponentOptions
{
    private readonly Option<string?> _vae = new("--vae")
    {
        Description = $"VAE to use instead of the folder's: 'tiny' ({VaeLoader.TaesdId}; SDXL {VaeLoader.TaesdXlId}), or a VAE folder / Hub id (AutoencoderKL or AutoencoderTiny; org/name@rev: that revision, default main)",
    };
    private readonly Option<string[]> _embedding = new("--embedding")
    {
        Description = "Textual inversion embedding to load: source[:token], the source a .safetensors/.bin/.pt file, a folder, a Hub id (org/name) "
                      + "or a file in one (org/name/file.bin), at a revision with @rev after the id (org/name@v1.0, org/name@v1.0/file.bin; "
                      + "default main); repeatable",
        DefaultValueFactory = _ => [],
    };

    /// <summary>The parsed values.</summary>
    public sealed record Values(string? Vae = null, string[]? Embeddings = null)
    {
        /// <summary>The <c>--embedding</c> arguments (empty when none).</summary>
        public IReadOnlyList<string> EmbeddingArgs => Embeddings ?? [];

        /// <summary>The first option given, for messages (null when none).</summary>
        public string? FirstGiven => Vae is not null ? "--vae" : EmbeddingArgs.Count > 0 ? "--embedding" : null;

        /// <summary>The embedding arguments as (source, token or null); a source that names nothing is a <see cref="UserException"/>.</summary>
        public IReadOnlyList<(string Path, string? Token)> ParseEmbeddings() => EmbeddingArgs.Select(ParseEmbedding).ToList();

        /// <summary>What can be checked before loading a model.</summary>
        public void CheckWithoutModel()
        {
            if (Vae is { Length: 0 }) throw new UserException("--vae: give 'tiny', a folder or a Hub id");
            _ = ParseEmbeddings();
        }
    }

    /// <summary>A new set of the options, to add to one command.</summary>
    public static ComponentOptions Create() => new();

    /// <summary>Adds the options to <paramref name="cmd"/>.</summary>
    public void AddTo(Command cmd)
    {
        cmd.Options.Add(_vae);
        cmd.Options.Add(_embedding);
    }

    /// <summary>The values parsed for the options.</summary>
    public Values Read(ParseResult pr) => new(pr.GetValue(_vae), pr.GetValue(_embedding));

    /// <summary>
    /// <c>source</c> or <c>source:token</c>: the whole argument when it names an existing file or folder, else split at the
    /// last ':' where the part before names a source (so Windows drive letters and tokens both work), else the whole
    /// argument when it is a Hub id or a file in one (<see cref="WeightSource"/>). A Hub file's name takes any ':' as
    /// a path does not, so <c>org/name/file:token</c> is the file with a token, not a file named <c>file:token</c>.
    /// </summary>
    public static (string Path, string? Token) ParseEmbedding(string arg) =>
        WeightSource.SplitSuffix(arg)
        ?? throw new UserException($"--embedding '{arg}': file not found, and not a Hugging Face Hub id (expected {WeightSource.Forms}, each optionally followed by :token)");

    /// <summary>
    /// The local file of each embedding source (a Hub id's downloaded at its <c>@revision</c> into <paramref name="cacheDir"/>,
    /// null: the environment's cache: <see cref="TextualInversionEmbedding.Locate"/>), with its token: the given one, else,
    /// where <paramref name="fileNameTokens"/> (SDXL files name no token), the file name of the source or weight name without
    /// its extension, as the pipeline would take it from the source.
    /// </summary>
    internal static List<(string File, string? Token)> Locate(IReadOnlyList<(string Path, string? Token)> embeddings, bool fileNameTokens, string? cacheDir)
    {
        var located = new List<(string, string?)>();
        foreach (var (path, token) in embeddings)
        {
            var (source, weightName, revision) = WeightSource.Of(path);
            string file = WeightSource.Load("--embedding", path,
                () => TextualInversionEmbedding.Locate(source, weightName, options: WeightSource.LoadOptionsFor(revision, cacheDir)));
            located.Add((file, token ?? (fileNameTokens ? StableDiffusionXLPipelineBase.EmbeddingToken(source, weightName) : null)));
        }
        return located;
    }

    /// <summary>
    /// The VAE <c>--vae</c> names, loaded and reported with its dtype: <c>tiny</c>, the tiny VAE of <paramref name="space"/>
    /// (<see cref="VaeLoader.TaesdIdFor"/>), else a folder or a Hub id at its <c>@revision</c>
    /// (<see cref="WeightSource.Repository"/>), in the dtype and on the device of <paramref name="unet"/> (the latents it
    /// will decode are of that dtype, as the pipeline's own VAE is; an SDXL pipeline upcasts a <c>force_upcast</c> fp16
    /// VAE for the decode itself); Hub ids are fetched into <paramref name="cacheDir"/> (null: the environment's cache).
    /// The SD and SDXL paths both load it here.
    /// </summary>
    internal static IVae LoadVae(CliContext ctx, string vae, LatentSpace space, UNet2DConditionModel unet, string? cacheDir)
    {
        var (id, revision) = vae == "tiny" ? (VaeLoader.TaesdIdFor(space), null) : WeightSource.Repository(vae);
        var loaded = WeightSource.Load("--vae", vae, () => VaeLoader.FromPretrained(id,
            WeightSource.LoadOptionsFor(revision, cacheDir, ctx.Warn) with { Dtype = unet.DType, Device = unet.Device }));
        ctx.Out.WriteLine($"vae: {loaded.ClassName} from {(vae == "tiny" ? id : vae)} · {loaded.DType}");
        return loaded;
    }

    /// <summary>
    /// Swaps in the VAE (<see cref="LoadVae"/>: in the dtype and on the device of the pipeline's UNet) and loads the
    /// embeddings into <paramref name="pipe"/>, reporting what was done; Hub ids are fetched into
    /// <paramref name="cacheDir"/> (null: the environment's cache).
    /// </summary>
    public static void Apply(CliContext ctx, Values v, StableDiffusionPipelineBase pipe, string? cacheDir)
    {
        if (v.Vae is { } vae)
        {
            var loaded = LoadVae(ctx, vae, pipe.LatentSpace, pipe.Unet, cacheDir);
            var old = pipe.Vae;
            pipe.Vae = loaded;
            old.Dispose();
        }
        var embeddings = Locate(v.ParseEmbeddings(), fileNameTokens: false, cacheDir);
        if (embeddings.Count > 0)
        {
            var tokens = pipe.LoadTextualInversion(embeddings.Select(e => e.File).ToList(), embeddings.Select(e => e.Token).ToList());
            ctx.Out.WriteLine($"textual inversion: {string.Join(", ", tokens)}");
        }
    }
}
