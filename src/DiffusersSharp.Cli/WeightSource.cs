using DiffusersSharp.Loading;

namespace DiffusersSharp.Cli;

/// <summary>
/// What <c>--lora</c> and <c>--embedding</c> name: an existing file or folder, a Hugging Face Hub id (<c>org/name</c>,
/// whose file the loader chooses as diffusers does), or one file of a Hub repository (<c>org/name/path/in/repo</c>, the
/// weight name). Hub ids are resolved through the Hub cache of the environment (<c>HF_HUB_CACHE</c>, <c>HF_HOME</c>,
/// <c>HF_ENDPOINT</c>, <c>HF_TOKEN</c>, <c>HF_HUB_OFFLINE</c>), as <c>--model</c>'s are, at their <c>main</c> revision.
/// </summary>
internal static class WeightSource
{
    /// <summary>What the options' messages say they take.</summary>
    public const string Forms = "a file, a folder, a Hugging Face Hub id org/name or a file in one, org/name/file";

    /// <summary>Whether <paramref name="arg"/> is an existing file or folder, a Hub id or a file in a Hub repository.</summary>
    public static bool Names(string arg) => File.Exists(arg) || Directory.Exists(arg) || Split(arg) is not null;

    /// <summary>
    /// <c>source</c> or <c>source:suffix</c> (a LoRA's scale, an embedding's token): the whole argument when it names an
    /// existing file or folder, else split at the last ':' where the part before names a source (so Windows drive letters
    /// and suffixes both work), else the whole argument when it is a Hub id or a file in one; null when nothing names a
    /// source. A Hub file's name takes any ':' as a path does not, so <c>org/name/file:x</c> is the file with a suffix.
    /// </summary>
    public static (string Source, string? Suffix)? SplitSuffix(string arg)
    {
        if (File.Exists(arg) || Directory.Exists(arg)) return (arg, null);
        int colon = arg.LastIndexOf(':');
        if (colon > 0 && colon < arg.Length - 1 && Names(arg[..colon])) return (arg[..colon], arg[(colon + 1)..]);
        return Names(arg) ? (arg, null) : null;
    }

    /// <summary>
    /// The loader's arguments for <paramref name="arg"/>: an existing path as it is (no weight name), a Hub id as it is, a
    /// file in a Hub repository as its id and weight name.
    /// </summary>
    public static (string PathOrId, string? WeightName) Of(string arg) =>
        File.Exists(arg) || Directory.Exists(arg) ? (arg, null) : Split(arg) ?? (arg, null);

    /// <summary><c>org/name</c> → (id, null); <c>org/name/file</c> → (<c>org/name</c>, <c>file</c>); anything else null.</summary>
    private static (string Id, string? WeightName)? Split(string arg)
    {
        var parts = arg.Split('/');
        if (parts.Length <= 2) return PretrainedLocator.IsValidRepoId(arg) ? (arg, null) : null;
        string id = parts[0] + "/" + parts[1];
        bool file = parts.Skip(2).All(p => p is not ("" or "." or "..") && !p.Contains('\\'));
        return file && PretrainedLocator.IsValidRepoId(id) ? (id, string.Join('/', parts.Skip(2))) : null;
    }
}
