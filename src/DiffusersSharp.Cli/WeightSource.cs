using DiffusersSharp.Hub;
using DiffusersSharp.Loading;

namespace DiffusersSharp.Cli;

/// <summary>
/// What <c>--lora</c> and <c>--embedding</c> name (and, without a file, <c>--controlnet</c>, <c>--refiner</c>, <c>--vae</c>
/// and <c>--preview-vae</c>: <see cref="Repository"/>): an existing file or folder, a Hugging Face Hub id (<c>org/name</c>,
/// whose file the loader chooses as diffusers does), or one file of a Hub repository (<c>org/name/path/in/repo</c>, the
/// weight name); a Hub id or file may name a revision after the id, as huggingface_hub's <c>HfFileSystem</c> paths
/// (<c>hf://org/name@rev/path</c>) do: <c>org/name@v1.0</c>, <c>org/name@v1.0/file.safetensors</c>, a commit sha, a
/// <c>refs/pr/N</c> or <c>refs/convert/…</c> ref with its slashes, any other name with a <c>/</c> URL-quoted
/// (<c>feature%2Fx</c>). Hub ids are resolved through the Hub cache of the environment (<c>HF_HUB_CACHE</c>,
/// <c>HF_HOME</c>, <c>HF_ENDPOINT</c>, <c>HF_TOKEN</c>, <c>HF_HUB_OFFLINE</c>) or <c>generate --cache-dir</c>, as
/// <c>--model</c>'s are, at that revision, else <c>main</c> (never <c>generate --revision</c>, which is the model's).
/// </summary>
public static partial class WeightSource
{
    /// <summary>What the options' messages say they take.</summary>
    public const string Forms = "a file, a folder, a Hugging Face Hub id org/name or a file in one, org/name/file (either with @revision after the id)";

    /// <summary>Whether <paramref name="arg"/> is an existing file or folder, a Hub id or a file in a Hub repository.</summary>
    public static bool Names(string arg) => File.Exists(arg) || Directory.Exists(arg) || Split(arg) is not null;

    /// <summary>
    /// <c>source</c> or <c>source:suffix</c> (a LoRA's scale, an embedding's token): the whole argument when it names an
    /// existing file or folder, else split at the last ':' where the part before names a source (so Windows drive letters
    /// and suffixes both work), else the whole argument when it is a Hub id or a file in one; null when nothing names a
    /// source. A Hub file's name takes any ':' as a path does not, so <c>org/name/file:x</c> is the file with a suffix; a
    /// revision holds no ':' (git refuses it in ref names), so <c>org/name@v1:x</c> is revision <c>v1</c> with a suffix.
    /// </summary>
    public static (string Source, string? Suffix)? SplitSuffix(string arg)
    {
        if (File.Exists(arg) || Directory.Exists(arg)) return (arg, null);
        int colon = arg.LastIndexOf(':');
        if (colon > 0 && colon < arg.Length - 1 && Names(arg[..colon])) return (arg[..colon], arg[(colon + 1)..]);
        return Names(arg) ? (arg, null) : null;
    }

    /// <summary>
    /// The loader's arguments for <paramref name="arg"/>: an existing path as it is (no weight name, no revision), a Hub id
    /// as it is, a file in a Hub repository as its id and weight name; the revision after <c>@</c> (null: <c>main</c>).
    /// </summary>
    public static (string PathOrId, string? WeightName, string? Revision) Of(string arg) =>
        File.Exists(arg) || Directory.Exists(arg) ? (arg, null, null) : Split(arg) ?? (arg, null, null);

    /// <summary>
    /// What <c>--controlnet</c>, <c>--refiner</c>, <c>--vae</c> and <c>--preview-vae</c> name, a folder or a Hub id: an
    /// existing path as it is (an '@' in it included), else the id and the revision after <c>@</c> (null: <c>main</c>), as
    /// <see cref="Of"/> splits them (<c>org/name@v2</c>, <c>org/name@refs/pr/3</c>); an argument naming a file in a
    /// repository, which these options do not take, stays whole, for the loader's message.
    /// </summary>
    public static (string PathOrId, string? Revision) Repository(string arg) =>
        Of(arg) is (var id, null, var revision) ? (id, revision) : (arg, null);

    /// <summary>
    /// Runs <paramref name="load"/>, the load of the source <paramref name="arg"/> that <paramref name="option"/> names; its
    /// error (a revision the repository lacks, an id not cached offline, a folder without a model) becomes a
    /// <see cref="UserException"/> starting with the option and its argument as given, <c>--vae org/name@v9: …</c>: the one
    /// copy of that rule for <c>--vae</c>, <c>--preview-vae</c>, <c>--controlnet</c>, <c>--refiner</c> and <c>--embedding</c>
    /// (<c>--lora</c>'s catch adds a hint for a folder or repository without a weight name, in the same form).
    /// </summary>
    public static T Load<T>(string option, string arg, Func<T> load)
    {
        try
        {
            return load();
        }
        catch (DiffusersException e)
        {
            throw new UserException($"{option} {arg}: {e.Message}");
        }
    }

    /// <summary>
    /// How a source's Hub id is fetched: its revision and the run's cache folder (null: the environment's); the rest
    /// (offline mode, endpoint, token) from the environment, as for <c>--model</c>; loading warnings to <paramref name="log"/>.
    /// </summary>
    public static LoadOptions LoadOptionsFor(string? revision, string? cacheDir, Action<string>? log = null) =>
        new() { Revision = revision, CacheDir = cacheDir, Log = log };

    /// <summary>
    /// <c>org/name</c> → (id, null, null); <c>org/name/file</c> → (<c>org/name</c>, <c>file</c>, null); the same with
    /// <c>@rev</c> after the id → (id, file or null, rev); anything else null.
    /// </summary>
    private static (string Id, string? WeightName, string? Revision)? Split(string arg)
    {
        int at = arg.IndexOf('@');
        // '@' within the id (its first two parts) marks the revision; after them it is part of a file name (b@2x.safetensors)
        if (at >= 0 && arg.AsSpan(0, at).Count('/') <= 1) return WithRevision(arg[..at], arg[(at + 1)..]);
        var parts = arg.Split('/');
        if (parts.Length <= 2) return PretrainedLocator.IsValidRepoId(arg) ? (arg, null, null) : null;
        string id = parts[0] + "/" + parts[1];
        string? file = FileName(string.Join('/', parts.Skip(2)));
        return file is not null && PretrainedLocator.IsValidRepoId(id) ? (id, file, null) : null;
    }

    /// <summary>
    /// <c>id@rest</c> as <c>HfFileSystem.resolve_path</c> reads it: the revision up to the first '/' of
    /// <paramref name="rest"/> (a <c>refs/pr/N</c> or <c>refs/convert/…</c> ref whole), URL-unquoted, then the file.
    /// </summary>
    private static (string Id, string? WeightName, string? Revision)? WithRevision(string id, string rest)
    {
        if (!PretrainedLocator.IsValidRepoId(id)) return null;
        string quoted, path;
        if (HubRepoId.SpecialRefPrefix(rest) is { } special)
        {
            quoted = special;
            path = rest[special.Length..].TrimStart('/');
        }
        else
        {
            int slash = rest.IndexOf('/');
            (quoted, path) = slash < 0 ? (rest, "") : (rest[..slash], rest[(slash + 1)..]);
        }
        string revision = Uri.UnescapeDataString(quoted);
        if (revision.Contains(':')) return null; // git refuses ':' in a ref name: it is a suffix
        try { HubRepoId.ValidateRevision(revision); }
        catch (HubException) { return null; }
        if (path.Length == 0) return (id, null, revision);
        return FileName(path) is { } file ? (id, file, revision) : null;
    }

    /// <summary>A file path in a repository (<c>/</c>-separated, no empty, '.' or '..' part, no '\'), or null.</summary>
    private static string? FileName(string path) =>
        path.Split('/').All(p => p is not ("" or "." or "..") && !p.Contains('\\')) ? path : null;

}
